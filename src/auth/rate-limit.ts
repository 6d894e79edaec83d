/**
 * Per-key rate limits: requests per minute (rpm) and images per minute (ipm), each over a
 * sliding 60-second window. A request counts 1 towards rpm and its number of images towards
 * ipm. A denied request consumes nothing, so a client that keeps retrying too early does not
 * push its own window further out.
 *
 * The counts live in this process's memory: limits are per hub instance. Behind a load balancer
 * with N instances a key may get up to N times its limits; a shared limiter (Redis, the
 * database) is what that setup would need.
 */
import { HubError } from "../errors.ts";

export interface RateLimits {
  /** Requests per minute; null for no limit. */
  rpm: number | null;
  /** Images per minute; null for no limit. */
  ipm: number | null;
}

export type RateLimitResult =
  | { allowed: true }
  | {
      allowed: false;
      /** Whole seconds until the same request would be allowed (at least 1). */
      retryAfterSeconds: number;
      limit: "rpm" | "ipm";
      /** The limit that was reached, for the message. */
      max: number;
    };

export interface RateLimiter {
  /** Counts the request against the key's window when it is allowed; changes nothing if not. */
  check(keyId: string, limits: RateLimits, images: number): RateLimitResult;
}

const WINDOW_MS = 60_000;

interface Hit {
  at: number;
  images: number;
}

/**
 * @example
 * const limiter = createRateLimiter();
 * const result = limiter.check(principal.keyId, { rpm: 60, ipm: 20 }, request.n ?? 1);
 * if (!result.allowed) throw rateLimited(result);
 */
export function createRateLimiter(options: { clock?: () => number } = {}): RateLimiter {
  const clock = options.clock ?? Date.now;
  // Oldest first. A key's list holds at most `rpm` hits (or `ipm` for image-only limits), since
  // a hit is only added when it fits.
  const windows = new Map<string, Hit[]>();

  return {
    check(keyId, limits, images) {
      if (limits.rpm === null && limits.ipm === null) return { allowed: true };
      const now = clock();
      const hits = windows.get(keyId) ?? [];
      const start = now - WINDOW_MS;
      let expired = 0;
      while (expired < hits.length && (hits[expired] as Hit).at <= start) expired += 1;
      if (expired > 0) hits.splice(0, expired);

      if (limits.rpm !== null && hits.length + 1 > limits.rpm) {
        // The request fits once enough of the oldest hits have left the window.
        const blocking = hits[hits.length - limits.rpm];
        return deny("rpm", limits.rpm, blocking ? blocking.at + WINDOW_MS - now : WINDOW_MS);
      }
      if (limits.ipm !== null) {
        let used = 0;
        for (const hit of hits) used += hit.images;
        if (used + images > limits.ipm) {
          // Drop hits from the oldest until the rest plus this request fit. A request for more
          // images than the limit never fits; it is told to wait a full window, and the message
          // names the limit so the client can see why.
          let waitMs = WINDOW_MS;
          for (const hit of hits) {
            used -= hit.images;
            if (used + images <= limits.ipm) {
              waitMs = hit.at + WINDOW_MS - now;
              break;
            }
          }
          return deny("ipm", limits.ipm, waitMs);
        }
      }

      hits.push({ at: now, images });
      windows.set(keyId, hits);
      return { allowed: true };
    },
  };
}

function deny(limit: "rpm" | "ipm", max: number, waitMs: number): RateLimitResult {
  return { allowed: false, limit, max, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
}

/** The 429 a denied request gets; the error handler sends `retryAfterSeconds` as Retry-After. */
export function rateLimited(result: Extract<RateLimitResult, { allowed: false }>): HubError {
  const what = result.limit === "rpm" ? "requests" : "images";
  return new HubError(
    `Rate limit reached: this API key may make ${result.max} ${what} per minute. Try again in ${result.retryAfterSeconds} s.`,
    {
      status: 429,
      type: "rate_limit_error",
      code: "rate_limit_exceeded",
      retryable: true,
      retryAfterSeconds: result.retryAfterSeconds,
    },
  );
}
