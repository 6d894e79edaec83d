/**
 * When each key was last used, without a database write per request: `touch` notes the time in
 * memory and a timer writes everything noted since the last flush in one `db.touchKeys` batch.
 * A crash loses at most one interval of last-used times, which is all they are worth.
 */
import type { Database } from "../storage/db/types.ts";

export interface LastUsedTracker {
  /** Notes that the key was used now. Cheap: a map write. */
  touch(keyId: string): void;
  /** Writes what was noted since the last flush, in one batch. */
  flush(): Promise<void>;
  /** Stops the timer and flushes what is left. */
  stop(): Promise<void>;
}

/**
 * @example
 * const lastUsed = createLastUsedTracker({ db });
 * app.addHook("onClose", () => lastUsed.stop());
 * lastUsed.touch(principal.keyId);
 */
export function createLastUsedTracker(options: {
  db: Pick<Database, "touchKeys">;
  flushIntervalMs?: number;
  clock?: () => number;
  /** Told when a timed flush fails (the times are kept for the next one). */
  onError?: (error: unknown) => void;
}): LastUsedTracker {
  const clock = options.clock ?? Date.now;
  let pending = new Map<string, number>();
  // Flushes run one after another so an older batch never lands after a newer one.
  let flushing: Promise<void> = Promise.resolve();

  const flushOnce = async () => {
    if (pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    try {
      await options.db.touchKeys(batch);
    } catch (error) {
      // Put the batch back, keeping any newer touch that came in meanwhile.
      for (const [keyId, at] of batch) {
        if ((pending.get(keyId) ?? -1) < at) pending.set(keyId, at);
      }
      throw error;
    }
  };

  const flush = () => {
    const next = flushing.then(flushOnce, flushOnce);
    flushing = next.catch(() => {});
    return next;
  };

  const timer = setInterval(() => {
    flush().catch((error: unknown) => options.onError?.(error));
  }, options.flushIntervalMs ?? 30_000);
  // The timer alone must not keep the process alive.
  timer.unref();

  return {
    touch(keyId) {
      pending.set(keyId, clock());
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
