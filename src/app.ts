/**
 * Builds the Fastify app from its parts, in an order you can read top to bottom. `main.ts` runs
 * it; tests build it the same way and `inject` into it or listen on a loopback port.
 */
import { createHash, randomUUID } from "node:crypto";
import path from "node:path";
import multipart from "@fastify/multipart";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { createAuthenticator } from "./auth/principal.ts";
import type { Config } from "./config.ts";
import { registerAdminRoutes } from "./http/admin.ts";
import { createAuthHooks } from "./http/auth.ts";
import { registerErrorHandling } from "./http/errors.ts";
import { registerFileRoutes } from "./http/files.ts";
import { registerGracefulClose } from "./http/graceful-close.ts";
import { registerHealthRoutes } from "./http/health.ts";
import { registerImageRoutes } from "./http/images.ts";
import { registerModelRoutes } from "./http/models.ts";
import { createCatalog, type ProviderName } from "./images/catalog.ts";
import { createImageService } from "./images/generate.ts";
import { createImageHost, startSweeper } from "./images/hosting.ts";
import { MAX_INPUT_IMAGES, MAX_PROMPT_LENGTH } from "./images/schema.ts";
import { loadOrCreateSigningSecret } from "./images/secret.ts";
import { createImageSourceLoader } from "./images/sources.ts";
import { createSafeFetcher } from "./net/safe-fetch.ts";
import { createGoogleProvider } from "./providers/google.ts";
import { createLocalProvider } from "./providers/local.ts";
import { createOpenAIProvider } from "./providers/openai.ts";
import type { ImageProvider } from "./providers/types.ts";
import { createDiskBlobStore } from "./storage/blobs/disk.ts";
import { openSqliteDatabase } from "./storage/db/sqlite.ts";
import type { Database } from "./storage/db/types.ts";

export interface AppOptions {
  /** Pino options, or false for silence (tests). */
  logger?: FastifyServerOptions["logger"];
  /** Where the standard log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
  /** Replaces the clock (tests of URL expiry). */
  clock?: () => number;
  /** Replaces the fetch providers use (tests). */
  providerFetch?: typeof fetch;
}

export interface App {
  app: FastifyInstance;
  db: Database;
}

const SWEEP_INTERVAL_MS = 5 * 60 * 1000;

export async function buildApp(config: Config, options: AppOptions = {}): Promise<App> {
  const clock = options.clock ?? Date.now;
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config.logLevel, options.logStream),
    bodyLimit: config.maxBodyBytes,
    genReqId: requestIdOf,
    // Types as sent, as OpenAI checks them: "n": "2" is a 400, not quietly 2.
    ajv: { customOptions: { allErrors: false, coerceTypes: false } },
  });
  // JSON only (multipart for edits, below): a text/plain body is a 415, not a confusing 400.
  app.removeContentTypeParser("text/plain");
  registerGracefulClose(app);
  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  registerErrorHandling(app);

  // Resources, each closed when the app closes.
  if (config.databaseUrl) {
    throw new Error("DATABASE_URL (PostgreSQL) is not supported yet; unset it to use SQLite.");
  }
  const db = openSqliteDatabase(path.join(config.dataDir, "image-hub.sqlite"));
  app.addHook("onClose", () => db.close());

  const store = await createDiskBlobStore({ directory: path.join(config.dataDir, "images") });
  const host = createImageHost({
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

  const fetcher = createSafeFetcher({
    allowCidrs: config.imageFetchAllowCidrs,
    maxBytes: config.maxInputImageBytes,
  });
  app.addHook("onClose", () => fetcher.close());

  // The domain.
  const catalog = createCatalog(undefined, config.modelAliases);
  const images = createImageService({
    catalog,
    providers: createProviders(config, options.providerFetch),
    defaultModel: config.defaultImageModel,
    fanOutConcurrency: config.fanOutConcurrency,
    loadInputs: createImageSourceLoader({
      fetcher,
      maxBytes: config.maxInputImageBytes,
      maxPixels: config.maxInputPixels,
    }),
    fetchUpstreamImage: async (url, signal) =>
      (await fetcher.fetch(url, { param: "upstream_url", signal })).bytes,
    hostImage: async (bytes, mimeType) => (await host.save(bytes, mimeType)).url,
    recordUsage: (record) => db.recordUsage(record),
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
  await app.register(multipart, {
    limits: {
      fileSize: Math.min(config.maxInputImageBytes, config.maxBodyBytes),
      files: MAX_INPUT_IMAGES + 1,
      fields: 30,
      fieldSize: MAX_PROMPT_LENGTH * 4,
      parts: MAX_INPUT_IMAGES + 31,
    },
    throwFileSizeLimit: true,
  });
  const auth = createAuthHooks(createAuthenticator({ db, adminKey: config.adminKey }));
  registerHealthRoutes(app);
  registerImageRoutes(app, { images, auth });
  registerModelRoutes(app, { catalog, images, auth });
  registerFileRoutes(app, { host, clock });
  registerAdminRoutes(app, { db, auth });

  return { app, db };
}

function createProviders(
  config: Config,
  fetchOverride: typeof fetch | undefined,
): Partial<Record<ProviderName, ImageProvider>> {
  const providers: Partial<Record<ProviderName, ImageProvider>> = { local: createLocalProvider() };
  const common = { timeoutMs: config.upstreamTimeoutMs, fetch: fetchOverride };
  if (config.openai.apiKey) {
    providers.openai = createOpenAIProvider({
      apiKey: config.openai.apiKey,
      baseURL: config.openai.baseURL,
      ...common,
    });
  }
  if (config.gemini.apiKey) {
    providers.google = createGoogleProvider({
      apiKey: config.gemini.apiKey,
      baseURL: config.gemini.baseURL,
      ...common,
    });
  }
  return providers;
}

/** Honours a sane `X-Request-Id` from a proxy so logs line up; otherwise a new UUID. */
function requestIdOf(request: { headers: Record<string, string | string[] | undefined> }): string {
  const given = request.headers["x-request-id"];
  return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
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
    ...(stream ? { stream } : {}),
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
