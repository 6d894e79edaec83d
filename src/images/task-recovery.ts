/**
 * Settles what a hub that died mid-task left behind: a task-based provider's tasks, written
 * down before they were polled (images/task-journal.ts), and the reservation of the request they
 * belonged to, which the start's release of dead reservations leaves alone.
 *
 * Each task is polled to its end, as the request would have (up to `maxAgeMs` after it was
 * submitted; then cancelled upstream where the API can). The images it made are delivered to
 * nobody, but the provider charged for them, so the key is charged for them, at the price of
 * the model and size asked; a task that failed or never finished costs nothing. The request's
 * usage record says so (`error_code`: `delivered_to_nobody` or `hub_restarted`), and the
 * reservation is settled by it: never lost, never charged twice. Runs in the background:
 * a start does not wait for upstream tasks.
 */
import { setTimeout as sleepFor } from "node:timers/promises";
import { DEFAULT_POLL, type SubmittedTask, type TaskApi } from "../providers/tasks.ts";
import type { Database, UpstreamTaskRecord, UsageRecord } from "../storage/db/types.ts";

export interface TaskRecoveryDeps {
  db: Pick<Database, "listUpstreamTasks" | "deleteUpstreamTask" | "settle">;
  /** The bare task API of a provider id; undefined when the hub has it no more. */
  taskApi(provider: string): TaskApi | undefined;
  /** The price of one image, micro-USD; undefined when the book has none. */
  priceOf(model: string, size: string | null, quality: string | null): number | undefined;
  clock?: () => number;
  /** How long after its submission a task is polled before it is given up. */
  maxAgeMs?: number;
  /** Only tasks submitted before this are this hub's to settle (others may be a live hub's). */
  submittedBefore?: number;
  signal?: AbortSignal;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  log?: { warn(object: object, message: string): void };
}

const DEFAULT_MAX_AGE_MS = 60 * 60 * 1000;
const REQUEST_TIMEOUT_MS = 30_000;

/** Settles every journaled request; resolves when all are settled (or the signal aborts). */
export async function recoverTasks(deps: TaskRecoveryDeps): Promise<number> {
  const clock = deps.clock ?? Date.now;
  const tasks = (await deps.db.listUpstreamTasks()).filter(
    (task) => deps.submittedBefore === undefined || task.createdAt < deps.submittedBefore,
  );
  const byReservation = new Map<string, UpstreamTaskRecord[]>();
  for (const task of tasks) {
    byReservation.set(task.reservationId, [...(byReservation.get(task.reservationId) ?? []), task]);
  }
  const settled = await Promise.all(
    [...byReservation.values()].map((group) => settleRequest(deps, group, clock)),
  );
  return settled.filter(Boolean).length;
}

async function settleRequest(
  deps: TaskRecoveryDeps,
  tasks: UpstreamTaskRecord[],
  clock: () => number,
): Promise<boolean> {
  const delivered = await Promise.all(tasks.map((task) => imagesOf(deps, task, clock)));
  if (deps.signal?.aborted) return false;
  // The one who deletes a task settles it: another hub recovering too finds nothing left.
  const claimed = await Promise.all(
    tasks.map((task) => deps.db.deleteUpstreamTask(task.provider, task.taskId)),
  );
  if (!claimed.every(Boolean)) return false;
  const first = tasks[0] as UpstreamTaskRecord;
  const made = delivered.reduce((sum, count) => sum + count, 0);
  const asked = tasks.reduce((sum, task) => sum + task.images, 0);
  const costMicros = tasks.reduce(
    (sum, task, index) =>
      sum + (delivered[index] ?? 0) * (deps.priceOf(task.model, task.size, task.quality) ?? 0),
    0,
  );
  const record: UsageRecord = {
    id: first.reservationId,
    keyId: first.keyId,
    model: first.model,
    requestedModel: null,
    app: null,
    provider: first.provider,
    imagesRequested: asked,
    imagesDelivered: made,
    size: first.size,
    quality: first.quality,
    responseFormat: "none",
    status: made === 0 ? "failed" : made < asked ? "partial" : "succeeded",
    errorCode: made > 0 ? "delivered_to_nobody" : "hub_restarted",
    latencyMs: Math.max(0, clock() - first.createdAt),
    upstreamLatencyMs: null,
    costMicros,
    inputTokens: null,
    outputTokens: null,
    createdAt: first.createdAt,
  };
  await deps.db.settle(first.reservationId, record);
  deps.log?.warn(
    { recordId: record.id, provider: record.provider, made, costMicros },
    "settled a request whose hub stopped while its upstream task ran",
  );
  return true;
}

/** The images `task` made, polling it to its end: 0 when it failed, vanished or ran too long. */
async function imagesOf(
  deps: TaskRecoveryDeps,
  record: UpstreamTaskRecord,
  clock: () => number,
): Promise<number> {
  const api = deps.taskApi(record.provider);
  if (!api) return 0;
  const signal = deps.signal ?? new AbortController().signal;
  const sleep =
    deps.sleep ?? ((ms: number, on: AbortSignal) => sleepFor(ms, undefined, { signal: on }));
  const task: SubmittedTask = { id: record.taskId, state: record.state };
  const endsAt = record.createdAt + (deps.maxAgeMs ?? DEFAULT_MAX_AGE_MS);
  let waitMs: number = DEFAULT_POLL.firstMs;
  for (;;) {
    if (signal.aborted) return 0;
    try {
      const status = await api.poll(task, { signal, timeoutMs: REQUEST_TIMEOUT_MS });
      if (status.kind === "done") return status.result.images.length;
      if (status.kind === "failed") return 0;
      waitMs = status.retryAfterMs ?? Math.min(DEFAULT_POLL.maxMs, waitMs * DEFAULT_POLL.factor);
    } catch (error) {
      // A poll that fails (the provider down a moment) is tried again until the task's time is up.
      deps.log?.warn({ err: error, taskId: record.taskId }, "could not poll a recovered task");
      waitMs = DEFAULT_POLL.maxMs;
    }
    if (clock() >= endsAt) {
      await api.cancel?.(task, { signal, timeoutMs: REQUEST_TIMEOUT_MS }).catch(() => {});
      return 0;
    }
    await sleep(Math.max(DEFAULT_POLL.firstMs / 2, waitMs), signal).catch(() => {});
  }
}

/**
 * Runs `recoverTasks` in the background at start; a close aborts it (what it had not settled
 * waits for the next start). `alone`: this hub is the only one on its store, so every task is a
 * dead hub's; otherwise only those older than any request can run are.
 */
export function startTaskRecovery(
  deps: Omit<TaskRecoveryDeps, "signal" | "submittedBefore"> & {
    alone: boolean;
    abandonedAfterMs: number;
    onClose(stop: () => Promise<void>): void;
  },
): void {
  const controller = new AbortController();
  const clock = deps.clock ?? Date.now;
  const running = recoverTasks({
    ...deps,
    signal: controller.signal,
    submittedBefore: deps.alone ? undefined : clock() - deps.abandonedAfterMs,
  }).catch((error: unknown) => {
    deps.log?.warn({ err: error }, "could not settle the tasks a stopped hub left");
    return 0;
  });
  deps.onClose(async () => {
    controller.abort();
    await running;
  });
}
