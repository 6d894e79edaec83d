/**
 * Group commit: rows written in the same turn of the event loop go to the database in one
 * transaction, and each writer's promise settles when that transaction has committed (or failed),
 * so "the row is written before the reply ends" still holds for every request. Under load one
 * commit carries many usage rows (a commit is most of an insert's cost on SQLite); a lone request
 * waits only for the end of the current turn.
 */
export function groupCommit<T>(
  commit: (items: readonly T[]) => void,
  /** Writes one item alone, after its batch failed: one bad row does not lose the others. */
  commitOne: (item: T) => void,
): (item: T) => Promise<void> {
  let waiting: { item: T; resolve: () => void; reject: (error: unknown) => void }[] = [];
  const flush = () => {
    const batch = waiting;
    waiting = [];
    try {
      commit(batch.map((entry) => entry.item));
    } catch {
      for (const entry of batch) {
        try {
          commitOne(entry.item);
          entry.resolve();
        } catch (error) {
          entry.reject(error);
        }
      }
      return;
    }
    for (const entry of batch) entry.resolve();
  };
  return (item) =>
    new Promise<void>((resolve, reject) => {
      if (waiting.length === 0) setImmediate(flush);
      waiting.push({ item, resolve, reject });
    });
}
