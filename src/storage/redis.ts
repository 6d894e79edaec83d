/**
 * The hub's Redis connection (REDIS_URL), for the counters several instances share: key rate
 * limits, the wrong-key throttle, credential health.
 *
 * Redis is a helper here, never a dependency a request may wait on: every feature built on it
 * has an in-process fallback, so the client is set to fail at once rather than queue or wait.
 * - `enableOfflineQueue: false`: a command while disconnected is refused at once (no queue that
 *   would hold requests until Redis comes back).
 * - `commandTimeout`: a server that accepts the connection but stops answering costs at most
 *   that long per command.
 * - `maxRetriesPerRequest: 0`, `autoResendUnfulfilledCommands: false`: a command cut off by a
 *   lost connection fails (its caller has used its fallback) and is never replayed later, which
 *   would count a request twice.
 * - A retry strategy that never gives up, with a back-off capped at 2 s: the link heals by
 *   itself whenever Redis is back, without a restart.
 *
 * `rediss://` URLs turn TLS on (ioredis reads the scheme); `/2` selects database 2. Every key
 * goes under `keyPrefix` (REDIS_KEY_PREFIX), so several hubs can share one server; nothing here
 * flushes or lists keys.
 *
 * @example
 * const link = connectRedis({ url: config.redisUrl, keyPrefix: "image-hub:", log: app.log });
 * await link.whenReady(2_000); // optional: start with the shared counters when Redis is up
 * app.addHook("onClose", () => link.close());
 */
import { Redis, type RedisOptions } from "ioredis";

type LogFn = (details: Record<string, unknown>, message: string) => void;
export interface RedisLog {
  warn: LogFn;
  info: LogFn;
}

export interface RedisLinkOptions {
  url: string;
  keyPrefix: string;
  log?: RedisLog;
  /** For tests; Date.now otherwise. Only paces the fallback warnings. */
  clock?: () => number;
}

export interface RedisLink {
  readonly redis: Redis;
  /** Whether commands can be sent now; when not, features use their fallback without trying. */
  ready(): boolean;
  /** Resolves true once connected, false after `timeoutMs` (never rejects). */
  whenReady(timeoutMs: number): Promise<boolean>;
  /** Says that `feature` used its fallback: at most one line per feature per 30 s. */
  degraded(feature: string, error: unknown): void;
  /** Stops reconnecting and closes the connection. */
  close(): Promise<void>;
}

export const COMMAND_TIMEOUT_MS = 300;
export const CONNECT_TIMEOUT_MS = 2_000;
const MAX_RECONNECT_DELAY_MS = 2_000;
const DEGRADED_LOG_INTERVAL_MS = 30_000;
/**
 * After a command timed out (a server that accepts but does not answer), Redis is left alone
 * this long: one slow command per second at most, not one per request and feature.
 */
const PAUSE_AFTER_TIMEOUT_MS = 1_000;

/** The client's options besides the URL's: exported so tests can see what ioredis is given. */
export function redisOptions(keyPrefix: string): RedisOptions {
  return {
    keyPrefix,
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // On close, a socket the server does not close is destroyed after this (2 s by default).
    disconnectTimeout: 500,
    retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
    // A managed Redis that failed over leaves us on a read-only replica: reconnect, without
    // resending the refused command (its caller has moved on).
    reconnectOnError: (error) => error.message.startsWith("READONLY") && 1,
  };
}

/** Never throws and never waits: with Redis down, the link says so and keeps retrying. */
export function connectRedis(options: RedisLinkOptions): RedisLink {
  const clock = options.clock ?? Date.now;
  const redis = new Redis(options.url, redisOptions(options.keyPrefix));
  // Where, for the log: never the URL, which may carry a password.
  const where = { redis: `${redis.options.host}:${redis.options.port}/${redis.options.db ?? 0}` };
  let connected = false;
  let saidDown = false;
  let closing = false;
  // Real time, not `clock`: tests move their clock by minutes.
  let pausedUntil = 0;
  const lastDegraded = new Map<string, number>();

  redis.on("ready", () => {
    connected = true;
    if (saidDown) options.log?.info(where, "Redis connection is back: shared counters again");
    saidDown = false;
  });
  // One line when the link goes down (or is down from the start), one when it is back: not one
  // per reconnect attempt. The listener also keeps ioredis from printing unhandled errors.
  const down = (error?: Error) => {
    connected = false;
    if (saidDown || closing) return;
    saidDown = true;
    options.log?.warn(
      { ...where, reason: error?.message },
      "Redis is unreachable: rate limits, the wrong-key throttle and credential health are per instance until it is back; reconnecting in the background",
    );
  };
  redis.on("error", (error: Error) => down(error));
  redis.on("close", () => {
    if (connected) down();
  });

  return {
    redis,
    ready: () => !closing && redis.status === "ready" && Date.now() >= pausedUntil,
    whenReady(timeoutMs) {
      if (redis.status === "ready") return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (value: boolean) => {
          clearTimeout(timer);
          redis.off("ready", onReady);
          resolve(value);
        };
        const onReady = () => done(true);
        const timer = setTimeout(() => done(false), timeoutMs);
        redis.on("ready", onReady);
      });
    },
    degraded(feature, error) {
      if (error instanceof Error && error.message === "Command timed out") {
        pausedUntil = Date.now() + PAUSE_AFTER_TIMEOUT_MS;
      }
      const now = clock();
      const last = lastDegraded.get(feature);
      if (last !== undefined && now - last < DEGRADED_LOG_INTERVAL_MS) return;
      lastDegraded.set(feature, now);
      const reason = error instanceof Error ? error.message : String(error);
      options.log?.warn(
        { ...where, feature, reason },
        `Redis unavailable: ${feature} falls back to this instance's own counts`,
      );
    },
    async close() {
      closing = true;
      // QUIT lets the server finish and close; a server that does not answer is cut off.
      if (redis.status === "ready") {
        const quit = await redis.quit().then(
          () => true,
          () => false,
        );
        if (quit) return;
      }
      if (redis.status !== "end") redis.disconnect();
    },
  };
}

export type ScriptRunner<T> = (
  keys: readonly string[],
  args: readonly (string | number)[],
) => Promise<T>;

/**
 * A Lua script as a command of the link: sent with EVALSHA, and with EVAL when the server does
 * not have it yet (ioredis's defineCommand); its keys get the link's prefix like any command's.
 */
export function defineScript<T>(link: RedisLink, name: string, lua: string): ScriptRunner<T> {
  link.redis.defineCommand(name, { lua });
  const command = (link.redis as unknown as Record<string, (...args: unknown[]) => Promise<T>>)[
    name
  ] as (...args: unknown[]) => Promise<T>;
  return (keys, args) => command.call(link.redis, keys.length, ...keys, ...args);
}

/**
 * Runs `shared` when the link is up, `fallback` when it is down or `shared` fails (a timeout, a
 * lost connection): the protection degrades to this instance instead of blocking the request.
 */
export async function sharedOr<T>(
  link: RedisLink,
  feature: string,
  shared: () => Promise<T>,
  fallback: () => T,
): Promise<T> {
  if (!link.ready()) {
    link.degraded(feature, new Error("not connected"));
    return fallback();
  }
  try {
    return await shared();
  } catch (error) {
    link.degraded(feature, error);
    return fallback();
  }
}
