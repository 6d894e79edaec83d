/** The live model catalog for this key, and the model the playground starts with. */
import { useEffect, useState } from "preact/hooks";
import type { Api } from "../api.ts";
import type { ModelEntry } from "./types.ts";

const CHOICE_KEY = "image-hub.playground.model";

/**
 * The models, fetched once and again on `refresh` (each model's typical time changes as
 * requests finish); a failed refresh keeps what was shown.
 */
export function useModels(api: Api) {
  const [models, setModels] = useState<ModelEntry[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [round, setRound] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    api
      .call<{ data: ModelEntry[] }>("GET", "/api/models", undefined, controller.signal)
      .then((list) => setModels(list.data))
      .catch((caught: unknown) => {
        if (!controller.signal.aborted && round === 0) setError(caught);
      });
    return () => controller.abort();
  }, [api, round]);
  return { models, error, refresh: () => setRound((value) => value + 1) };
}

/** The last choice on this device if the key can still use it, else the first active model. */
export function initialModel(models: readonly ModelEntry[]): ModelEntry | undefined {
  const remembered = localStorage.getItem(CHOICE_KEY);
  return (
    models.find((model) => model.id === remembered) ??
    models.find((model) => model.status === "active") ??
    models[0]
  );
}

export function rememberModel(id: string): void {
  localStorage.setItem(CHOICE_KEY, id);
}

/** "dall-e-2 (retired → gpt-image-2)": a model's id, with its status when it is not active. */
export function modelLabel(model: ModelEntry): string {
  if (model.status === "active") return model.id;
  const next = model.successor ? ` → ${model.successor}` : "";
  return `${model.id} (${model.status}${next})`;
}
