/**
 * The Redis side of shared credential health (health-shared.ts): key names and the Lua scripts
 * that change a credential's hash atomically, so instances writing at once never lose a refusal.
 *
 * `credential-health:<id>` is a hash: `state` (cooling_down | auth_failed), `status` (the
 * upstream's 401/403), `lastError` (JSON), `since`, `until` (ms since the epoch), and
 * `refusals` (in a row, every instance's). Times are written with %.0f, never Lua's default
 * %.14g, which turns a number of more than 14 digits into 1.7e+16.
 */

export const healthKey = (id: string) => `credential-health:${id}`;
export const probeKey = (id: string) => `credential-probe:${id}`;

/** Longer than a probe call should take; a crashed prober's lock lapses after it. */
export const PROBE_LOCK_MS = 120_000;

// KEYS[1]; ARGV: since, until, ttl. A cool-down keeps the refusal count (a rate limit says
// nothing of the key) and never shortens the hash's life.
export const COOL_DOWN_LUA = `
redis.call('HSET', KEYS[1], 'state', 'cooling_down', 'since', ARGV[1], 'until', ARGV[2])
redis.call('HDEL', KEYS[1], 'status', 'lastError')
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
`;
// KEYS[1]; ARGV: now, status, lastError (JSON), first, max, kept. Returns {count, wait, since}:
// the count is every instance's, so the back-off grows across them.
export const REFUSED_LUA = `
local now = tonumber(ARGV[1])
local count = redis.call('HINCRBY', KEYS[1], 'refusals', 1)
local wait = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (count - 1))
local since = string.format('%.0f', now)
if redis.call('HGET', KEYS[1], 'state') == 'auth_failed' then since = redis.call('HGET', KEYS[1], 'since') end
redis.call('HSET', KEYS[1], 'state', 'auth_failed', 'status', ARGV[2], 'lastError', ARGV[3],
  'since', since, 'until', string.format('%.0f', now + wait))
redis.call('PEXPIRE', KEYS[1], wait + tonumber(ARGV[6]))
return {count, string.format('%.0f', wait), since}
`;
export const SUCCEEDED_LUA = `
redis.call('HDEL', KEYS[1], 'refusals')
if redis.call('HGET', KEYS[1], 'state') == 'auth_failed' then
  redis.call('HDEL', KEYS[1], 'state', 'status', 'lastError', 'since', 'until')
end
`;
// Releases the probe lock only if it is still ours (it may have lapsed and been taken).
export const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
`;
