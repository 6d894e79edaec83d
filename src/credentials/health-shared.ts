/**
 * Credential health (credentials/health.ts) shared by every hub instance through Redis: a 429
 * cool-down or a 401/403 quarantine one instance saw is seen by all at their next request, the
 * refusal back-off grows with every instance's refusals, and the probe after a quarantine is
 * one call at a time across instances.
 *
 * Each instance keeps a local view with the in-process rules (same states, same back-off, same
 * words), read synchronously while picking a credential. `sync(ids)` (one round trip) copies the
 * shared state of a pool into it before a pick, clearing what the shared store no longer holds
 * (another instance's success, an admin's reset). Writes apply to the local view at once and go
 * to Redis on the same connection, so a later `sync` on this instance sees them.
 *
 * Redis keys: `credential-health:<id>`, a hash of the state (`state`, `status`, `lastError`,
 * `since`, `until`) and the refusals in a row (`refusals`); it expires when a cool-down has
 * ended, or MAX_QUARANTINE_MS × 2 after a quarantine ends. `credential-probe:<id>`: the probe
 * lock (SET NX PX), held by one instance at a time.
 *
 * Why not health.ts's createCredentialHealth as the local view: it can only take states it
 * computes itself (its clock, its count), not another instance's `until`, `since` and count.
 * The rules are the same; the words are health.ts's own.
 *
 * Redis down or slow: each instance goes on with its local view (what it saw itself), and a
 * probe is one at a time per instance. The hub keeps calling; at worst each instance pays the
 * refused call the others already paid.
 */
import { randomBytes } from "node:crypto";
import { defineScript, type RedisLink, sharedOr } from "../storage/redis.ts";
import {
  COOL_DOWN_DETAIL,
  DEFAULT_COOL_DOWN_MS,
  FIRST_QUARANTINE_MS,
  type Health,
  MAX_QUARANTINE_MS,
  refusedDetail,
  type Usability,
} from "./health.ts";
import {
  COOL_DOWN_LUA,
  healthKey,
  PROBE_LOCK_MS,
  probeKey,
  REFUSED_LUA,
  RELEASE_LUA,
  SUCCEEDED_LUA,
} from "./health-shared-scripts.ts";

const COOL_DOWN_MARGIN_MS = 5_000;
const REFUSALS_KEPT_MS = MAX_QUARANTINE_MS * 2;
const FEATURE = "credential health";

const coolingDown = (since: number, until: number): Health => ({
  state: "cooling_down",
  detail: COOL_DOWN_DETAIL,
  lastError: null,
  since,
  until,
});
const quarantined = (
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

/** What a credential's hash in Redis says, as the local view holds it. */
function fromShared(fields: Record<string, string>, count: number): Health | undefined {
  const [since, until] = [Number(fields.since), Number(fields.until)];
  if (fields.state === "cooling_down") return coolingDown(since, until);
  if (fields.state !== "auth_failed") return undefined;
  const lastError = JSON.parse(fields.lastError ?? "null") as string | null;
  return quarantined(Number(fields.status), count, lastError, since, until);
}

export function createSharedCredentialHealth(options: { link: RedisLink; clock?: () => number }) {
  const { link } = options;
  const clock = options.clock ?? Date.now;
  // The local view: the in-process rules (credentials/health.ts) over state Redis may replace.
  const health = new Map<string, Health>();
  const refusals = new Map<string, number>();
  const probing = new Set<string>();
  const coolDownScript = defineScript<null>(link, "imageHubCoolDown", COOL_DOWN_LUA);
  const refusedScript = defineScript<[number, string, string]>(
    link,
    "imageHubRefused",
    REFUSED_LUA,
  );
  const succeededScript = defineScript<null>(link, "imageHubSucceeded", SUCCEEDED_LUA);
  const releaseScript = defineScript<null>(link, "imageHubProbeRelease", RELEASE_LUA);

  /** Runs a Redis command; undefined (logged) when Redis is down or fails. */
  async function shared<T>(work: () => Promise<T>): Promise<T | undefined> {
    return sharedOr(link, FEATURE, work, () => undefined);
  }

  function put(id: string, known: Health | undefined, count: number): void {
    if (known) health.set(id, known);
    else health.delete(id);
    if (count > 0) refusals.set(id, count);
    else refusals.delete(id);
  }

  function get(id: string): Health | undefined {
    const known = health.get(id);
    if (known?.state === "cooling_down" && known.until <= clock()) {
      health.delete(id);
      return undefined;
    }
    return known;
  }

  function usability(id: string): Usability {
    const known = get(id);
    if (!known) return "healthy";
    if (known.state === "auth_failed" && known.until <= clock() && !probing.has(id)) return "probe";
    return "blocked";
  }

  /** Marks a probe in flight on this instance only; see tryBeginProbe for all instances. */
  function beginProbe(id: string): () => void {
    probing.add(id);
    return () => probing.delete(id);
  }

  return {
    get,
    usability,
    beginProbe,

    /** Copies the shared state of these credentials into the local view (one round trip). */
    async sync(ids: readonly string[]): Promise<void> {
      if (ids.length === 0) return;
      const pipeline = link.redis.pipeline();
      for (const id of ids) pipeline.hgetall(healthKey(id));
      const replies = await shared(() => pipeline.exec());
      // Nothing is copied from a failed read: the local view stands.
      if (!replies) return;
      for (const [index, id] of ids.entries()) {
        const [error, reply] = replies[index] ?? [new Error("no reply")];
        if (error) return link.degraded(FEATURE, error);
        const fields = reply as Record<string, string>;
        const count = Number(fields.refusals ?? 0);
        put(id, fromShared(fields, count), count);
      }
    },

    /**
     * Takes the probe of a credential whose quarantine has ended, for all instances: a release
     * function, or undefined when another call (here or on another instance) has it. With Redis
     * down the probe is this instance's alone.
     */
    async tryBeginProbe(id: string): Promise<(() => void) | undefined> {
      if (usability(id) !== "probe") return undefined;
      const endLocal = beginProbe(id);
      const token = randomBytes(12).toString("base64url");
      const taken = await shared(() =>
        link.redis.set(probeKey(id), token, "PX", PROBE_LOCK_MS, "NX"),
      );
      if (taken === null) {
        endLocal();
        return undefined;
      }
      return () => {
        endLocal();
        if (taken === "OK") void shared(() => releaseScript([probeKey(id)], [token]));
      };
    },

    async coolDown(id: string, retryAfterSeconds: number | undefined): Promise<void> {
      const now = clock();
      const waitMs =
        retryAfterSeconds === undefined ? DEFAULT_COOL_DOWN_MS : retryAfterSeconds * 1000;
      health.set(id, coolingDown(now, now + waitMs));
      const ttl = Math.max(1, Math.ceil(waitMs + COOL_DOWN_MARGIN_MS));
      await shared(() => coolDownScript([healthKey(id)], [now, now + waitMs, ttl]));
    },

    /**
     * A 401/403: quarantined here at once by the local count, then by the shared one (every
     * instance's refusals); resolves to the wait.
     */
    async refused(id: string, status: number, lastError: string | null): Promise<number> {
      const now = clock();
      const count = (refusals.get(id) ?? 0) + 1;
      const waitMs = Math.min(MAX_QUARANTINE_MS, FIRST_QUARANTINE_MS * 2 ** (count - 1));
      const previous = health.get(id);
      const since = previous?.state === "auth_failed" ? previous.since : now;
      put(id, quarantined(status, count, lastError, since, now + waitMs), count);
      const args = [now, status, JSON.stringify(lastError), FIRST_QUARANTINE_MS, MAX_QUARANTINE_MS];
      const reply = await shared(() => refusedScript([healthKey(id)], [...args, REFUSALS_KEPT_MS]));
      if (!reply) return waitMs;
      const [sharedCount, sharedWait, sharedSince] = [reply[0], Number(reply[1]), Number(reply[2])];
      const known = quarantined(status, sharedCount, lastError, sharedSince, now + sharedWait);
      put(id, known, sharedCount);
      return sharedWait;
    },

    /**
     * A call went through. Redis is written only when the local view (synced just before the
     * call) knew of trouble: a success is every call, trouble is rare.
     */
    async succeeded(id: string): Promise<void> {
      const troubled = get(id)?.state === "auth_failed";
      if (!troubled && !refusals.has(id)) return;
      put(id, troubled ? undefined : get(id), 0);
      await shared(() => succeededScript([healthKey(id)], []));
    },

    /** An admin enabled the credential again: forgotten here and on every instance. */
    async reset(id: string): Promise<void> {
      put(id, undefined, 0);
      probing.delete(id);
      await shared(() => link.redis.del(healthKey(id), probeKey(id)));
    },
  };
}

export type SharedCredentialHealth = ReturnType<typeof createSharedCredentialHealth>;
