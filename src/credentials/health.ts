/**
 * The health of each provider credential, in this process's memory: what the upstream said of
 * it lately, and when it is worth calling again. Nothing here keeps a credential off for good;
 * only an admin's `disabled: true` does (stored, in the registry).
 *
 * - A 429 cools a credential down for the wait the upstream asked (30 s without one).
 * - A 401 or 403 quarantines it, with a back-off that grows while the refusals go on: 30 s,
 *   doubling, at most 30 minutes. Keys are refused for reasons that pass (a key rotated a minute
 *   late, a brief incident), so a refusal is a reason to wait, not to give up.
 * - When a quarantine ends, one call at a time may try the credential (a probe). A success
 *   clears it; another refusal quarantines it again, twice as long. A key that is really bad
 *   costs one refused call per back-off step, whatever the traffic.
 *
 * A restart forgets it all: a changed key is tried at once, an unchanged bad one costs a call.
 */
export type HealthState = "cooling_down" | "auth_failed";

export interface Health {
  state: HealthState;
  /** Why, in words for the admin API and the log. */
  detail: string;
  /** The upstream's own words of its last refusal (keys cut out), where it gave any. */
  lastError: string | null;
  /** ms since the epoch: since when the credential has been in this state. */
  since: number;
  /** ms since the epoch: when the cool-down ends or the next probe may be made. */
  until: number;
}

/** What the admin API says of a credential cooling down, and of one refused `count` times. */
export const COOL_DOWN_DETAIL =
  "The upstream answered 429 (rate limited); skipped until the wait it asked for ends.";
export const refusedDetail = (status: number, count: number) =>
  `The upstream answered ${status} (refused the key) ${count} time(s) in a row; tried again when the wait ends, and used again once it is accepted.`;

export const DEFAULT_COOL_DOWN_MS = 30_000;
export const FIRST_QUARANTINE_MS = 30_000;
export const MAX_QUARANTINE_MS = 30 * 60_000;

export const coolingDown = (since: number, until: number): Health => ({
  state: "cooling_down",
  detail: COOL_DOWN_DETAIL,
  lastError: null,
  since,
  until,
});

export const quarantined = (
  status: number,
  count: number,
  lastError: string | null,
  since: number,
  until: number,
): Health => ({
  state: "auth_failed",
  detail: refusedDetail(status, count),
  lastError,
  since,
  until,
});

/** How a credential may be used now. */
export type Usability = "healthy" | "probe" | "blocked";

export function createCredentialHealth(clock: () => number = Date.now) {
  const health = new Map<string, Health>();
  const probing = new Set<string>();
  // Refusals in a row (the back-off's exponent), until a success: a rate limit in between says
  // nothing of the key, so it neither clears nor restarts them.
  const refusals = new Map<string, number>();

  /** The health in force; a cool-down that has ended is forgotten. */
  function get(id: string): Health | undefined {
    const known = health.get(id);
    if (known?.state === "cooling_down" && known.until <= clock()) {
      health.delete(id);
      return undefined;
    }
    return known;
  }

  return {
    get,

    usability(id: string): Usability {
      const known = get(id);
      if (!known) return "healthy";
      if (known.state === "auth_failed" && known.until <= clock() && !probing.has(id)) {
        return "probe";
      }
      return "blocked";
    },

    /** Marks a probe in flight; returns the function that ends it. */
    beginProbe(id: string): () => void {
      probing.add(id);
      return () => probing.delete(id);
    },

    coolDown(id: string, retryAfterSeconds: number | undefined): void {
      const now = clock();
      const waitMs =
        retryAfterSeconds === undefined ? DEFAULT_COOL_DOWN_MS : retryAfterSeconds * 1000;
      health.set(id, coolingDown(now, now + waitMs));
    },

    /** A 401/403: quarantined for the next step of the back-off; returns how long. */
    refused(id: string, status: number, lastError: string | null): number {
      const now = clock();
      const count = (refusals.get(id) ?? 0) + 1;
      refusals.set(id, count);
      const waitMs = Math.min(MAX_QUARANTINE_MS, FIRST_QUARANTINE_MS * 2 ** (count - 1));
      const previous = health.get(id);
      const since = previous?.state === "auth_failed" ? previous.since : now;
      health.set(id, quarantined(status, count, lastError, since, now + waitMs));
      return waitMs;
    },

    /** A call went through: whatever the credential's trouble was, it is over. */
    succeeded(id: string): void {
      refusals.delete(id);
      if (health.get(id)?.state === "auth_failed") health.delete(id);
    },

    /** Refusals in a row since the last success. */
    refusalsOf(id: string): number {
      return refusals.get(id) ?? 0;
    },

    /**
     * Takes a state computed elsewhere (another instance's, through Redis: credentials/
     * health-shared.ts), with its refusals in a row; undefined clears it.
     */
    restore(id: string, known: Health | undefined, refusalsInARow: number): void {
      if (known) health.set(id, known);
      else health.delete(id);
      if (refusalsInARow > 0) refusals.set(id, refusalsInARow);
      else refusals.delete(id);
    },

    /** An admin enabled the credential again: forget its trouble. */
    reset(id: string): void {
      health.delete(id);
      probing.delete(id);
      refusals.delete(id);
    },
  };
}

export type CredentialHealth = ReturnType<typeof createCredentialHealth>;
