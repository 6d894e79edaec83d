/**
 * Every setting of the hub, typed, read once from the environment. The names are public
 * (DESIGN.md, README.md): operators and tests rely on them.
 */
import path from "node:path";
import { instancesFromEnv, type ProviderInstance } from "./credentials/instances.ts";
import { parseBlobStoreUrl } from "./storage/blobs/s3-url.ts";

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** `postgres://…` to use PostgreSQL; undefined for SQLite in `dataDir`. */
  databaseUrl: string | undefined;
  /** Base of the image URLs the hub returns, without a trailing slash. */
  publicUrl: string;
  adminKey: string | undefined;
  /** Encrypts provider credentials stored through the admin API; none means none can be. */
  masterKey: string | undefined;
  defaultImageModel: string;
  /** Extra model names an operator routes to catalog models: `fast` → `gpt-image-2`. */
  modelAliases: Record<string, string>;
  /** How often each provider's model list is read again, ms; 0: never read (dates decide). */
  modelListRefreshMs: number;
  openai: { apiKey: string | undefined; baseURL: string };
  gemini: { apiKey: string | undefined; baseURL: string };
  /** Every provider instance the environment configures, openai and google included. */
  providerInstances: ProviderInstance[];
  /** Secret for signing hosted-image URLs; when unset, one is kept in `dataDir`. */
  urlSigningSecret: string | undefined;
  /** Where hosted images live: `dataDir/images`, or an S3 bucket shared by every instance. */
  blobStore:
    | { kind: "disk" }
    | { kind: "s3"; bucket: string; prefix: string; forcePathStyle: boolean };
  /** Whose URLs a `url` reply carries: the hub's signed ones, or the store's presigned ones. */
  imageUrls: "hub" | "store";
  /** Redis shared by every instance (limits, throttles, credential health); none: in-process. */
  redisUrl: string | undefined;
  /** Put before every Redis key, so several hubs can share a server. */
  redisKeyPrefix: string;
  /** A hub on a shared database silent this long is dead: its reservations are released, ms. */
  instanceDeadAfterMs: number;
  imageUrlTtlSeconds: number;
  /** Largest JSON or multipart request body, in bytes. */
  maxBodyBytes: number;
  /** Largest single input image (decoded), in bytes. */
  maxInputImageBytes: number;
  /** Largest decoded input image, in pixels (guards against decompression bombs). */
  maxInputPixels: number;
  /** Addresses a client-given image URL may resolve to although they are private (CIDRs). */
  imageFetchAllowCidrs: string[];
  /** Image reply bytes the process holds at once; more waits (net/byte-budget.ts). */
  maxBufferedImageBytes: number;
  /** Upstream calls one request may have in flight when it fans out. */
  fanOutConcurrency: number;
  /** Upstream time budget of every model, in ms; undefined for each model's catalog default. */
  upstreamTimeoutMs: number | undefined;
  /** Largest upstream reply the hub reads, in bytes. */
  maxUpstreamReplyBytes: number;
  /** Tries of one upstream call, the first included, where a retry is safe (images/retry.ts). */
  upstreamMaxAttempts: number;
  /** Wrong keys one client address may send per window before its wrong keys get 429. */
  authMaxFailures: number;
  authFailureWindowSeconds: number;
  /** Whether X-Forwarded-For names the client (behind a reverse proxy); off by default. */
  trustProxy: boolean;
  /** How long SIGTERM waits for in-flight requests before the process exits anyway. */
  shutdownGraceMs: number;
  /** How long an answer to a request with an Idempotency-Key is kept for its retries, ms. */
  idempotencyKeepMs: number;
  /**
   * How long after an AIGNE request ends an identical one from the same key still counts as its
   * retry (the client re-POSTs after a timeout, with no Idempotency-Key), ms.
   */
  aigneRetryGraceMs: number;
  logLevel: string;
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = text(env, "DATABASE_URL");
  const urlSigningSecret = text(env, "URL_SIGNING_SECRET");
  const blobStoreUrl = text(env, "BLOB_STORE_URL");
  const blobStore: Config["blobStore"] =
    blobStoreUrl === undefined
      ? { kind: "disk" }
      : {
          kind: "s3",
          ...parseBlobStoreUrl(blobStoreUrl),
          forcePathStyle: boolean(env, "S3_FORCE_PATH_STYLE", false),
        };
  const imageUrls = text(env, "IMAGE_URLS") ?? "hub";
  if (imageUrls !== "hub" && imageUrls !== "store") {
    throw new Error(`Setting IMAGE_URLS must be hub or store, not '${imageUrls}'.`);
  }
  if (imageUrls === "store" && blobStore.kind !== "s3") {
    throw new Error("Setting IMAGE_URLS=store needs BLOB_STORE_URL (the store's own URLs).");
  }
  const port = integer(env, "PORT", 8080, { min: 0, max: 65535 });
  const host = text(env, "HOST") ?? "127.0.0.1";
  const publicHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return {
    port,
    host,
    dataDir: path.resolve(text(env, "DATA_DIR") ?? "./data"),
    databaseUrl,
    publicUrl: trimSlash(text(env, "PUBLIC_URL") ?? `http://${hostForUrl(publicHost)}:${port}`),
    adminKey: text(env, "ADMIN_KEY"),
    masterKey: text(env, "MASTER_KEY"),
    defaultImageModel: text(env, "DEFAULT_IMAGE_MODEL") ?? "dall-e-2",
    modelAliases: aliases(env, "MODEL_ALIASES"),
    modelListRefreshMs:
      integer(env, "MODEL_LIST_REFRESH_SECONDS", 3600, { min: 0, max: 7 * 86400 }) * 1000,
    openai: {
      apiKey: text(env, "OPENAI_API_KEY"),
      baseURL: trimSlash(text(env, "OPENAI_BASE_URL") ?? "https://api.openai.com/v1"),
    },
    gemini: {
      apiKey: text(env, "GEMINI_API_KEY"),
      baseURL: trimSlash(
        text(env, "GEMINI_BASE_URL") ?? "https://generativelanguage.googleapis.com",
      ),
    },
    providerInstances: instancesFromEnv(env),
    urlSigningSecret,
    blobStore,
    imageUrls,
    redisUrl: redisUrl(env),
    instanceDeadAfterMs:
      integer(env, "INSTANCE_DEAD_AFTER_SECONDS", 45, { min: 3, max: 3600 }) * 1000,
    redisKeyPrefix: env.REDIS_KEY_PREFIX?.trim() || "image-hub:",
    imageUrlTtlSeconds: integer(env, "IMAGE_URL_TTL_SECONDS", 3600, { min: 60, max: 7 * 86400 }),
    maxBodyBytes: integer(env, "MAX_BODY_BYTES", 64 * 1024 * 1024, { min: 1024 }),
    maxInputImageBytes: integer(env, "MAX_INPUT_IMAGE_BYTES", 25 * 1024 * 1024, { min: 1024 }),
    maxInputPixels: integer(env, "MAX_INPUT_PIXELS", 40_000_000, { min: 1 }),
    imageFetchAllowCidrs: list(env, "IMAGE_FETCH_ALLOW_CIDRS"),
    maxBufferedImageBytes: integer(env, "MAX_BUFFERED_IMAGE_BYTES", 96 * 1024 * 1024, {
      min: 1024 * 1024,
    }),
    fanOutConcurrency: integer(env, "FANOUT_CONCURRENCY", 4, { min: 1, max: 10 }),
    upstreamTimeoutMs: optionalInteger(env, "UPSTREAM_TIMEOUT_MS", { min: 1 }),
    maxUpstreamReplyBytes: integer(env, "MAX_UPSTREAM_REPLY_BYTES", 256 * 1024 * 1024, {
      min: 1024,
      max: 512 * 1024 * 1024,
    }),
    upstreamMaxAttempts: integer(env, "UPSTREAM_MAX_ATTEMPTS", 3, { min: 1, max: 10 }),
    authMaxFailures: integer(env, "AUTH_MAX_FAILURES", 10, { min: 1 }),
    authFailureWindowSeconds: integer(env, "AUTH_FAILURE_WINDOW_SECONDS", 60, { min: 1 }),
    trustProxy: boolean(env, "TRUST_PROXY", false),
    shutdownGraceMs: integer(env, "SHUTDOWN_GRACE_SECONDS", 30, { min: 0, max: 3600 }) * 1000,
    idempotencyKeepMs: integer(env, "IDEMPOTENCY_TTL_SECONDS", 600, { min: 1, max: 86400 }) * 1000,
    aigneRetryGraceMs: integer(env, "AIGNE_RETRY_GRACE_SECONDS", 15, { min: 0, max: 600 }) * 1000,
    logLevel: text(env, "LOG_LEVEL") ?? "info",
  };
}

function redisUrl(env: Env): string | undefined {
  const value = text(env, "REDIS_URL");
  if (value === undefined) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(value);
  } catch {
    parsed = undefined;
  }
  if (
    !parsed ||
    (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") ||
    !parsed.hostname
  ) {
    // Never echo it: the URL may carry a password.
    throw new Error(
      "Setting REDIS_URL must look like redis://[:password@]host[:port][/db] (rediss:// for TLS).",
    );
  }
  return value;
}

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function list(env: Env, name: string): string[] {
  return (text(env, name) ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

/** `name=model,name=model`, e.g. `dall-e-2=gpt-image-1,fast=gpt-image-1-mini`. */
function aliases(env: Env, name: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const pair of list(env, name)) {
    const [alias, target, ...rest] = pair.split("=").map((part) => part.trim());
    if (!alias || !target || rest.length > 0) {
      throw new Error(`Setting ${name} takes name=model pairs separated by commas, not '${pair}'.`);
    }
    result[alias] = target;
  }
  return result;
}

function integer(
  env: Env,
  name: string,
  fallback: number,
  bounds: { min?: number; max?: number },
): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = bounds;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`Setting ${name} must be a whole number from ${min} to ${max}, not '${raw}'.`);
  }
  return value;
}

function optionalInteger(
  env: Env,
  name: string,
  bounds: { min?: number; max?: number },
): number | undefined {
  return text(env, name) === undefined ? undefined : integer(env, name, 0, bounds);
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new Error(`Setting ${name} must be true or false, not '${raw}'.`);
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * What a serving hub needs beyond valid settings. A shared database means instances that serve
 * one another's image URLs: a signing secret kept in one instance's DATA_DIR would make every
 * other instance's links fail, so the secret must be given, the same everywhere. (The CLI, which
 * only opens the database, does not need it.)
 */
export function checkServingConfig(config: Config): void {
  if (config.databaseUrl !== undefined && config.urlSigningSecret === undefined) {
    throw new Error(
      "Setting URL_SIGNING_SECRET is required with DATABASE_URL: hubs sharing a database serve one another's image URLs, so each must sign them with the same secret. Set it to the same random value on every instance (e.g. `openssl rand -hex 32`).",
    );
  }
}
