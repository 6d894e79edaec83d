/**
 * A signal that fires when the caller's signal does or when a time budget runs out, and that is
 * let go of as soon as the work ends.
 *
 * `AbortSignal.any([signal, AbortSignal.timeout(ms)])` does the same but keeps its timer and
 * listeners alive until the timeout fires, whatever happened meanwhile: about 640 bytes per
 * request held for the whole budget (180 s for image models), measured to grow the heap without
 * bound under load.
 */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Whether it fired because the time ran out (not because the caller aborted). */
  readonly timedOut: boolean;
  /** Clears the timer and the listener; call it when the work is done, in a `finally`. */
  dispose(): void;
}

export function startDeadline(milliseconds: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException("The operation timed out.", "TimeoutError"));
  }, milliseconds);
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onAbort();
  else parent?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    dispose() {
      clearTimeout(timer);
      parent?.removeEventListener("abort", onAbort);
    },
  };
}
