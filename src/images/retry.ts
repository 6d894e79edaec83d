/**
 * When an upstream call may be tried again, and when a model's fallback may take over. The
 * rule: never make a provider produce (and bill) an image twice because the hub could not tell
 * whether the first one was made, unless the admin said so for the route (`retryBillable`).
 *
 * - `not_sent`: the connection was refused or never made; the upstream saw nothing. Retried
 *   with jittered exponential backoff.
 * - `asked_to_wait`: a 429 or 503 that says when to come back (`Retry-After`). Retried after
 *   that wait if it ends inside the request's time budget; nothing was made.
 * - `refused`: the upstream answered with a failure (5xx, 429/503 without a time, credentials
 *   refused, model unknown). Nothing was made, but the same call would likely fail again: not
 *   retried, but a fallback may take over.
 * - `maybe_billed`: a timeout, a connection lost after sending, or a reply the hub could not
 *   read. The upstream may have made (and billed) the image. Neither retried nor handed to a
 *   fallback unless the route allows it.
 * - `final`: the request itself is at fault (rejected, content policy) or the fault is ours:
 *   the same request would fail anywhere.
 */
import { isHubError } from "../errors.ts";

export type FailureKind = "not_sent" | "asked_to_wait" | "refused" | "maybe_billed" | "final";

/** Answers of failure (429 and 503 are judged by their Retry-After, below). */
const REFUSED = new Set([
  "upstream_error",
  "upstream_auth_failed",
  "upstream_model_not_found",
  "provider_not_configured",
]);
const MAYBE_BILLED = new Set([
  "upstream_timeout",
  "upstream_connection_lost",
  "upstream_invalid_response",
  "upstream_reply_too_large",
  "upstream_no_image",
]);

export function classifyFailure(error: unknown): FailureKind {
  if (!isHubError(error)) return "final";
  if (error.code === "upstream_unreachable") return "not_sent";
  if (error.code === "upstream_rate_limited" || error.code === "upstream_unavailable") {
    return error.retryAfterSeconds === undefined ? "refused" : "asked_to_wait";
  }
  if (REFUSED.has(error.code)) return "refused";
  if (MAYBE_BILLED.has(error.code)) return "maybe_billed";
  return "final";
}

export interface RetryPolicy {
  /** Tries of one call, the first included (UPSTREAM_MAX_ATTEMPTS). */
  maxAttempts: number;
  retryBillable: boolean;
  /** First backoff ceiling; doubles per try, up to `maxBackoffMs`. */
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** In [0, 1); Math.random in production. */
  random: () => number;
}

export const DEFAULT_BACKOFF = { baseBackoffMs: 250, maxBackoffMs: 4_000 } as const;

/**
 * How long to wait before trying a failed call again, or undefined to give up. `attempt` is the
 * number of tries made so far; `remainingMs` what is left of the request's time budget.
 */
export function retryDelayMs(
  error: unknown,
  attempt: number,
  remainingMs: number,
  policy: RetryPolicy,
): number | undefined {
  if (attempt >= policy.maxAttempts) return undefined;
  const kind = classifyFailure(error);
  let delay: number;
  if (kind === "asked_to_wait") {
    const seconds = isHubError(error) ? (error.retryAfterSeconds ?? 0) : 0;
    // A little jitter after the wait, so that callers told the same time do not return together.
    delay = seconds * 1000 + policy.random() * policy.baseBackoffMs;
  } else if (kind === "not_sent" || (policy.retryBillable && kind !== "final")) {
    // "Full jitter": a random wait below a ceiling that doubles with each try.
    const ceiling = Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** (attempt - 1));
    delay = policy.random() * ceiling;
  } else {
    return undefined;
  }
  // A retry that could not finish inside the budget only delays the error the client gets.
  return delay < remainingMs ? delay : undefined;
}

/** Whether a model's fallback may take over after this failure of all its calls. */
export function mayFallBack(error: unknown, retryBillable: boolean): boolean {
  const kind = classifyFailure(error);
  if (kind === "final") return false;
  return kind !== "maybe_billed" || retryBillable;
}
