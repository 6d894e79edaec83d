/**
 * How long a model typically takes on this hub: the median of its last successful requests,
 * for the console's progress (elapsed time against the typical one). Per process and in memory:
 * a hint, not a promise, so it needs no table and restarts empty (null until a request succeeds).
 */

const KEPT_PER_MODEL = 25;

export interface LatencyBoard {
  record(model: string, latencyMs: number): void;
  /** The median of the model's recent successful requests, ms; null before the first. */
  typical(model: string): number | null;
}

export function createLatencyBoard(): LatencyBoard {
  const recent = new Map<string, number[]>();
  return {
    record(model, latencyMs) {
      const list = recent.get(model) ?? [];
      list.push(latencyMs);
      if (list.length > KEPT_PER_MODEL) list.shift();
      recent.set(model, list);
    },
    typical(model) {
      const list = recent.get(model);
      if (!list || list.length === 0) return null;
      const sorted = [...list].sort((a, b) => a - b);
      const middle = Math.floor(sorted.length / 2);
      const median =
        sorted.length % 2 === 1
          ? (sorted[middle] ?? 0)
          : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
      return Math.round(median);
    },
  };
}
