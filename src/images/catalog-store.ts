/**
 * The catalog in force: the built-in rows (models.json) merged with what operators defined,
 * changed or deleted through /api/admin/models (the `catalog_models` table). It is itself a
 * `Catalog`, read by every request, and is rebuilt in memory whenever the table may have
 * changed: after this instance's own writes, when another instance's write is announced
 * (PostgreSQL NOTIFY), every minute as a safety net, and when a request names a model it does
 * not know (another instance may just have added it).
 *
 * A stored row the hub cannot use (written by a later version, edited by hand, pointing at a
 * model that is gone) is skipped with a warning, never a failed start: the rest of the catalog
 * still serves, and the admin API lists the problem.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { isHubError } from "../errors.ts";
import type { CatalogModelRecord, Database } from "../storage/db/types.ts";
import { BUILT_IN_DEFINITIONS, type Catalog, createCatalog, type ModelSpec } from "./catalog.ts";
import type { ModelFieldValues } from "./model-definition.ts";
import { specFromFields } from "./model-fields.ts";

/** How a stored row is read: a whole definition, or fields changed on a built-in model. */
export interface StoredDefinition {
  mode: "define" | "override";
  fields: ModelFieldValues;
}

export interface CatalogStore extends Catalog {
  /** Re-reads the stored rows now; when that fails, the catalog stays as it was. */
  reload(): Promise<void>;
  /**
   * A reload that starts after this call (so it sees any write made before it), coalesced
   * with others and at most one every `MIN_REFRESH_MS`: for names a request did not find.
   */
  refresh(): Promise<void>;
  /** The stored row of a model id as read at the last reload. */
  stored(id: string): StoredDefinition | undefined;
  /** Whether `id` is a built-in model's (hidden or not). */
  isBuiltIn(id: string): boolean;
  /** Rows skipped at the last reload, and why. */
  problems(): readonly { id: string; message: string }[];
  stop(): void;
}

const MIN_REFRESH_MS = 100;
const RELOAD_INTERVAL_MS = 60_000;

export interface CatalogStoreOptions {
  db: Pick<Database, "listCatalogModels" | "onCatalogChange">;
  /** Names an operator routes to models from the environment (MODEL_ALIASES). */
  extraAliases?: Record<string, string>;
  builtIn?: readonly ModelFieldValues[];
  log?: { warn(details: object, message: string): void };
}

export async function createCatalogStore(options: CatalogStoreOptions): Promise<CatalogStore> {
  const builtIn = options.builtIn ?? BUILT_IN_DEFINITIONS;
  const builtInIds = new Set(builtIn.map((row) => row.id as string));
  let state = merge(builtIn, [], options.extraAliases ?? {}, () => undefined);
  let generation = 0;

  async function reload(): Promise<void> {
    const mine = ++generation;
    const records = await options.db.listCatalogModels();
    // The schema check loads TypeBox and ajv: only worth it when there are stored rows (the
    // CLI, which has none to check most days, starts faster without).
    const check =
      records.length === 0
        ? () => undefined
        : (await import("./model-definition.ts")).problemWithFields;
    const next = merge(builtIn, records, options.extraAliases ?? {}, check);
    if (mine !== generation) return;
    for (const problem of next.problems) {
      if (
        !state.problems.some(
          (known) => known.id === problem.id && known.message === problem.message,
        )
      ) {
        options.log?.warn(problem, "catalog row skipped");
      }
    }
    state = next;
  }

  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let lastStartedAt = 0;
  const start = (): Promise<void> => {
    const run = (async () => {
      const wait = lastStartedAt + MIN_REFRESH_MS - Date.now();
      if (wait > 0) await sleep(wait);
      lastStartedAt = Date.now();
      await reload();
    })().finally(() => {
      running = undefined;
    });
    running = run;
    return run;
  };
  const refresh = (): Promise<void> => {
    if (queued) return queued;
    if (!running) return start();
    // The one running may have started before the write this caller wants to see.
    queued = running
      .catch(() => {})
      .then(() => {
        queued = undefined;
        return running ?? start();
      });
    return queued;
  };

  const warnReload = (error: unknown) =>
    options.log?.warn({ err: error }, "could not reload the model catalog");
  const stopListening = options.db.onCatalogChange(() => {
    reload().catch(warnReload);
  });
  const timer = setInterval(() => reload().catch(warnReload), RELOAD_INTERVAL_MS);
  timer.unref();
  await reload();

  return {
    get models() {
      return state.catalog.models;
    },
    find: (name) => state.catalog.find(name),
    byId: (id) => state.catalog.byId(id),
    reload,
    refresh,
    stored: (id) => state.stored.get(id),
    isBuiltIn: (id) => builtInIds.has(id),
    problems: () => state.problems,
    stop() {
      clearInterval(timer);
      stopListening();
    },
  };
}

interface MergedState {
  catalog: Catalog;
  stored: Map<string, StoredDefinition>;
  problems: { id: string; message: string }[];
}

function merge(
  builtIn: readonly ModelFieldValues[],
  records: readonly CatalogModelRecord[],
  extraAliases: Record<string, string>,
  problemWithFields: (fields: unknown) => string | undefined,
): MergedState {
  const problems: MergedState["problems"] = [];
  const stored = new Map<string, StoredDefinition>();
  const byId = new Map(records.map((record) => [record.id, record]));
  const specs: ModelSpec[] = [];
  const add = (id: string, build: () => ModelSpec) => {
    try {
      specs.push(build());
    } catch (error) {
      problems.push({ id, message: isHubError(error) ? error.message : String(error) });
    }
  };
  const readRecord = (record: CatalogModelRecord) => {
    const definition = parseStored(record.definition, problemWithFields);
    if (definition) stored.set(record.id, definition);
    else problems.push({ id: record.id, message: "its stored definition cannot be read" });
    return definition;
  };
  for (const row of builtIn) {
    const id = row.id as string;
    const record = byId.get(id);
    if (record?.hidden) continue;
    const definition = record && readRecord(record);
    if (definition?.mode === "define")
      add(id, () => specFromFields({ ...definition.fields, id }, "admin"));
    else if (definition?.mode === "override") {
      add(id, () => specFromFields({ ...row, ...definition.fields, id }, "built-in, changed"));
    } else add(id, () => specFromFields(row, "built-in"));
  }
  for (const record of records) {
    if (record.hidden || builtIn.some((row) => row.id === record.id)) continue;
    const definition = readRecord(record);
    if (definition?.mode === "define") {
      add(record.id, () => specFromFields({ ...definition.fields, id: record.id }, "admin"));
    } else if (definition) {
      problems.push({
        id: record.id,
        message: "it changes a built-in model this version does not have",
      });
    }
  }
  const usable = withoutNameClashes(specs, problems);
  const aliases = Object.fromEntries(
    Object.entries(extraAliases).filter(([alias, target]) => {
      const known = usable.some((model) => model.id === target || model.aliases.includes(target));
      if (!known)
        problems.push({ id: alias, message: `MODEL_ALIASES names unknown model '${target}'` });
      return known;
    }),
  );
  return { catalog: createCatalog(usable, aliases), stored, problems };
}

/** Drops a model whose id or alias another model already answers to (the earlier keeps it). */
function withoutNameClashes(specs: ModelSpec[], problems: MergedState["problems"]): ModelSpec[] {
  const owner = new Map<string, string>();
  const kept: ModelSpec[] = [];
  for (const spec of specs) {
    const names = [spec.id, ...spec.aliases];
    const clash = names.find((name) => owner.has(name) && owner.get(name) !== spec.id);
    if (clash !== undefined) {
      problems.push({
        id: spec.id,
        message: `'${clash}' already names model '${owner.get(clash)}'`,
      });
      continue;
    }
    for (const name of names) owner.set(name, spec.id);
    kept.push(spec);
  }
  return kept;
}

function parseStored(
  text: string,
  problemWithFields: (fields: unknown) => string | undefined,
): StoredDefinition | undefined {
  try {
    const value = JSON.parse(text) as { mode?: unknown; fields?: unknown };
    if (value.mode !== "define" && value.mode !== "override") return undefined;
    if (problemWithFields(value.fields) !== undefined) return undefined;
    return { mode: value.mode, fields: value.fields as ModelFieldValues };
  } catch {
    return undefined;
  }
}

export function storedText(definition: StoredDefinition): string {
  return JSON.stringify(definition);
}
