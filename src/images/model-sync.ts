/**
 * Reads each configured provider's model list (OpenAI GET /models, Gemini GET /v1beta/models)
 * into the board (upstream-models.ts), at start and then every MODEL_LIST_REFRESH_SECONDS, and
 * logs what an operator should look at: models that shut down within 30 days, models the
 * provider no longer lists. A provider that cannot be reached leaves what was known as it was;
 * the built-in shutdown dates decide until a list has been read.
 *
 * A call answered `model_not_found` marks that model gone at once and asks for the provider's
 * list again soon (`verify`, at most once a minute per provider): a passing 404 is then undone
 * by the list within moments, not left to take the model away until the next hourly read.
 */
import type { ImageProvider } from "../providers/types.ts";
import type { Catalog, ProviderName } from "./catalog.ts";
import { lifecycleOf } from "./lifecycle.ts";
import { modelWarnings } from "./model-warnings.ts";
import type { UpstreamModelBoard } from "./upstream-models.ts";

export interface ModelSyncDeps {
  providers: Partial<Record<ProviderName, ImageProvider>>;
  board: UpstreamModelBoard;
  catalog: Pick<Catalog, "models">;
  /** How long one provider's list may take; a slow provider must not hold a start up. */
  timeoutMs: number;
  clock?: () => number;
  log?: {
    info?(details: object, message: string): void;
    warn(details: object, message: string): void;
  };
}

/** Reads every provider's list once; never throws. */
export async function syncUpstreamModels(deps: ModelSyncDeps): Promise<void> {
  const clock = deps.clock ?? Date.now;
  const names = Object.keys(deps.providers) as ProviderName[];
  await Promise.all(
    names.map(async (name) => {
      const provider = deps.providers[name];
      if (!provider?.listModels) return;
      try {
        const models = await provider.listModels({
          signal: AbortSignal.timeout(deps.timeoutMs),
          timeoutMs: deps.timeoutMs,
        });
        const ours = new Set(
          deps.catalog.models
            .filter((model) => model.provider === name)
            .map((model) => model.upstreamId),
        );
        // A list that names none of our models (an empty page, a proxy's idea of a list) says
        // nothing we can use; taken at its word it would retire every model at once.
        if (!models.some((model) => ours.has(model.id))) {
          deps.log?.warn(
            { provider: name, models: models.length },
            "the provider's model list names none of the catalog's models; ignored",
          );
          return;
        }
        deps.board.recordList(name, models, clock());
        deps.log?.info?.({ provider: name, models: models.length }, "provider model list read");
      } catch (error) {
        deps.log?.warn(
          { provider: name, err: error },
          "could not read the provider's model list; what was known of its models stands",
        );
        return;
      }
      // One line per read, naming every model that needs a look (the admin API says why).
      const needLook = deps.catalog.models
        .filter((model) => model.provider === name)
        .map((model) => ({
          model: model.id,
          warnings: modelWarnings(
            model,
            lifecycleOf(model, deps.board, clock()),
            deps.board,
            clock(),
          ),
        }))
        .filter((entry) => entry.warnings.length > 0);
      if (needLook.length > 0) {
        deps.log?.warn({ provider: name, models: needLook }, "catalog models need a look");
      }
    }),
  );
}

const VERIFY_INTERVAL_MS = 60_000;

export interface ModelSync {
  /** Reads every provider's list again soon, at most once a minute per provider. */
  verify(provider: ProviderName): void;
  stop(): void;
}

/** Reads the lists now (the start waits for it), then every `intervalMs`. */
export async function startModelSync(deps: ModelSyncDeps, intervalMs: number): Promise<ModelSync> {
  const clock = deps.clock ?? Date.now;
  const lastVerified = new Map<ProviderName, number>();
  await syncUpstreamModels(deps);
  const timer = setInterval(() => {
    syncUpstreamModels(deps).catch(() => {});
  }, intervalMs);
  timer.unref();
  return {
    verify(provider) {
      const provided = deps.providers[provider];
      const last = lastVerified.get(provider) ?? Number.NEGATIVE_INFINITY;
      if (!provided?.listModels || clock() - last < VERIFY_INTERVAL_MS) return;
      lastVerified.set(provider, clock());
      syncUpstreamModels({ ...deps, providers: { [provider]: provided } }).catch(() => {});
    },
    stop: () => clearInterval(timer),
  };
}
