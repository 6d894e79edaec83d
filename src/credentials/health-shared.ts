/**
 * Credential health (credentials/health.ts) shared by every hub instance through Redis: a 429
 * cool-down or a 401/403 quarantine one instance saw is seen by all at their next request, the
 * refusal back-off grows with every instance's refusals, and the probe after a quarantine is
 * one call at a time across instances.
 *
 * Each instance keeps a local view, health.ts's createCredentialHealth (same states, same
 * back-off, same words), read synchronously while picking a credential. `sync(ids)` (one round trip) copies the
 * shared state of a pool into it before a pick, clearing what the shared store no longer holds
 * (another instance's success, an admin's reset). Writes apply to the local view at once and go
 * to Redis on the same connection, so a later `sync` on this instance sees them.
 *
 * Redis keys: `credential-health:<id>`, a hash of the state (`state`, `status`, `lastError`,
 * `since`, `until`) and the refusals in a row (`refusals`); it expires when a cool-down has
 * ended, or MAX_QUARANTINE_MS × 2 after a quarantine ends. `credential-probe:<id>`: the probe
 * lock (SET NX PX), held by one instance at a time.
 *
 * What another instance computed (its `until`, `since` and count) enters the local view through
 * its `restore`.
 *
 * Redis down or slow: each instance goes on with its local view (what it saw itself), and a
 * probe is one at a time per instance. The hub keeps calling; at worst each instance pays the
 * refused call the others already paid.
 */
import { randomBytes } from "node:crypto";
import { defineScript, type RedisLink, sharedOr } from "../storage/redis.ts";
import {
  coolingDown,
  createCredentialHealth,
  FIRST_QUARANTINE_MS,
  type Health,
  MAX_QUARANTINE_MS,
  quarantined,
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
  const local = createCredentialHealth(clock);
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

  return {
    get: local.get,
    usability: local.usability,
    beginProbe: local.beginProbe,

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
        local.restore(id, fromShared(fields, count), count);
      }
    },

    /**
     * Takes the probe of a credential whose quarantine has ended, for all instances: a release
     * function, or undefined when another call (here or on another instance) has it. With Redis
     * down the probe is this instance's alone.
     */
    async tryBeginProbe(id: string): Promise<(() => void) | undefined> {
      if (local.usability(id) !== "probe") return undefined;
      const endLocal = local.beginProbe(id);
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
      local.coolDown(id, retryAfterSeconds);
      const { since: now, until } = local.get(id) as Health;
      const ttl = Math.max(1, Math.ceil(until - now + COOL_DOWN_MARGIN_MS));
      await shared(() => coolDownScript([healthKey(id)], [now, until, ttl]));
    },

    /**
     * A 401/403: quarantined here at once by the local count, then by the shared one (every
     * instance's refusals); resolves to the wait.
     */
    async refused(id: string, status: number, lastError: string | null): Promise<number> {
      const waitMs = local.refused(id, status, lastError);
      const now = (local.get(id) as Health).until - waitMs;
      const args = [now, status, JSON.stringify(lastError), FIRST_QUARANTINE_MS, MAX_QUARANTINE_MS];
      const reply = await shared(() => refusedScript([healthKey(id)], [...args, REFUSALS_KEPT_MS]));
      if (!reply) return waitMs;
      const [sharedCount, sharedWait, sharedSince] = [reply[0], Number(reply[1]), Number(reply[2])];
      const known = quarantined(status, sharedCount, lastError, sharedSince, now + sharedWait);
      local.restore(id, known, sharedCount);
      return sharedWait;
    },

    /**
     * A call went through. Redis is written only when the local view (synced just before the
     * call) knew of trouble: a success is every call, trouble is rare.
     */
    async succeeded(id: string): Promise<void> {
      const troubled = local.get(id)?.state === "auth_failed";
      if (!troubled && local.refusalsOf(id) === 0) return;
      local.succeeded(id);
      await shared(() => succeededScript([healthKey(id)], []));
    },

    /** An admin enabled the credential again: forgotten here and on every instance. */
    async reset(id: string): Promise<void> {
      local.reset(id);
      await shared(() => link.redis.del(healthKey(id), probeKey(id)));
    },
  };
}

export type SharedCredentialHealth = ReturnType<typeof createSharedCredentialHealth>;
