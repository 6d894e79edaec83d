/**
 * A bound on image bytes held in memory at once, across all requests of the process.
 *
 * Image replies are megabytes each and a request holds its upstream reply until its own reply
 * is written; 32 clients asking for 4 large images each would hold over 270 MB. Limiting
 * requests instead would be wrong: an image request spends most of its life waiting for the
 * model, holding nothing. So what is limited is bytes: an upstream reply takes its size from the
 * budget when its headers arrive (waiting, first come first served, while the budget is spent)
 * and gives it back when the client's reply has been written.
 *
 * The holds of one client request are gathered in a scope (AsyncLocalStorage), so the provider
 * layer can take and the HTTP layer can give back without either knowing the other.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface ByteBudget {
  /**
   * Takes `bytes` (at most the whole capacity, so one huge reply still goes through alone);
   * resolves when they are available. Rejects with the signal's reason if it aborts first.
   * The hold is released with its scope, or by the returned function, once.
   */
  take(bytes: number, signal?: AbortSignal): Promise<() => void>;
  /** Bytes held now (for tests and metrics). */
  readonly held: number;
}

interface Waiter {
  bytes: number;
  grant: () => void;
}

export function createByteBudget(capacity: number): ByteBudget {
  let held = 0;
  const waiting: Waiter[] = [];

  const grantWaiting = () => {
    while (waiting.length > 0) {
      const next = waiting[0] as Waiter;
      if (held > 0 && held + next.bytes > capacity) return;
      waiting.shift();
      held += next.bytes;
      next.grant();
    }
  };

  return {
    get held() {
      return held;
    },
    async take(requested, signal) {
      signal?.throwIfAborted();
      const bytes = Math.min(Math.max(0, requested), capacity);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        held -= bytes;
        grantWaiting();
      };
      if (waiting.length === 0 && (held === 0 || held + bytes <= capacity)) {
        held += bytes;
      } else {
        await new Promise<void>((resolve, reject) => {
          const waiter: Waiter = { bytes, grant: resolve };
          waiting.push(waiter);
          signal?.addEventListener(
            "abort",
            () => {
              const index = waiting.indexOf(waiter);
              if (index === -1) return;
              waiting.splice(index, 1);
              grantWaiting();
              reject(signal.reason);
            },
            { once: true },
          );
        });
      }
      const scope = scopes.getStore();
      // A hold that outlives its request (a reply arriving after the client left) goes back now.
      if (scope?.closed) release();
      else scope?.holds.add(release);
      return release;
    },
  };
}

interface Scope {
  holds: Set<() => void>;
  closed: boolean;
}

const scopes = new AsyncLocalStorage<Scope>();

/** Whether holds taken now are released by a scope; if not, the taker releases them itself. */
export function inByteScope(): boolean {
  return scopes.getStore() !== undefined;
}

/**
 * Runs `work` in a scope whose holds are all released by the returned `release` (call it when
 * the reply has been written, or the client has gone).
 */
export function runInByteScope<T>(work: () => Promise<T>): {
  result: Promise<T>;
  release: () => void;
} {
  const scope: Scope = { holds: new Set(), closed: false };
  const release = () => {
    scope.closed = true;
    for (const hold of scope.holds) hold();
    scope.holds.clear();
  };
  return { result: scopes.run(scope, work), release };
}
