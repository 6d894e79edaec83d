/**
 * Brute-force protection for API keys: failed key checks are counted per client address over a
 * sliding window, and an address with `maxFailures` of them in the window is refused (429)
 * before its key is looked up, so a right guess during the lockout neither works nor costs a
 * database read. The lockout lifts as failures leave the window: then one more try is allowed,
 * and a failed one locks the address again, so an address never gets more than `maxFailures`
 * tries per window.
 *
 * A success does not reset its address's count. If it did, an attacker holding any valid key
 * (a client key of its own) could slip one good request in after every `maxFailures - 1`
 * guesses at the admin key and never be locked out. A legitimate client that mistypes a key now
 * and then loses nothing: its few failures age out of the window on their own.
 *
 * IPv6 clients are counted per /64: a host or a customer line is usually given a whole /64
 * (SLAAC and privacy addresses rotate inside it), so counting single addresses would hand an
 * attacker 2^64 fresh counters. IPv4-mapped IPv6 addresses count as the IPv4 address.
 *
 * The counts live in this process's memory (per hub instance, like the key rate limits), at most
 * `maxAddresses` of them: past that the address whose last failure is oldest is forgotten.
 *
 * Known limit: a failure is counted when its key check ends, so parallel guesses that are all
 * in flight before the first one fails are all checked (on SQLite the check runs without
 * yielding, so there is no such window; on PostgreSQL it is one indexed read).
 */
import { isIPv4 } from "node:net";
import ipaddr from "ipaddr.js";
import { HubError } from "../errors.ts";

export interface BruteForceOptions {
  /** Failed key checks an address may make in the window; the next request is refused. */
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked at once (memory bound); 50,000 by default, about 10 MB at worst. */
  maxAddresses?: number;
  clock?: () => number;
}

export interface Lockout {
  /** Whole seconds until the oldest counted failure leaves the window (at least 1). */
  retryAfterSeconds: number;
}

export interface BruteForceGuard {
  /** The lockout in force for this client address, or undefined when it may present a key. */
  lockoutOf(address: string | undefined): Lockout | undefined;
  /** Counts a failed key check; `lockedOut` is true only for the failure that locks it. */
  recordFailure(address: string | undefined): { lockedOut: boolean; client: string };
  /** How many addresses are tracked now. */
  readonly trackedAddresses: number;
}

const DEFAULT_MAX_ADDRESSES = 50_000;

/**
 * @example
 * const guard = createBruteForceGuard({ maxFailures: 10, windowMs: 300_000 });
 * const lockout = guard.lockoutOf(request.ip);
 * if (lockout) throw tooManyFailedAuth(lockout);
 * // ... on a 401 from the authenticator:
 * if (guard.recordFailure(request.ip).lockedOut) log.warn(...);
 */
export function createBruteForceGuard(options: BruteForceOptions): BruteForceGuard {
  const { maxFailures, windowMs } = options;
  const maxAddresses = options.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
  const clock = options.clock ?? Date.now;
  // Per client, its newest failures (at most maxFailures), oldest first. The map is kept in
  // order of each client's last failure, so expired and evicted clients are at its front.
  const failures = new Map<string, number[]>();

  const isLocked = (times: readonly number[], now: number): boolean =>
    times.length >= maxFailures && (times[0] as number) > now - windowMs;

  function forgetExpired(now: number): void {
    for (const [client, times] of failures) {
      if ((times.at(-1) as number) > now - windowMs) return;
      failures.delete(client);
    }
  }

  return {
    lockoutOf(address) {
      const times = failures.get(clientOf(address));
      if (!times) return undefined;
      const now = clock();
      if (!isLocked(times, now)) return undefined;
      const waitMs = (times[0] as number) + windowMs - now;
      return { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    },

    recordFailure(address) {
      const client = clientOf(address);
      const now = clock();
      forgetExpired(now);
      const times = (failures.get(client) ?? []).filter((at) => at > now - windowMs);
      const wasLocked = isLocked(times, now);
      times.push(now);
      if (times.length > maxFailures) times.splice(0, times.length - maxFailures);
      // Re-inserted so the map stays in order of last failure.
      failures.delete(client);
      failures.set(client, times);
      while (failures.size > maxAddresses) {
        failures.delete(failures.keys().next().value as string);
      }
      return { lockedOut: !wasLocked && isLocked(times, now), client };
    },

    get trackedAddresses() {
      return failures.size;
    },
  };
}

/**
 * The counter an address falls under: an IPv4 address itself, an IPv6 address's /64 (as
 * `2001:db8:1:2::/64`), an IPv4-mapped IPv6 address as its IPv4 address. Something that is not
 * an address (a test's injected request, a Unix socket) counts as itself.
 */
export function clientOf(address: string | undefined): string {
  if (!address) return "unknown";
  if (isIPv4(address)) return address;
  const bare = address.split("%")[0] as string;
  if (!ipaddr.IPv6.isValid(bare)) return address;
  const parsed = ipaddr.IPv6.parse(bare);
  if (parsed.isIPv4MappedAddress()) return parsed.toIPv4Address().toString();
  const prefix = parsed.parts.slice(0, 4).concat([0, 0, 0, 0]);
  return `${new ipaddr.IPv6(prefix).toString()}/64`;
}

/** The 429 a locked-out address gets; the error handler sends Retry-After. */
export function tooManyFailedAuth(lockout: Lockout): HubError {
  return new HubError(
    `Too many requests with a wrong or missing API key from your address. Try again in ${lockout.retryAfterSeconds} s.`,
    {
      status: 429,
      type: "rate_limit_error",
      code: "too_many_failed_auth",
      retryable: true,
      retryAfterSeconds: lockout.retryAfterSeconds,
    },
  );
}
