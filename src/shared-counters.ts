/**
 * The counters several hub instances must share to behave as one: the keys' rate limits, the
 * wrong-key throttle per client address, and provider credential health. With REDIS_URL they
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

export interface SharedCounters {
  limiter: Limiter;
  wrongKeys: WrongKeys;
  health: HealthBoard;
  close(): Promise<void>;
}

export async function createSharedCounters(
  config: Pick<
    Config,
    "redisUrl" | "redisKeyPrefix" | "authMaxFailures" | "authFailureWindowSeconds"
  >,
  options: {
    clock: () => number;
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
  const [{ connectRedis }, { createRedisRateLimiter }, { createRedisWrongKeyThrottle }, shared] =
    await Promise.all([
      import("./storage/redis.ts"),
      import("./auth/rate-limit-redis.ts"),
      import("./auth/brute-force-redis.ts"),
      import("./credentials/health-shared.ts"),
    ]);
  const link = connectRedis({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, log, clock });
  // A moment for the first connection, never longer: a Redis that is down must not hold the start.
  await link.whenReady(2_000);
  return {
    limiter: createRedisRateLimiter({ link, clock, fallback: limiter }),
    wrongKeys: createRedisWrongKeyThrottle({ link, ...throttleSettings, fallback: wrongKeys }),
    health: shared.createSharedCredentialHealth({ link, clock }),
    close: () => link.close(),
  };
}
