/**
 * Where a model is in its life, and which model serves a request for it. Pure: the catalog, what
 * was learned from the providers (upstream-models.ts) and the date are all passed in.
 *
 * A model is retired, and its requests go to its successor, when its provider no longer offers
 * it. That is learned, not assumed: the provider's model list leaves it out (or announces a
 * shutdown date that has passed), or a call was answered `model_not_found`. Until a provider's
 * list has been read, or for providers without one, the model's own shutdown date decides. A
 * model the provider still lists is called as itself, whatever the dates in the data say (a
 * compatible server that still has dall-e-2). An operator's declared status overrides it all:
 * `retired` retires it now, `active` keeps calling it.
 */
import { HubError } from "../errors.ts";
import type { Catalog, ModelSpec } from "./catalog.ts";
import type { UpstreamModelBoard } from "./upstream-models.ts";

export type ModelStatus = "active" | "deprecated" | "retired";

export interface Lifecycle {
  status: ModelStatus;
  /** The provider's announced date where it gives one, else the catalog's; null when none. */
  shutdownDate: string | null;
  successor: string | null;
  /** Why the model is retired, in words for messages; undefined when it is not. */
  retiredBecause: string | undefined;
  /** What the provider said: null where nothing was learned (or nothing can be: `local`). */
  upstream: { offered: boolean | null; shutdownDate: string | null; checkedAt: number | null };
}

/** `YYYY-MM-DD` of a time, in UTC: shutdown dates are days, compared as text. */
export function dayOf(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

export function lifecycleOf(model: ModelSpec, board: UpstreamModelBoard, now: number): Lifecycle {
  const today = dayOf(now);
  const learned =
    model.provider === "local" ? undefined : board.state(model.provider, model.upstreamId);
  const shutdownDate = learned?.shutdownDate ?? model.shutdownDate;
  const upstream = {
    offered: learned?.offered ?? null,
    shutdownDate: learned?.shutdownDate ?? null,
    checkedAt: learned?.learnedAt ?? null,
  };
  const retiredBecause = whyRetired(model, learned, shutdownDate, today);
  let status: ModelStatus = "active";
  if (retiredBecause !== undefined) status = "retired";
  else if (model.declaredStatus === "deprecated") status = "deprecated";
  else if (shutdownDate !== null && shutdownDate > today && model.declaredStatus !== "active") {
    status = "deprecated";
  }
  return { status, shutdownDate, successor: model.successor, retiredBecause, upstream };
}

function whyRetired(
  model: ModelSpec,
  learned: ReturnType<UpstreamModelBoard["state"]>,
  shutdownDate: string | null,
  today: string,
): string | undefined {
  if (model.declaredStatus === "retired") return "it is retired on this hub";
  if (model.declaredStatus === "active") return undefined;
  if (learned !== undefined) {
    if (!learned.offered) {
      return learned.from === "call"
        ? `${model.provider} answered that it has no model '${model.upstreamId}'`
        : `${model.provider} no longer lists it`;
    }
    if (learned.shutdownDate !== null && learned.shutdownDate <= today) {
      return `${model.provider} shut it down on ${learned.shutdownDate}`;
    }
    return undefined;
  }
  if (shutdownDate !== null && shutdownDate <= today) {
    return `${model.provider} shut it down on ${shutdownDate}`;
  }
  return undefined;
}

/** The model that serves a request for `requested`, and each retired one on the way there. */
export interface Serving {
  model: ModelSpec;
  /** The retired models passed, from the one asked for; empty when it serves itself. */
  retired: { model: ModelSpec; because: string }[];
}

/**
 * Follows the successor chain from `requested` to the first model that is not retired.
 *
 * Where a retired model has nowhere to go (no successor, or a chain that loops back), it is
 * called as itself and its provider answers for it, unless an operator declared it retired: a
 * model learned gone from one answer must not turn into an outage of its own making.
 *
 * @throws HubError 410 `model_retired` when an operator turned substitution off for a retired
 * model on the way, or declared one retired that has nowhere to go; the message names the
 * successor where there is one, so a client knows what to ask for instead.
 */
export function servingModel(
  requested: ModelSpec,
  catalog: Pick<Catalog, "byId">,
  board: UpstreamModelBoard,
  now: number,
  options: { assumeGone?: boolean } = {},
): Serving {
  const retired: Serving["retired"] = [];
  let current = requested;
  for (;;) {
    const assumed =
      options.assumeGone && current === requested
        ? `${current.provider} answered that it has no model '${current.upstreamId}'`
        : undefined;
    const because = assumed ?? lifecycleOf(current, board, now).retiredBecause;
    if (because === undefined) return { model: current, retired };
    const successor = current.successor === null ? undefined : catalog.byId(current.successor);
    const loops =
      successor !== undefined &&
      (successor.id === requested.id || retired.some((step) => step.model.id === successor.id));
    if (!current.useSuccessor) throw modelRetired(requested, current, because, successor);
    if (!successor || loops) {
      if (current.declaredStatus === "retired" || assumed) {
        throw modelRetired(requested, current, because, successor);
      }
      return { model: current, retired };
    }
    retired.push({ model: current, because });
    current = successor;
  }
}

export function modelRetired(
  requested: ModelSpec,
  last: ModelSpec,
  because: string,
  successor: ModelSpec | undefined,
): HubError {
  const via = last === requested ? "" : ` (through '${last.id}')`;
  const instead = successor
    ? ` Use '${successor.id}' instead.`
    : " It has no successor on this hub; GET /api/models lists the models.";
  return new HubError(`The model '${requested.id}' is retired${via}: ${because}.${instead}`, {
    status: 410,
    type: "invalid_request_error",
    code: "model_retired",
    param: "model",
  });
}
