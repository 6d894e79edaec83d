/**
 * What an operator should look at for a model, in words: a shutdown coming within 30 days, a
 * model its provider does not list, a retired model whose requests have nowhere to go. Shown by
 * the admin API and logged when the providers' lists are read (model-sync.ts).
 */
import type { ModelSpec } from "./catalog.ts";
import { dayOf, type Lifecycle } from "./lifecycle.ts";
import type { UpstreamModelBoard } from "./upstream-models.ts";

const SOON_DAYS = 30;
const DAY_MS = 86_400_000;

export function modelWarnings(
  model: ModelSpec,
  life: Lifecycle,
  board: UpstreamModelBoard,
  now: number,
): string[] {
  const warnings: string[] = [];
  const provider = model.provider;
  const listed = provider === "local" ? undefined : board.listedAt(provider);
  if (
    life.upstream.offered === false &&
    listed !== undefined &&
    model.declaredStatus !== "retired"
  ) {
    const served =
      model.successor !== null && model.useSuccessor
        ? `; its requests go to '${model.successor}'`
        : "";
    warnings.push(
      `${provider} does not list '${model.upstreamId}' (read ${new Date(listed).toISOString()})${served}.`,
    );
  }
  if (life.status === "deprecated" && life.shutdownDate !== null) {
    const days = Math.round(
      (Date.parse(`${life.shutdownDate}T00:00:00Z`) - Date.parse(`${dayOf(now)}T00:00:00Z`)) /
        DAY_MS,
    );
    if (days <= SOON_DAYS) {
      const next = model.successor
        ? `; then '${model.successor}' serves it`
        : "; it has no successor";
      warnings.push(`Shuts down upstream on ${life.shutdownDate}, in ${days} day(s)${next}.`);
    }
  }
  if (life.status === "retired" && (model.successor === null || !model.useSuccessor)) {
    warnings.push(
      `Retired (${life.retiredBecause}) and ${model.successor === null ? "without a successor" : "with use_successor off"}: requests get 410 model_retired.`,
    );
  }
  return warnings;
}
