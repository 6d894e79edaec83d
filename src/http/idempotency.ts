/**
 * Idempotent image requests: a retry never pays twice.
 *
 * A request is known by its scope (the API key and its idempotency key) and its fingerprint (a
 * hash of what it asks). The first request with a scope runs; while it runs, a request with the
 * same scope and fingerprint waits for it and gets its answer, error included; once it has
 * answered with images, the same request gets the kept answer until `keepMs` has passed, without
 * running or being charged again. The same scope with another fingerprint is a 409: the key was
 * meant for another request. A failed request keeps nothing, so a retry after it runs afresh
 * (nothing was charged for the failure).
 *
 * Kept answers live in the blob store (the bytes can be megabytes of base64) and their index in
 * this process; with `shared` (Redis, idempotency-shared.ts) also in an index every instance
 * reads, so a retry that reaches another instance is matched too: it waits for the first while
 * that runs elsewhere, and gets its kept answer after (from the blob store the instances share).
 */
import { createHash, randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { HubError } from "../errors.ts";
import type { BlobStore } from "../storage/blobs/types.ts";
import type { SharedIdempotencyIndex } from "./idempotency-shared.ts";

/** An answer as the route sends it: a status, headers and the body as pieces in order. */
export interface PreparedReply {
  status: number;
  headers: Record<string, string>;
  pieces: Buffer[];
}

/** An answer to send: made now (pieces) or read back from the store (a stream). */
export interface ReplyToSend {
  status: number;
  headers: Record<string, string>;
  body: Buffer[] | Readable;
  length: number;
}

/** `first`: this request ran; `joined`: it waited for one running; `replayed`: a kept answer. */
export type IdempotentOutcome = "first" | "joined" | "replayed";

export interface IdempotencyLedger {
  run(
    claim: { scope: string; fingerprint: string; keepMs: number },
    work: () => Promise<PreparedReply>,
  ): Promise<{ reply: ReplyToSend; outcome: IdempotentOutcome }>;
  /** Stops the sweep and waits for answers being kept; kept ones are forgotten with the process. */
  close(): Promise<void>;
}

interface Running {
  state: "running";
  fingerprint: string;
  answer: Promise<PreparedReply>;
}

/** Answered, and held in memory while its bytes are written to the store. */
interface Answered {
  state: "answered";
  fingerprint: string;
  reply: PreparedReply;
  expiresAt: number;
}

interface Kept {
  state: "kept";
  fingerprint: string;
  status: number;
  headers: Record<string, string>;
  blobKey: string;
  expiresAt: number;
}

type Entry = Running | Answered | Kept;

const SWEEP_EVERY_MS = 30_000;

/** How often a retry waiting for its first try on another instance looks again. */
const SHARED_POLL_MS = 200;

export function createIdempotencyLedger(options: {
  blobs: BlobStore;
  clock?: () => number;
  log?: { error(object: object, message: string): void };
  /** The index shared by every instance; none: this instance's alone. */
  shared?: SharedIdempotencyIndex;
  /** How long a retry waits for its first try running on another instance, ms. */
  sharedWaitMs?: number;
}): IdempotencyLedger {
  const clock = options.clock ?? Date.now;
  const entries = new Map<string, Entry>();
  /** Store writes and deletes under way, waited for by `close`. */
  const pending = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    pending.add(work);
    work.finally(() => pending.delete(work));
  };

  const sweep = setInterval(() => {
    const now = clock();
    for (const [scope, entry] of entries) {
      if (entry.state !== "running" && entry.expiresAt <= now) forget(scope, entry);
    }
  }, SWEEP_EVERY_MS);
  sweep.unref();

  function forget(scope: string, entry: Answered | Kept) {
    entries.delete(scope);
    if (entry.state !== "kept") return;
    track(
      options.blobs.delete(entry.blobKey).catch(() => {
        // The store's own sweep removes it after its expiry anyway.
      }),
    );
  }

  /** Moves an answer from memory to the store; a retry meanwhile is served from memory. */
  async function keep(scope: string, entry: Answered) {
    const blobKey = `idempotent-${randomBytes(16).toString("base64url")}`;
    const { reply, expiresAt, fingerprint } = entry;
    try {
      await options.blobs.put(blobKey, Buffer.concat(reply.pieces), {
        contentType: "application/octet-stream",
        expiresAt,
      });
    } catch (error) {
      options.log?.error({ err: error }, "could not keep an idempotent answer; a retry will run");
      if (entries.get(scope) === entry) entries.delete(scope);
      return;
    }
    if (entries.get(scope) !== entry) {
      track(options.blobs.delete(blobKey).catch(() => {}));
      await options.shared?.release(scope);
      return;
    }
    const { status, headers } = reply;
    entries.set(scope, { state: "kept", fingerprint, status, headers, blobKey, expiresAt });
    await options.shared?.keep(scope, { fingerprint, status, headers, blobKey }, expiresAt);
  }

  /**
   * What the shared index says of a scope this instance does not know: free (run it here), or
   * another instance's request, running (wait for it) or answered (replay its kept answer).
   */
  async function fromShared(
    shared: SharedIdempotencyIndex,
    scope: string,
    fingerprint: string,
  ): Promise<{ reply: ReplyToSend; outcome: IdempotentOutcome } | undefined> {
    const waitUntil = clock() + (options.sharedWaitMs ?? 10 * 60_000);
    for (;;) {
      const claim = await shared.claim(scope, fingerprint);
      if (claim.state === "claimed") return undefined;
      if (claim.fingerprint !== fingerprint) throw idempotencyKeyReused();
      if (claim.state === "kept") {
        const kept = await replayKept(claim, "replayed");
        if (kept) return kept;
        // Swept or lost: run again rather than fail the retry.
        await shared.release(scope);
        continue;
      }
      // Running on another instance: wait until it has answered or given up (then try again).
      for (;;) {
        if (clock() > waitUntil) return undefined;
        await sleep(SHARED_POLL_MS);
        const now = await shared.look(scope);
        if (now?.state === "kept") {
          const kept = await replayKept(now, "joined");
          if (kept) return kept;
        }
        if (now?.state !== "running") break;
      }
    }
  }

  /** A kept answer read back from the store; undefined when the store has lost it. */
  async function replayKept(
    kept: { status: number; headers: Record<string, string>; blobKey: string },
    outcome: IdempotentOutcome,
  ): Promise<{ reply: ReplyToSend; outcome: IdempotentOutcome } | undefined> {
    const blob = await options.blobs.open(kept.blobKey);
    if (!blob) return undefined;
    const { status, headers } = kept;
    return { reply: { status, headers, body: blob.stream, length: blob.size }, outcome };
  }

  /** The entry for `scope`, unless it has expired (then it is forgotten). */
  function live(scope: string): Entry | undefined {
    const entry = entries.get(scope);
    if (entry && entry.state !== "running" && entry.expiresAt <= clock()) {
      forget(scope, entry);
      return undefined;
    }
    return entry;
  }

  return {
    async run({ scope, fingerprint, keepMs }, work) {
      const entry = live(scope);
      if (entry !== undefined) {
        if (entry.fingerprint !== fingerprint) throw idempotencyKeyReused();
        if (entry.state === "running") {
          return { reply: fromPieces(await entry.answer), outcome: "joined" };
        }
        if (entry.state === "answered") {
          return { reply: fromPieces(entry.reply), outcome: "replayed" };
        }
        const kept = await replayKept(entry, "replayed");
        if (kept) return kept;
        // Swept or lost: run again rather than fail the retry.
        if (entries.get(scope) === entry) entries.delete(scope);
      }
      if (options.shared) {
        const elsewhere = await fromShared(options.shared, scope, fingerprint);
        if (elsewhere) return elsewhere;
        // Claimed for this instance meanwhile by a retry that arrived here too: join it.
        const mine = live(scope);
        if (mine?.state === "running" && mine.fingerprint === fingerprint) {
          return { reply: fromPieces(await mine.answer), outcome: "joined" };
        }
      }
      const running: Running = { state: "running", fingerprint, answer: work() };
      entries.set(scope, running);
      let reply: PreparedReply;
      try {
        reply = await running.answer;
      } catch (error) {
        if (entries.get(scope) === running) entries.delete(scope);
        await options.shared?.release(scope);
        throw error;
      }
      if (entries.get(scope) === running) {
        // Only answers with images are kept: nothing else was charged, so a retry may run again.
        if (reply.status < 300) {
          const answered: Answered = {
            state: "answered",
            fingerprint,
            reply,
            expiresAt: clock() + keepMs,
          };
          entries.set(scope, answered);
          track(keep(scope, answered));
        } else {
          entries.delete(scope);
          await options.shared?.release(scope);
        }
      }
      return { reply: fromPieces(reply), outcome: "first" };
    },
    async close() {
      clearInterval(sweep);
      await Promise.all(pending);
    },
  };
}

export function fromPieces(reply: PreparedReply): ReplyToSend {
  const length = reply.pieces.reduce((sum, piece) => sum + piece.length, 0);
  return { status: reply.status, headers: reply.headers, body: reply.pieces, length };
}

function idempotencyKeyReused(): HubError {
  return new HubError(
    "This Idempotency-Key was used for a different request. Use a new key for a new request.",
    { status: 409, type: "invalid_request_error", code: "idempotency_key_reused", param: null },
  );
}

/**
 * A hash of what a request asks: its route and body, keys in any order, bytes (multipart
 * images) by their content. Two requests with the same fingerprint would make the same images.
 */
export function fingerprintOf(route: string, body: unknown): string {
  const hash = createHash("sha256");
  hash.update(route);
  feed(hash, body);
  return hash.digest("base64url");
}

function feed(hash: ReturnType<typeof createHash>, value: unknown): void {
  if (Buffer.isBuffer(value)) {
    hash.update(`b${value.length}:`);
    hash.update(value);
  } else if (Array.isArray(value)) {
    hash.update(`a${value.length}[`);
    for (const item of value) feed(hash, item);
    hash.update("]");
  } else if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    hash.update(`o${keys.length}{`);
    for (const key of keys) {
      hash.update(JSON.stringify(key));
      feed(hash, (value as Record<string, unknown>)[key]);
    }
    hash.update("}");
  } else {
    hash.update(`v${JSON.stringify(value) ?? "u"};`);
  }
}
