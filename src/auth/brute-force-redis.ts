/**
 * The wrong-key throttle (auth/brute-force.ts) shared by every hub instance through Redis: an
 * address's wrong keys count together whichever instance they reach, and a throttle one
 * instance started is answered by all. Same rules as in-process: counted per clientOf(address)
 * (IPv6 per /64), `maxFailures` within `windowMs` start a throttle that doubles up to
 * `maxPenaltyMs` while the flood goes on, and an address quiet for max(window, max penalty) × 2
 * starts afresh.
 *
 * A client's state is one Redis hash (its recent wrong keys, the throttle's end, the throttles
 * in a row, its last wrong key), updated by one Lua script, so wrong keys arriving at several
 * instances at once are counted exactly. The hash expires once the client has been quiet long
 * enough to be forgotten: Redis's expiry is the memory bound here (the in-process throttle's
 * `maxAddresses`); each hash is about 200 bytes.
 *
 * Time is the caller's clock (see rate-limit-redis.ts). When Redis is down or slow, `fallback`
 * (the in-process throttle) counts that wrong key: the throttle holds per instance meanwhile.
 * Valid keys never depend on this either way.
 *
 * @example
 * const throttle = createRedisWrongKeyThrottle({
 *   link, maxFailures: 10, windowMs: 60_000,
 *   fallback: createWrongKeyThrottle({ maxFailures: 10, windowMs: 60_000 }),
 * });
 * const { throttle: wait } = await throttle.recordWrongKey(request.ip);
 * if (wait) throw tooManyWrongKeys(wait);
 */
import { defineScript, type RedisLink, sharedOr } from "../storage/redis.ts";
import { clientOf, type Throttle, type WrongKeyThrottle } from "./brute-force.ts";

export interface SharedWrongKeyThrottle {
  recordWrongKey(
    address: string | undefined,
  ): Promise<{ throttle: Throttle | undefined; started: boolean; client: string }>;
}

// KEYS[1] the client's hash; ARGV: now, window, maxFailures, firstPenalty, maxPenalty,
// forgetAfter. Returns {ms until the throttle ends (0: none), 1 if this wrong key started it}.
// Mirrors createWrongKeyThrottle's recordWrongKey step by step.
const RECORD_LUA = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local maxFailures = tonumber(ARGV[3])
local firstPenalty = tonumber(ARGV[4])
local maxPenalty = tonumber(ARGV[5])
local forgetAfter = tonumber(ARGV[6])
local state = redis.call('HMGET', key, 'times', 'until', 'throttles', 'last')
local times, throttledUntil, throttles = {}, 0, 0
if state[4] and tonumber(state[4]) > now - forgetAfter then
  for at in string.gmatch(state[1] or '', '[^,]+') do
    if tonumber(at) > now - window then table.insert(times, at) end
  end
  throttledUntil = tonumber(state[2]) or 0
  throttles = tonumber(state[3]) or 0
end
table.insert(times, string.format('%.0f', now))
while #times > maxFailures do table.remove(times, 1) end
local started = 0
if throttledUntil <= now and #times >= maxFailures then
  throttles = throttles + 1
  throttledUntil = now + math.min(maxPenalty, firstPenalty * 2 ^ (throttles - 1))
  started = 1
end
redis.call('HSET', key, 'times', table.concat(times, ','),
  'until', string.format('%.0f', throttledUntil), 'throttles', throttles,
  'last', string.format('%.0f', now))
redis.call('PEXPIRE', key, forgetAfter)
local wait = 0
if throttledUntil > now then wait = throttledUntil - now end
return {string.format('%.0f', wait), started}
`;

export function createRedisWrongKeyThrottle(options: {
  link: RedisLink;
  maxFailures: number;
  windowMs: number;
  firstPenaltyMs?: number;
  maxPenaltyMs?: number;
  clock?: () => number;
  fallback: WrongKeyThrottle;
}): SharedWrongKeyThrottle {
  const { link, maxFailures, windowMs, fallback } = options;
  const firstPenaltyMs = options.firstPenaltyMs ?? 2_000;
  const maxPenaltyMs = options.maxPenaltyMs ?? 60_000;
  const clock = options.clock ?? Date.now;
  const forgetAfterMs = Math.max(windowMs, maxPenaltyMs) * 2;
  const run = defineScript<[string, 0 | 1]>(link, "imageHubWrongKey", RECORD_LUA);

  return {
    recordWrongKey(address) {
      const client = clientOf(address);
      return sharedOr(
        link,
        "the wrong-key throttle",
        async () => {
          const args = [
            clock(),
            windowMs,
            maxFailures,
            firstPenaltyMs,
            maxPenaltyMs,
            forgetAfterMs,
          ];
          const [waitMs, started] = await run([`wrong-key:${client}`], args);
          const wait = Number(waitMs);
          const throttle =
            wait > 0 ? { retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)) } : undefined;
          return { throttle, started: started === 1, client };
        },
        () => fallback.recordWrongKey(address),
      );
    },
  };
}
