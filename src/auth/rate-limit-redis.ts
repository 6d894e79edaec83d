/**
 * Per-key rpm/ipm limits shared by every hub instance through Redis: the same sliding 60 s
 * window as the in-process limiter (auth/rate-limit.ts), so N instances together allow a key
 * its limits once, not N times.
 *
 * A key's window is a sorted set of its allowed requests, scored by time; a member is
 * `<images>:<unique id>`, so two requests in the same millisecond stay two. One Lua script per
 * check drops what left the window, decides, and adds the request only when it is allowed:
 * atomic, so parallel checks on any number of instances never allow more than the limit, and a
 * denied request consumes nothing. The set expires a window after its last request.
 *
 * Time is the caller's clock, passed to the script, not Redis's: instances must keep their
 * clocks in step (NTP), as a second of skew moves a window by a second.
 *
 * When Redis is down or slow, the check is made by `fallback` (the in-process limiter): limits
 * hold per instance until Redis is back, rather than vanish or hold the request.
 *
 * @example
 * const limiter = createRedisRateLimiter({ link, fallback: createRateLimiter() });
 * const result = await limiter.check(principal.keyId, { rpm: 60, ipm: 20 }, request.n ?? 1);
 * if (!result.allowed) throw rateLimited(result);
 */
import { randomBytes } from "node:crypto";
import { defineScript, type RedisLink, sharedOr } from "../storage/redis.ts";
import type { RateLimiter, RateLimitResult, RateLimits } from "./rate-limit.ts";

export interface SharedRateLimiter {
  check(keyId: string, limits: RateLimits, images: number): Promise<RateLimitResult>;
}

const WINDOW_MS = 60_000;

// KEYS[1] the key's window; ARGV: now, window, rpm (-1: none), ipm (-1: none), images, member.
// Returns {1} when allowed, {0, limit, waitMs} when not. The arithmetic mirrors
// createRateLimiter's line by line; see there for why each wait is what it is.
const CHECK_LUA = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local ipm = tonumber(ARGV[4])
local images = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if rpm >= 0 and count + 1 > rpm then
  local blocking = redis.call('ZRANGE', key, count - rpm, count - rpm, 'WITHSCORES')
  local wait = window
  if blocking[2] then wait = tonumber(blocking[2]) + window - now end
  return {0, 'rpm', string.format('%.0f', wait)}
end
if ipm >= 0 then
  local hits = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local used = 0
  local counts = {}
  for i = 1, #hits, 2 do
    local member = hits[i]
    counts[i] = tonumber(string.sub(member, 1, string.find(member, ':', 1, true) - 1))
    used = used + counts[i]
  end
  if used + images > ipm then
    local wait = window
    for i = 1, #hits, 2 do
      used = used - counts[i]
      if used + images <= ipm then
        wait = tonumber(hits[i + 1]) + window - now
        break
      end
    end
    return {0, 'ipm', string.format('%.0f', wait)}
  end
end
redis.call('ZADD', key, now, ARGV[5] .. ':' .. ARGV[6])
redis.call('PEXPIRE', key, window)
return {1}
`;

type Reply = [1] | [0, "rpm" | "ipm", string];

export function createRedisRateLimiter(options: {
  link: RedisLink;
  clock?: () => number;
  fallback: RateLimiter;
}): SharedRateLimiter {
  const { link, fallback } = options;
  const clock = options.clock ?? Date.now;
  const run = defineScript<Reply>(link, "imageHubRateLimit", CHECK_LUA);

  return {
    async check(keyId, limits, images) {
      // No limits: nothing to count, here or in Redis (as in-process).
      if (limits.rpm === null && limits.ipm === null) return { allowed: true };
      return sharedOr(
        link,
        "key rate limits",
        async () => {
          const member = randomBytes(9).toString("base64url");
          const args = [clock(), WINDOW_MS, limits.rpm ?? -1, limits.ipm ?? -1, images, member];
          const reply = await run([`rate:${keyId}`], args);
          if (reply[0] === 1) return { allowed: true };
          const [, limit, waitMs] = reply;
          const max = (limit === "rpm" ? limits.rpm : limits.ipm) as number;
          return {
            allowed: false,
            limit,
            max,
            retryAfterSeconds: Math.max(1, Math.ceil(Number(waitMs) / 1000)),
          };
        },
        () => fallback.check(keyId, limits, images),
      );
    },
  };
}
