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
 *
 * The first admin key is made only once the hub listens, and printed at once: a start that
 * cannot listen (port busy) exits 1 having stored no key, so the next start makes and shows one.
 */
import { buildApp } from "./app.ts";
import { ensureAdminKey } from "./auth/bootstrap.ts";
import { type Config, checkServingConfig, loadConfig } from "./config.ts";
import { cutConnections } from "./http/graceful-close.ts";
import { MODELS } from "./images/catalog.ts";
import { KIND_INFO } from "./providers/kinds.ts";
import type { Database } from "./storage/db/types.ts";

/** Time for cut requests to record themselves once their connections are gone. */
const SETTLE_AFTER_CUT_MS = 5_000;

/** The providers the banner names when they have no credentials, with the setting for a key. */
const MISSING_HINTS: ReadonlyArray<[string, string]> = [
  ["openai", "OPENAI_API_KEY"],
  ["google", "GEMINI_API_KEY"],
];

// The banner goes to stdout too: a closed one (piped into `head`) must not crash the hub.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
});

let config: Config;
let built: Awaited<ReturnType<typeof buildApp>>;
try {
  config = loadConfig();
  checkServingConfig(config);
  built = await buildApp(config);
} catch (error) {
  // A setting or a service the settings name is wrong: say which, in one line, and stop.
  console.error(`image-hub could not start: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
const { app, db } = built;

// Read before listening: if the database cannot answer, the start fails before it serves.
const providers = await providersLine(config, db);

let address: string;
try {
  address = await app.listen({ port: config.port, host: config.host });
} catch (error) {
  // Nothing of this start is stored yet (the admin key comes only after listening), so the
  // operator can fix the port and start again with nothing lost.
  app.log.error({ err: error }, `could not listen on ${config.host}:${config.port}; exiting`);
  await app.close().catch((closeError: unknown) => {
    app.log.error({ err: closeError }, "error while closing after the failed start");
  });
  process.exit(1);
}

const base = config.publicUrl;
const banner = [
  "",
  `image-hub listens on ${address}`,
  `  data: ${config.dataDir} (${db.kind === "sqlite" ? "SQLite and images" : "images; the database is DATABASE_URL's PostgreSQL"})`,
  `  image URLs: ${base}/files/images/…`,
  `  console: ${base}/ (sign in with an API key)`,
  providers,
  await adminKeyLine(),
  "  create an app key:",
  `    curl -s -X POST ${base}/api/admin/keys -H "Authorization: Bearer <admin key>" -H "Content-Type: application/json" -d '{"name":"my-app"}'`,
  `  models: GET ${base}/api/models   API document: ${base}/openapi.json`,
  "",
].join("\n");

// The handlers come before the banner: whoever reads "listens on" may signal at once, and a
// signal that arrived before `process.on` would end the process by the default action, unclean.
let shuttingDown = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (shuttingDown) return;
    shuttingDown = true;
    shutDown(signal);
  });
}
process.stdout.write(`${banner}\n`);

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

/**
 * The banner's admin key line; makes the first admin key when none exists. Called only once the
 * hub listens: made earlier, a start that then failed would have stored a key nobody saw.
 */
async function adminKeyLine(): Promise<string> {
  try {
    const firstAdmin = await ensureAdminKey(db, config.adminKey);
    if (firstAdmin) return `  admin key (shown once, store it now): ${firstAdmin.key}`;
    return config.adminKey
      ? "  admin key: the ADMIN_KEY setting"
      : "  admin key: stored in the database (lost it? npm run hub -- admin new-key)";
  } catch (error) {
    // The hub serves, but nobody can administer it: say so where the key would have been.
    app.log.error({ err: error }, "could not create the first admin key");
    const reason = error instanceof Error ? error.message : String(error);
    return [
      `  admin key: NOT CREATED, the database refused it (${reason}).`,
      "    Restart the hub to try again, run `npm run hub -- admin new-key`, or set ADMIN_KEY.",
    ].join("\n");
  }
}

/**
 * The banner's providers line, e.g. `providers: openai (2 built-in models), localai (0 built-in
 * models), local (1 built-in model); google: no credentials (GEMINI_API_KEY or POST
 * /api/admin/credentials)`. A provider counts as configured with its environment key (or none,
 * for servers that need none) or an enabled stored credential, the sources the registry builds
 * it from (credentials/registry.ts); the counts are of the built-in catalog, since the models
 * operators add or hide are GET /api/models's to list. Of the kinds left unconfigured, only
 * OpenAI's and Google's are named: the README lists the rest.
 */
async function providersLine(settings: Config, database: Database): Promise<string> {
  const stored = await database.listCredentials();
  const configured = new Set<string>();
  for (const instance of settings.providerInstances) {
    if (instance.apiKey || KIND_INFO[instance.kind].keyOptional) configured.add(instance.id);
  }
  for (const record of stored) if (record.disabledAt === null) configured.add(record.provider);
  configured.add("local");
  const counted = [...configured].map((provider) => {
    const count = MODELS.filter((model) => model.provider === provider).length;
    return `${provider} (${count} built-in model${count === 1 ? "" : "s"})`;
  });
  const missing = MISSING_HINTS.filter(([provider]) => !configured.has(provider)).map(
    ([provider, setting]) =>
      `${provider}: no credentials (${setting} or POST /api/admin/credentials)`,
  );
  return `  providers: ${[counted.join(", "), ...missing].join("; ")}`;
}
