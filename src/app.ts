/**
 * Builds the Fastify app from its parts, in an order you can read top to bottom. `main.ts` runs
 * it; tests build it the same way and `inject` into it or listen on a loopback port.
 */
import { createHash, randomUUID } from "node:crypto";
import swagger from "@fastify/swagger";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
  LogController,
} from "fastify";
import pino from "pino";
import { createAdmission } from "./auth/admission.ts";
import { createLastUsedTracker } from "./auth/last-used.ts";
import { createAuthenticator } from "./auth/principal.ts";
import {
  ABANDONED_RESERVATION_MS,
  releaseAbandonedReservations,
} from "./billing/abandoned-reservations.ts";
import { createAccounting } from "./billing/accounting.ts";
import { startHeartbeat } from "./billing/live-instances.ts";
import { createPriceService } from "./billing/price-service.ts";
import type { Config } from "./config.ts";
import { createProviderRegistry } from "./credentials/registry.ts";
import { createVault } from "./credentials/vault.ts";
import { registerAdminRoutes } from "./http/admin.ts";
import { registerCredentialCheck } from "./http/admin-credential-check.ts";
import { registerCredentialRoutes } from "./http/admin-credentials.ts";
import { registerAdminModelRoutes } from "./http/admin-models.ts";
import { registerPriceRoutes } from "./http/admin-prices.ts";
import { registerModelRouteRoutes } from "./http/admin-routes.ts";
import { registerAigneDiscovery } from "./http/aigne/discovery.ts";
import { registerAigneImageRoutes } from "./http/aigne/routes.ts";
import { registerApiReference } from "./http/api-reference.ts";
import { createAuthHooks } from "./http/auth.ts";
import { registerConsole } from "./http/console.ts";
import { handleClientError, registerErrorHandling, toHubError } from "./http/errors.ts";
import { registerFileRoutes } from "./http/files.ts";
import { registerGalleryRoutes } from "./http/gallery.ts";
import { registerGracefulClose } from "./http/graceful-close.ts";
import { registerHealthRoutes } from "./http/health.ts";
import { createIdempotencyLedger } from "./http/idempotency.ts";
import { registerImageRoutes } from "./http/images.ts";
import { lazySchemaCompilers } from "./http/lazy-schemas.ts";
import { registerModelRoutes } from "./http/models.ts";
import { registerMultipart } from "./http/multipart.ts";
import { registerRequestLog } from "./http/request-log.ts";
import { registerUsageRoutes } from "./http/usage.ts";
import { createCatalogStore } from "./images/catalog-store.ts";
import { createImageService } from "./images/generate.ts";
import { createImageHost, startSweeper } from "./images/hosting.ts";
import { createLatencyBoard } from "./images/latency.ts";
import { servingModel } from "./images/lifecycle.ts";
import { createModelAdmin } from "./images/model-admin.ts";
import { startModelSync } from "./images/model-sync.ts";
import { createRouteBook } from "./images/routes.ts";
import { loadOrCreateSigningSecret } from "./images/secret.ts";
import { createImageSourceLoader } from "./images/sources.ts";
import { createTaskJournal } from "./images/task-journal.ts";
import { startTaskRecovery } from "./images/task-recovery.ts";
import { createUpstreamModelBoard } from "./images/upstream-models.ts";
import { createByteBudget } from "./net/byte-budget.ts";
import { createSafeFetcher } from "./net/safe-fetch.ts";
import { checkComfyWorkflow } from "./providers/comfyui.ts";
import { DEFAULT_UPSTREAM_TIMEOUT_MS } from "./providers/upstream.ts";
import { createSharedCounters } from "./shared-counters.ts";
import { openBlobStore } from "./storage/blobs/open.ts";
import { openDatabase } from "./storage/db/open.ts";
import type { Database } from "./storage/db/types.ts";

export interface AppOptions {
  /** Pino options, or false for silence (tests). */
  logger?: FastifyServerOptions["logger"];
  /** Where the standard log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
  /** Replaces the clock (tests of URL expiry). */
  clock?: () => number;
}

export interface App {
  app: FastifyInstance;
  db: Database;
}

const SWEEP_INTERVAL_MS = 5 * 60 * 1000;
/** A provider's model list read at start may hold the start up this long, no longer. */
const MODEL_LIST_TIMEOUT_MS = 5_000;

export async function buildApp(config: Config, options: AppOptions = {}): Promise<App> {
  const clock = options.clock ?? Date.now;
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config.logLevel, options.logStream),
    bodyLimit: config.maxBodyBytes,
    // One line per request instead of Fastify's two: http/request-log.ts.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: requestIdOf,
    // The peer alone, not `true`: the proxy appends the address it saw to X-Forwarded-For, and
    // the entries before it are whatever the client sent, so only the last one names the client.
    trustProxy: config.trustProxy ? (_address: string, hop: number) => hop === 0 : false,
    // Types as sent, as OpenAI checks them: "n": "2" is a 400, not quietly 2.
    ajv: { customOptions: { allErrors: false, coerceTypes: false } },
    // Fastify's own compilers, each route's schemas compiled on its first use (lazy-schemas.ts).
    schemaController: { compilersFactory: lazySchemaCompilers() },
    // Bytes Node cannot parse as HTTP (after a short Content-Length, say) get the OpenAI shape.
    clientErrorHandler: handleClientError,
    // The router's own refusals (a malformed escape, an over-long parameter) in the OpenAI
    // shape too: they happen before any route, so the error handler never sees them.
    frameworkErrors: (error, _request, reply) => {
      const hubError = toHubError(error);
      (reply as unknown as FastifyReply).code(hubError.status).send(hubError.toJSON());
    },
  });
  // JSON only (multipart for edits, below): a text/plain body is a 415, not a confusing 400.
  app.removeContentTypeParser("text/plain");
  registerGracefulClose(app);
  registerRequestLog(app);
  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  registerErrorHandling(app);

  // Resources, each closed when the app closes (hooks run in reverse order: the database last).
  const db = await openDatabase({ dataDir: config.dataDir, databaseUrl: config.databaseUrl });
  app.addHook("onClose", () => db.close());
  const alone = await releaseAbandonedReservations(db, app, clock);
  // Reservations carry their hub's id; with several hubs, a dead one's are released by the
  // others as soon as its heartbeat stops (billing/live-instances.ts).
  const instanceId = randomUUID();
  if (db.kind === "postgres") {
    const heartbeat = await startHeartbeat({
      db,
      instanceId,
      clock,
      deadAfterMs: config.instanceDeadAfterMs,
      log: app.log,
    });
    app.addHook("onClose", () => heartbeat.stop());
  }
  const prices = await createPriceService(db);
  app.addHook("onClose", async () => prices.stop());
  const vault = createVault(config.masterKey);
  // The one way to fetch a URL the hub did not make: clients' input images and upstreams' results.
  const fetcher = createSafeFetcher({
    allowCidrs: config.imageFetchAllowCidrs,
    maxBytes: config.maxInputImageBytes,
  });
  app.addHook("onClose", () => fetcher.close());
  const fetchUpstreamImage = async (url: string, signal: AbortSignal) =>
    (await fetcher.fetch(url, { param: "upstream_url", signal })).bytes;
  // Rate limits, wrong-key throttles and credential health: in Redis when several instances
  // share them (REDIS_URL), in this process otherwise.
  const counters = await createSharedCounters(config, { clock, instanceId, log: app.log });
  app.addHook("onClose", () => counters.close());
  const registry = createProviderRegistry({
    health: counters.health,
    db,
    vault,
    instances: config.providerInstances,
    fetchResult: fetchUpstreamImage,
    journal: createTaskJournal({ db, clock }),
    // Calls name their model's budget; this is only for a call that names none.
    timeoutMs: config.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    maxReplyBytes: config.maxUpstreamReplyBytes,
    byteBudget: createByteBudget(config.maxBufferedImageBytes),
    clock,
    log: app.log,
  });
  await registry.reload();
  reloadEveryMinute(app, "provider credentials", () => registry.reload());
  startTaskRecovery({
    db,
    taskApi: (provider) => registry.taskApi(provider),
    priceOf: (model, size, quality) =>
      prices.book().perImageMicros(model, size ?? undefined, quality ?? undefined),
    alone,
    abandonedAfterMs: ABANDONED_RESERVATION_MS,
    clock,
    log: app.log,
    onClose: (stop) => app.addHook("onClose", stop),
  });
  const routes = createRouteBook(db);
  await routes.reload();
  reloadEveryMinute(app, "model routes", () => routes.reload());
  const lastUsed = createLastUsedTracker({
    db,
    onError: (error) => app.log.warn({ err: error }, "could not write last-used times"),
  });
  app.addHook("onClose", () => lastUsed.stop());

  const blobs = await openBlobStore(config, clock);
  const store = blobs.store;
  app.addHook("onClose", async () => store.close?.());
  const host = createImageHost({
    storeUrl: config.imageUrls === "store" ? blobs.presignedUrl : undefined,
    store,
    secret: config.urlSigningSecret
      ? createHash("sha256").update(config.urlSigningSecret).digest()
      : await loadOrCreateSigningSecret(config.dataDir),
    publicUrl: config.publicUrl,
    ttlSeconds: config.imageUrlTtlSeconds,
    clock,
  });
  const stopSweeper = startSweeper({ store, intervalMs: SWEEP_INTERVAL_MS, clock, log: app.log });
  app.addHook("onClose", () => stopSweeper());
  // The gallery forgets an image with its URL (the listing already hides expired ones).
  const forgetExpired = setInterval(() => {
    db.deleteExpiredHostedImages(clock()).catch((error: unknown) => {
      app.log.warn({ err: error }, "could not forget expired gallery images");
    });
  }, SWEEP_INTERVAL_MS);
  forgetExpired.unref();
  app.addHook("onClose", async () => clearInterval(forgetExpired));

  // The domain. The catalog is the built-in models merged with the operators' (images/catalog-store.ts);
  // the board holds what the providers' model lists say, read before the hub serves.
  const catalog = await createCatalogStore({
    db,
    extraAliases: config.modelAliases,
    log: app.log,
  });
  app.addHook("onClose", async () => catalog.stop());
  const board = createUpstreamModelBoard();
  const latency = createLatencyBoard();
  const sync =
    config.modelListRefreshMs > 0
      ? await startModelSync(
          {
            providers: registry.providers,
            board,
            catalog,
            timeoutMs: MODEL_LIST_TIMEOUT_MS,
            clock,
            log: app.log,
          },
          config.modelListRefreshMs,
        )
      : undefined;
  app.addHook("onClose", async () => sync?.stop());
  const images = createImageService({
    catalog,
    refreshCatalog: () => catalog.refresh(),
    servingModel: (model, options) =>
      options?.ifGone
        ? servingModel(model, catalog, board, clock(), { assumeGone: true })
        : servingModel(model, catalog, board, clock()),
    modelGone: (model) => {
      board.recordGone(model.provider, model.upstreamId, clock());
      sync?.verify(model.provider);
    },
    providers: registry.providers,
    defaultModel: config.defaultImageModel,
    fanOutConcurrency: config.fanOutConcurrency,
    loadInputs: createImageSourceLoader({
      fetcher,
      maxBytes: config.maxInputImageBytes,
      maxPixels: config.maxInputPixels,
    }),
    fetchUpstreamImage,
    hostImage: (bytes, mimeType) => host.save(bytes, mimeType),
    gallery: { add: (images) => db.addHostedImages(images) },
    latency,
    accounting: createAccounting({ db, prices: prices.book, log: app.log, instanceId }),
    admit: createAdmission({ limiter: counters.limiter }),
    routes,
    pinnedProvider: (credentialId) => registry.pinned(credentialId),
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    maxAttempts: config.upstreamMaxAttempts,
    clock,
    log: app.log,
  });

  // HTTP.
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "image-hub",
        version: "0.1.0",
        description:
          "Self-hosted gateway for AI image generation: the AIGNE Hub image generation API, OpenAI-compatible.",
      },
      components: { securitySchemes: { bearerAuth: { type: "http", scheme: "bearer" } } },
    },
  });
  await registerMultipart(app, config);
  const auth = createAuthHooks(
    createAuthenticator({ db, adminKey: config.adminKey }),
    lastUsed,
    counters.wrongKeys,
  );
  registerHealthRoutes(app, { catalog });
  await registerApiReference(app, { catalog });
  const idempotency = createIdempotencyLedger({
    blobs: store,
    clock,
    log: app.log,
    shared: counters.idempotency,
  });
  app.addHook("onClose", () => idempotency.close());
  const imageRequests = {
    images,
    idempotency,
    idempotencyKeepMs: config.idempotencyKeepMs,
  };
  registerImageRoutes(app, { ...imageRequests, auth });
  registerAigneImageRoutes(app, { ...imageRequests, auth, retryGraceMs: config.aigneRetryGraceMs });
  registerAigneDiscovery(app, { catalog, images, prices, publicUrl: config.publicUrl });
  registerModelRoutes(app, { catalog, images, prices, board, latency, auth, clock });
  registerFileRoutes(app, { host, clock });
  registerUsageRoutes(app, { db, auth, catalog, clock });
  registerGalleryRoutes(app, { db, host, catalog, auth, clock });
  await registerConsole(app, {
    publicUrl: config.publicUrl,
    // The store's presigned URLs are on its own host, which only the operator's setup names.
    imagesFromAnywhere: config.imageUrls === "store",
  });
  registerAdminRoutes(app, { db, auth, catalog });
  registerPriceRoutes(app, { prices, catalog, auth, clock });
  registerAdminModelRoutes(app, {
    admin: createModelAdmin({
      store: catalog,
      db,
      prices,
      board,
      isProviderConfigured: (provider) => images.isProviderConfigured(provider),
      templateProblem: (provider, template) =>
        registry.kindOf(provider) === "comfyui" ? checkComfyWorkflow(template) : undefined,
      clock,
    }),
    auth,
  });
  registerCredentialRoutes(app, { db, vault, registry, auth, clock });
  registerCredentialCheck(app, { registry, auth, clock });
  registerModelRouteRoutes(app, {
    routes,
    db,
    catalog,
    registry,
    auth,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    clock,
  });

  return { app, db };
}

/**
 * Settings an admin changes through another instance (PostgreSQL) arrive within a minute; each
 * instance re-reads them at once after its own changes.
 */
function reloadEveryMinute(app: FastifyInstance, what: string, reload: () => Promise<void>) {
  const timer = setInterval(() => {
    reload().catch((error: unknown) => app.log.warn({ err: error }, `could not reload ${what}`));
  }, 60_000);
  timer.unref();
  app.addHook("onClose", async () => clearInterval(timer));
}

/** Honours a sane `X-Request-Id` from a proxy so logs line up; otherwise a new UUID. */
function requestIdOf(request: { headers: Record<string, string | string[] | undefined> }): string {
  const given = request.headers["x-request-id"];
  return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
}

/**
 * Standard output for the logs, as pino writes it (synchronously, so nothing is lost on exit),
 * but one that a closed stdout cannot break: piped into `head`, or a supervisor's pipe gone,
 * a write fails with EPIPE, and an unheard error would crash the hub or, in a signal handler,
 * stop its shutdown halfway. The logs are lost then; requests are still served.
 */
function stdoutDestination() {
  const destination = pino.destination({ dest: 1, sync: true });
  destination.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") process.emitWarning(`log output failed: ${error.message}`);
  });
  return destination;
}

/**
 * Logs carry the request id, method, path and status; never headers with secrets, bodies
 * (prompts, base64) or query strings (a hosted image's signature is a capability).
 */
function loggerOptions(
  level: string,
  stream: AppOptions["logStream"],
): FastifyServerOptions["logger"] {
  return {
    level,
    stream: stream ?? stdoutDestination(),
    redact: {
      paths: ["req.headers.authorization", 'req.headers["x-goog-api-key"]', "req.headers.cookie"],
      censor: "[redacted]",
    },
    serializers: {
      req: (request: { method: string; url: string; ip?: string }) => ({
        method: request.method,
        path: request.url.split("?")[0],
        remoteAddress: request.ip,
      }),
    },
  };
}
