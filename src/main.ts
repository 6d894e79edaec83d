/**
 * The process: read the settings, build the app, listen, and shut down cleanly on SIGINT or
 * SIGTERM.
 *
 * Shutting down: new connections are refused at once, requests in flight get
 * SHUTDOWN_GRACE_SECONDS to finish, then the stores close (the last-used batch is written, the
 * database closed) and the process exits 0. When the grace runs out, the connections still open
 * are cut: each of those requests sees its client gone, cancels its upstream calls, records
 * itself as failed and gives its reservation back, and the process exits 1 so that a supervisor
 * can tell a cut shutdown from a clean one. If even that does not end within
 * `SETTLE_AFTER_CUT_MS`, the process exits 1 at once; what it leaves open is resolved by the
 * next start, as after a crash.
 *
 * What the process buffers is written before it exits: each request's usage record before its
 * reply, the keys' last-used times when the app closes (auth/last-used.ts), and log lines by
 * pino, which writes what it still holds synchronously on `process.exit`.
 */
import { buildApp } from "./app.ts";
import { ensureAdminKey } from "./auth/bootstrap.ts";
import { loadConfig } from "./config.ts";
import { cutConnections } from "./http/graceful-close.ts";

/** Time for cut requests to record themselves once their connections are gone. */
const SETTLE_AFTER_CUT_MS = 5_000;

const config = loadConfig();
const { app, db } = await buildApp(config);

const firstAdmin = await ensureAdminKey(db, config.adminKey);
const address = await app.listen({ port: config.port, host: config.host });

const base = config.publicUrl;
const banner = [
  "",
  `image-hub listens on ${address}`,
  `  data: ${config.dataDir} (${db.kind === "sqlite" ? "SQLite and images" : "images; the database is DATABASE_URL's PostgreSQL"})`,
  `  image URLs: ${base}/files/images/…`,
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

let shuttingDown = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (shuttingDown) return;
    shuttingDown = true;
    shutDown(signal);
  });
}

function shutDown(signal: NodeJS.Signals): void {
  app.log.info(
    { signal, graceMs: config.shutdownGraceMs },
    "shutting down: refusing new connections, finishing the requests in flight",
  );
  let cut = false;
  setTimeout(() => {
    cut = true;
    cutRequestsInFlight();
  }, config.shutdownGraceMs);
  app.close().then(
    () => leave(cut ? 1 : 0),
    (error: unknown) => {
      app.log.error({ err: error }, "error while shutting down");
      leave(1);
    },
  );
}

function cutRequestsInFlight(): void {
  app.log.error(
    { graceMs: config.shutdownGraceMs },
    "requests in flight did not finish within SHUTDOWN_GRACE_SECONDS; cutting their connections",
  );
  cutConnections(app.server);
  setTimeout(() => {
    app.log.error("cut requests did not end in time; exiting with work left to the next start");
    process.exit(1);
  }, SETTLE_AFTER_CUT_MS);
}

function leave(code: number): void {
  app.log.info({ exitCode: code }, "stopped");
  process.exit(code);
}
