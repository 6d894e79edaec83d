/**
 * The request an upstream call belongs to, for code far below the pipeline that must name it:
 * the task journal (images/task-journal.ts) writes each task-based provider's task down with its
 * reservation, so that a hub that dies mid-task can settle it at its next start. Carried by
 * AsyncLocalStorage rather than through the provider seam, which knows nothing of keys or
 * reservations.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface RequestInFlight {
  /** The request's usage record id, which is also its reservation's id. */
  recordId: string;
  keyId: string;
  /** The catalog id of the model being called, and what it was asked (for the price). */
  model: string;
  size: string | null;
  quality: string | null;
}

const requests = new AsyncLocalStorage<RequestInFlight>();

export function runForRequest<T>(request: RequestInFlight, work: () => T): T {
  return requests.run(request, work);
}

/** The request the current upstream call belongs to; undefined outside the pipeline. */
export function currentRequest(): RequestInFlight | undefined {
  return requests.getStore();
}
