/**
 * The index of idempotent requests shared by every hub instance through Redis, so a retry that
 * reaches another instance than its first try is matched too (http/idempotency.ts keeps the
 * answers themselves in the blob store, which instances share through S3).
 *
 * One key per scope (`idempotency:<scope>`) holds the request's fingerprint and its state:
 * `running` (with the instance that runs it; it expires after `runningTtlMs`, so a dead
 * instance's claim frees itself), or `kept` with the answer's status, headers and blob key
 * (until the answer's own expiry). A claim is one atomic script: it takes a free scope, or says
 * who has it.
 *
 * Redis down: every call answers "free" (`claimed`), so the instance runs the request as if
 * alone: a retry that reaches another instance meanwhile may run again, as without Redis.
 */
import { defineScript, type RedisLink, sharedOr } from "../storage/redis.ts";

export type SharedClaim =
  | { state: "claimed" }
  | { state: "running"; fingerprint: string }
  | {
      state: "kept";
      fingerprint: string;
      status: number;
      headers: Record<string, string>;
      blobKey: string;
    };

export interface SharedIdempotencyIndex {
  /** Takes the scope for this instance, or says who has it and how far it is. */
  claim(scope: string, fingerprint: string): Promise<SharedClaim>;
  /** The request answered and its answer is in the blob store: say so until `expiresAt`. */
  keep(
    scope: string,
    entry: {
      fingerprint: string;
      status: number;
      headers: Record<string, string>;
      blobKey: string;
    },
    expiresAt: number,
  ): Promise<void>;
  /** The request failed or its answer was not kept: free the scope for a retry. */
  release(scope: string): Promise<void>;
  /** What the scope holds now (a waiter's poll). */
  look(scope: string): Promise<SharedClaim | undefined>;
}

const FEATURE = "idempotency index";

// KEYS[1] the scope's key; ARGV: the entry to set when free, its time to live (ms).
const CLAIM_LUA = `
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`;

export function createSharedIdempotencyIndex(options: {
  link: RedisLink;
  instanceId: string;
  /** How long a running claim lasts without an answer: longer than any request may run. */
  runningTtlMs: number;
  clock?: () => number;
}): SharedIdempotencyIndex {
  const { link, instanceId, runningTtlMs } = options;
  const clock = options.clock ?? Date.now;
  const claimScript = defineScript<string | null>(link, "imageHubIdempotencyClaim", CLAIM_LUA);
  const keyOf = (scope: string) => `idempotency:${Buffer.from(scope).toString("base64url")}`;
  const parse = (text: string | null): SharedClaim | undefined => {
    if (text === null) return undefined;
    const entry = JSON.parse(text) as SharedClaim & { owner?: string };
    return entry;
  };

  return {
    claim: (scope, fingerprint) =>
      sharedOr<SharedClaim>(
        link,
        FEATURE,
        async () => {
          const entry = JSON.stringify({ state: "running", fingerprint, owner: instanceId });
          const held = await claimScript([keyOf(scope)], [entry, runningTtlMs]);
          return parse(held) ?? { state: "claimed" };
        },
        () => ({ state: "claimed" }),
      ),
    keep: (scope, entry, expiresAt) =>
      sharedOr(
        link,
        FEATURE,
        async () => {
          const ttl = Math.max(1, Math.round(expiresAt - clock()));
          await link.redis.set(
            keyOf(scope),
            JSON.stringify({ state: "kept", ...entry }),
            "PX",
            ttl,
          );
        },
        () => undefined,
      ),
    release: (scope) =>
      sharedOr(
        link,
        FEATURE,
        async () => {
          await link.redis.del(keyOf(scope));
        },
        () => undefined,
      ),
    look: (scope) =>
      sharedOr(
        link,
        FEATURE,
        async () => parse(await link.redis.get(keyOf(scope))),
        () => undefined,
      ),
  };
}
