/**
 * What the hub has learned of each provider's models: from the provider's own model list (read
 * at start and periodically, see model-sync.ts) and from a call the provider answered with
 * "no such model". The newest word wins: a list read after a `model_not_found` that lists the
 * model again brings it back.
 *
 * Kept in memory per instance: each instance reads the lists itself, and a model learned gone
 * costs another instance at most one refused call (which makes nothing and is not charged).
 */
import type { ProviderName } from "./catalog.ts";

export interface UpstreamModelState {
  /** Whether the provider offers the model, by its latest list or answer. */
  offered: boolean;
  /** The shutdown date the provider announces (OpenAI's list carries it); null if none. */
  shutdownDate: string | null;
  /** ms since the epoch: when this was learned. */
  learnedAt: number;
  /** `list`: the provider's model list; `call`: a call answered model_not_found. */
  from: "list" | "call";
}

export interface UpstreamModelBoard {
  /** What is known of one upstream model id, or undefined when nothing is. */
  state(provider: ProviderName, upstreamId: string): UpstreamModelState | undefined;
  /** When the provider's list was last read; undefined when it never was. */
  listedAt(provider: ProviderName): number | undefined;
  /** Replaces what is known of a provider with its list. */
  recordList(
    provider: ProviderName,
    models: readonly { id: string; shutdownDate: string | null }[],
    at: number,
  ): void;
  /** A call for this model was answered model_not_found. */
  recordGone(provider: ProviderName, upstreamId: string, at: number): void;
}

export function createUpstreamModelBoard(): UpstreamModelBoard {
  const lists = new Map<ProviderName, { at: number; models: Map<string, string | null> }>();
  const gone = new Map<string, number>();
  const keyOf = (provider: ProviderName, id: string) => `${provider}\n${id}`;

  return {
    state(provider, upstreamId) {
      const list = lists.get(provider);
      const goneAt = gone.get(keyOf(provider, upstreamId));
      if (goneAt !== undefined && (list === undefined || goneAt >= list.at)) {
        return { offered: false, shutdownDate: null, learnedAt: goneAt, from: "call" };
      }
      if (!list) return undefined;
      const listed = list.models.has(upstreamId);
      return {
        offered: listed,
        shutdownDate: list.models.get(upstreamId) ?? null,
        learnedAt: list.at,
        from: "list",
      };
    },
    listedAt: (provider) => lists.get(provider)?.at,
    recordList(provider, models, at) {
      lists.set(provider, {
        at,
        models: new Map(models.map((model) => [model.id, model.shutdownDate])),
      });
    },
    recordGone(provider, upstreamId, at) {
      gone.set(keyOf(provider, upstreamId), at);
    },
  };
}
