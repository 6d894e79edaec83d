/**
 * The process: read the settings, build the app, listen, and close cleanly on SIGINT/SIGTERM
 * (stop accepting, let in-flight requests finish, close the stores).
 */
import { buildApp } from "./app.ts";
import { ensureAdminKey } from "./auth/bootstrap.ts";
import { loadConfig } from "./config.ts";

const SHUTDOWN_GRACE_MS = 30_000;

const config = loadConfig();
const { app, db } = await buildApp(config);

const firstAdmin = await ensureAdminKey(db, config.adminKey);
const address = await app.listen({ port: config.port, host: config.host });

const base = config.publicUrl;
const banner = [
  "",
  `image-hub listens on ${address}`,
  `  data: ${config.dataDir} (SQLite)   image URLs: ${base}/files/images/…`,
  firstAdmin
    ? `  admin key (shown once, store it now): ${firstAdmin.key}`
    : config.adminKey
      ? "  admin key: the ADMIN_KEY setting"
      : "  admin key: created on the first start (set ADMIN_KEY to use your own)",
  "  create an app key:",
  `    curl -s -X POST ${base}/api/admin/keys -H "Authorization: Bearer <admin key>" -H "Content-Type: application/json" -d '{"name":"my-app"}'`,
  `  models: GET ${base}/api/models   API document: ${base}/openapi.json`,
  "",
].join("\n");
process.stdout.write(`${banner}\n`);

let closing = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, "shutting down: finishing in-flight requests");
    const force = setTimeout(() => {
      app.log.error("in-flight requests did not finish in time; exiting");
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, "error while shutting down");
        process.exit(1);
      },
    );
  });
}
