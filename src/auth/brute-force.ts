/**
 * A throttle on floods of wrong API keys, per client address, that never stands in the way of a
 * valid key.
 *
 * Why not a lockout: API keys carry 128 random bits, so guessing one is not feasible however
 * many tries an address gets, and locking an address out buys nothing against guessing. It does
 * cost availability: many clients share one address (apps on one host, a NAT, a Docker bridge, a
 * proxy without TRUST_PROXY), and one app with a stale key would lock out the others and the
 * operator. So every key is checked, a valid one is always served (its own rpm/ipm still
 * apply), and only wrong keys are answered differently:
 *
 * - a wrong key counts; a request with no key at all is a plain 401 and does not (refusing it
 *   costs nothing: no hash, no lookup);
 * - `maxFailures` wrong keys within `windowMs` throttle the address: its wrong keys get 429 with
 *   Retry-After instead of 401, for a short while that doubles each time the flood goes on
 *   (2 s, 4 s, … at most a minute) and is forgotten once the address has been quiet for a while;
 * - a client told to wait (the SDKs honour Retry-After) slows its flood down, and the log gets
 *   one line per throttle rather than one per wrong key.
 *
 * IPv6 clients are counted per /64: a host or a customer line is usually given a whole /64
 * (SLAAC and privacy addresses rotate inside it), so counting single addresses would hand an
 * attacker 2^64 fresh counters. IPv4-mapped IPv6 addresses count as the IPv4 address.
 *
 * The counts live in this process's memory (per hub instance, like the key rate limits), at most
 * `maxAddresses` of them: past that the address whose last wrong key is oldest is forgotten.
 */
import { isIPv4 } from "node:net";
import ipaddr from "ipaddr.js";
import { HubError } from "../errors.ts";

export interface WrongKeyThrottleOptions {
  /** Wrong keys an address may send within the window; the next ones are throttled. */
  maxFailures: number;
  windowMs: number;
  /** The first throttle's length; each one after doubles it. 2 s by default. */
  firstPenaltyMs?: number;
  /** The longest throttle. A minute by default. */
  maxPenaltyMs?: number;
  /** Addresses tracked at once (memory bound); 50,000 by default, about 10 MB at worst. */
  maxAddresses?: number;
  clock?: () => number;
}

export interface Throttle {
  /** Whole seconds until the throttle ends (at least 1). */
  retryAfterSeconds: number;
}

export interface WrongKeyThrottle {
  /**
   * Counts a wrong key from `address`. `throttle` is set when its wrong keys are throttled now
   * (answer 429); `started` is true only for the wrong key that started a throttle.
   */
  recordWrongKey(address: string | undefined): {
    throttle: Throttle | undefined;
    started: boolean;
    client: string;
  };
  /** How many addresses are tracked now. */
  readonly trackedAddresses: number;
}

interface ClientState {
  /** Wrong keys counted toward the next throttle, oldest first (at most maxFailures). */
  times: number[];
  /** ms since the epoch: when the throttle in force ends (0 for none). */
  throttledUntil: number;
  /** Throttles in a row: the doubling's exponent. */
  throttles: number;
  lastAt: number;
}

const DEFAULT_MAX_ADDRESSES = 50_000;

/**
 * @example
 * const throttle = createWrongKeyThrottle({ maxFailures: 10, windowMs: 60_000 });
 * // ... when a request's key is wrong:
 * const { throttle: wait } = throttle.recordWrongKey(request.ip);
 * if (wait) throw tooManyWrongKeys(wait);
 */
export function createWrongKeyThrottle(options: WrongKeyThrottleOptions): WrongKeyThrottle {
  const { maxFailures, windowMs } = options;
  const firstPenaltyMs = options.firstPenaltyMs ?? 2_000;
  const maxPenaltyMs = options.maxPenaltyMs ?? 60_000;
  const maxAddresses = options.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
  const clock = options.clock ?? Date.now;
  // An address quiet for this long starts afresh: its next throttle is the first again.
  const forgetAfterMs = Math.max(windowMs, maxPenaltyMs) * 2;
  // Kept in order of each client's last wrong key, so the stale ones are at the front.
  const clients = new Map<string, ClientState>();

  function forgetStale(now: number): void {
    for (const [client, state] of clients) {
      if (state.lastAt > now - forgetAfterMs) return;
      clients.delete(client);
    }
  }

  return {
    recordWrongKey(address) {
      const client = clientOf(address);
      const now = clock();
      forgetStale(now);
      const state = clients.get(client) ?? {
        times: [],
        throttledUntil: 0,
        throttles: 0,
        lastAt: now,
      };
      state.lastAt = now;
      state.times = state.times.filter((at) => at > now - windowMs);
      state.times.push(now);
      if (state.times.length > maxFailures) state.times.splice(0, state.times.length - maxFailures);
      let started = false;
      if (state.throttledUntil <= now && state.times.length >= maxFailures) {
        state.throttles += 1;
        state.throttledUntil =
          now + Math.min(maxPenaltyMs, firstPenaltyMs * 2 ** (state.throttles - 1));
        started = true;
      }
      // Re-inserted so the map stays in order of last wrong key.
      clients.delete(client);
      clients.set(client, state);
      while (clients.size > maxAddresses) clients.delete(clients.keys().next().value as string);
      const throttle =
        state.throttledUntil > now
          ? { retryAfterSeconds: Math.max(1, Math.ceil((state.throttledUntil - now) / 1000)) }
          : undefined;
      return { throttle, started, client };
    },

    get trackedAddresses() {
      return clients.size;
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

/** The 429 a throttled wrong key gets; the error handler sends Retry-After. */
export function tooManyWrongKeys(throttle: Throttle): HubError {
  return new HubError(
    `Incorrect API key provided, and too many wrong keys from your address: wait ${throttle.retryAfterSeconds} s. Requests with a valid key are served meanwhile.`,
    {
      status: 429,
      type: "rate_limit_error",
      code: "too_many_failed_auth",
      retryable: true,
      retryAfterSeconds: throttle.retryAfterSeconds,
    },
  );
}
