/**
 * The counters several hub instances must share to behave as one: the keys' rate limits, the
 * wrong-key throttle per client address, provider credential health, and the index of
 * idempotent requests (a retry on another instance is still a retry). With REDIS_URL they
 * live in Redis (loaded only then); without it, in this process, as one hub on a laptop needs.
 *
 * When Redis is down (at start or later), each feature goes on with its in-process version for
 * that call, so the hub neither hangs nor refuses: limits and throttles hold per instance
 * rather than across all, and each instance goes by the credential health it saw itself
 * (README, "Several instances"). The link reconnects by itself.
 */
import type { Limiter } from "./auth/admission.ts";
import { createWrongKeyThrottle } from "./auth/brute-force.ts";
import { createRateLimiter } from "./auth/rate-limit.ts";
import type { Config } from "./config.ts";
import { type HealthBoard, localHealthBoard } from "./credentials/health-board.ts";
import type { WrongKeys } from "./http/auth.ts";
import type { SharedIdempotencyIndex } from "./http/idempotency-shared.ts";

/** Longer than any request runs (the longest upstream budget is 5 minutes, plus retries). */
const IDEMPOTENT_RUN_MS = 15 * 60_000;

export interface SharedCounters {
  limiter: Limiter;
  wrongKeys: WrongKeys;
  health: HealthBoard;
  /** The index of idempotent requests every instance reads; none without Redis. */
  idempotency?: SharedIdempotencyIndex;
  close(): Promise<void>;
}

export async function createSharedCounters(
  config: Pick<
    Config,
    "redisUrl" | "redisKeyPrefix" | "authMaxFailures" | "authFailureWindowSeconds"
  >,
  options: {
    clock: () => number;
    /** This instance, named in the idempotency claims it holds. */
    instanceId: string;
    log: {
      warn(details: Record<string, unknown>, message: string): void;
      info(details: Record<string, unknown>, message: string): void;
    };
  },
): Promise<SharedCounters> {
  const { clock, log } = options;
  const throttleSettings = {
    maxFailures: config.authMaxFailures,
    windowMs: config.authFailureWindowSeconds * 1000,
    clock,
  };
  const limiter = createRateLimiter({ clock });
  const wrongKeys = createWrongKeyThrottle(throttleSettings);
  if (config.redisUrl === undefined) {
    return { limiter, wrongKeys, health: localHealthBoard(clock), close: async () => {} };
  }
  const [
    { connectRedis },
    { createRedisRateLimiter },
    { createRedisWrongKeyThrottle },
    shared,
    { createSharedIdempotencyIndex },
  ] = await Promise.all([
    import("./storage/redis.ts"),
    import("./auth/rate-limit-redis.ts"),
    import("./auth/brute-force-redis.ts"),
    import("./credentials/health-shared.ts"),
    import("./http/idempotency-shared.ts"),
  ]);
  const link = connectRedis({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, log, clock });
  // A moment for the first connection, never longer: a Redis that is down must not hold the start.
  await link.whenReady(2_000);
  return {
    limiter: createRedisRateLimiter({ link, clock, fallback: limiter }),
    wrongKeys: createRedisWrongKeyThrottle({ link, ...throttleSettings, fallback: wrongKeys }),
    health: shared.createSharedCredentialHealth({ link, clock }),
    idempotency: createSharedIdempotencyIndex({
      link,
      instanceId: options.instanceId,
      runningTtlMs: IDEMPOTENT_RUN_MS,
      clock,
    }),
    close: () => link.close(),
  };
}
