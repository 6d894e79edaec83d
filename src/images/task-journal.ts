/**
 * The task journal: each task a task-based provider submits is written down, with the request
 * and reservation it belongs to (images/request-scope.ts), before it is polled, and forgotten
 * when it ends. What a hub that died leaves here, images/task-recovery.ts settles at the next
 * start.
 */
import type { TaskJournal } from "../providers/tasks.ts";
import type { Database } from "../storage/db/types.ts";
import { currentRequest } from "./request-scope.ts";

export function createTaskJournal(options: {
  db: Pick<Database, "putUpstreamTask" | "deleteUpstreamTask">;
  clock?: () => number;
}): TaskJournal {
  const clock = options.clock ?? Date.now;
  return {
    async submitted({ provider, task, call }) {
      const request = currentRequest();
      // A call from outside the pipeline (a model list, a test) has no reservation to settle.
      if (!request) return;
      await options.db.putUpstreamTask({
        provider,
        taskId: task.id,
        reservationId: request.recordId,
        keyId: request.keyId,
        model: request.model,
        size: request.size,
        quality: request.quality,
        images: call.count,
        state: { ...task.state },
        createdAt: clock(),
      });
    },
    async ended({ provider, taskId }) {
      await options.db.deleteUpstreamTask(provider, taskId);
    },
  };
}
