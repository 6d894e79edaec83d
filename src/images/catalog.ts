/**
 * The model catalog: one row per model, read by validation (images/plan), fan-out
 * (images/generate), the model list (GET /api/models) and billing. A fact about a model lives
 * here and nowhere else.
 *
 * The rows are data: the built-in ones in models.json beside this file (each naming its source
 * and the date it was checked), merged with what operators define through /api/admin/models
 * (images/catalog-store.ts). This module holds the row type and the name lookup over a set of
 * rows; model-fields.ts turns a JSON row into a `ModelSpec`.
 */
import { readFileSync } from "node:fs";
import type { OutputFormat } from "../providers/types.ts";
import type { ExtraOption } from "./extra-options.ts";
import type { ModelFieldValues } from "./model-definition.ts";
import { specFromFields } from "./model-fields.ts";

/**
 * The provider instance that serves a model: `openai`, `google`, `local`, `xai`, or an
 * operator's own (`localai`); see credentials/instances.ts.
 */
export type ProviderName = string;

/** Sizes a model takes: a fixed list, or a rule for models that take any WxH within bounds. */
export type SizeRule =
  | { kind: "list"; sizes: readonly string[]; auto: boolean }
  | {
      kind: "rule";
      /** Both sides must be multiples of this. */
      multipleOf: number;
      maxSide: number;
      minPixels: number;
      maxPixels: number;
      /** Bounds of width / height. */
      minRatio: number;
      maxRatio: number;
      auto: boolean;
    };

export interface ModelSpec {
  id: string;
  provider: ProviderName;
  upstreamId: string;
  /** Other names clients may use; `provider/id` is always accepted too. */
  aliases: readonly string[];
  /** What the model list says about it; honest about what the model is. */
  description: string;
  sizes: SizeRule;
  defaultSize: string;
  /** The most images one upstream call makes; the hub fans out for more. */
  maxPerCall: number;
  /**
   * Default time budget of one upstream call, ms (UPSTREAM_TIMEOUT_MS or a route overrides it).
   * Sized from how long the model can take at its largest size and quality, with headroom.
   */
  timeoutMs: number;
  /** Accepted `quality` values and the one used when the request names none. */
  qualities: readonly string[];
  defaultQuality: string | undefined;
  /** Accepted `style` values; empty when the model has no notion of style. */
  styles: readonly string[];
  defaultStyle: string | undefined;
  maxPromptLength: number;
  /** The most input images an edit takes; 0 when the model cannot edit. */
  maxInputImages: number;
  /** Whether an edit may carry a mask. */
  masks: boolean;
  /** Formats the model can make (`output_format`); the first is its default. */
  outputFormats: readonly OutputFormat[];
  /** Whether `output_compression` applies (jpeg/webp output). */
  compression: boolean;
  /** Whether `background` (transparent/opaque/auto) applies. */
  background: boolean;
  /** Whether `moderation` (low/auto) applies. */
  moderation: boolean;
  /**
   * Whether a size the model cannot make is made at its nearest size and resized by the hub
   * (vendors that take aspect ratios); false answers 400 naming the sizes it takes.
   */
  resizeToFit: boolean;
  /** A document the provider fills in per request (a ComfyUI workflow); undefined for most. */
  requestTemplate: Readonly<Record<string, unknown>> | undefined;
  /** Vendor options the model takes in a request's `extra`, by name (images/extra-options.ts). */
  extraOptions: Readonly<Record<string, ExtraOption>>;
  /** `ai` for real models; `placeholder` for the offline test pattern. */
  kind: "ai" | "placeholder";
  /** The day the provider shuts the model down (`YYYY-MM-DD`), as known here; null if none. */
  shutdownDate: string | null;
  /** The model that serves its requests once it is retired; null for none. */
  successor: string | null;
  /** Whether a retired model's requests go to its successor; false answers 410. */
  useSuccessor: boolean;
  /** What the data file or an operator declared; null: learned from dates and the provider. */
  declaredStatus: "active" | "deprecated" | "retired" | null;
  /** Where the row's facts come from, and the day they were checked. */
  source: string | null;
  checked: string | null;
  /** `built-in` (models.json), `admin` (defined through the API), or a built-in one changed. */
  origin: "built-in" | "admin" | "built-in, changed";
}

/** The built-in rows, as shipped: what an operator can change, hide or add to at run time. */
export const BUILT_IN_DEFINITIONS: readonly ModelFieldValues[] = readBuiltIn();

/** The data file's rows; test/images/catalog.test.ts holds each to the admin API's schema. */
function readBuiltIn(): ModelFieldValues[] {
  const file = new URL("./models.json", import.meta.url);
  const rows: unknown = JSON.parse(readFileSync(file, "utf8")).models;
  if (!Array.isArray(rows)) throw new Error(`${file.pathname}: 'models' must be a list.`);
  return rows as ModelFieldValues[];
}

/** The built-in models as specs; a row that breaks the rules stops the start (a bug here). */
export const MODELS: readonly ModelSpec[] = BUILT_IN_DEFINITIONS.map((row) =>
  specFromFields(row, "built-in"),
);

/** The prefixes of `provider/model` names: the provider id, and Google's other name. */
const prefixesOf = (provider: ProviderName): readonly string[] =>
  provider === "google" ? ["google", "gemini"] : [provider];

export interface Catalog {
  readonly models: readonly ModelSpec[];
  /** The spec a client's model name means, or undefined when the hub knows no such model. */
  find(name: string): ModelSpec | undefined;
  /** The model with this catalog id (not an alias), or undefined. */
  byId(id: string): ModelSpec | undefined;
}

/** Builds the lookup over every id, alias and `provider/…` spelling, plus admin aliases. */
export function createCatalog(
  models: readonly ModelSpec[] = MODELS,
  extraAliases: Record<string, string> = {},
): Catalog {
  const byName = new Map<string, ModelSpec>();
  for (const model of models) {
    const names = [model.id, ...model.aliases];
    for (const name of names) {
      byName.set(name, model);
      for (const prefix of prefixesOf(model.provider)) {
        if (!name.startsWith(`${prefix}/`)) byName.set(`${prefix}/${name}`, model);
      }
    }
  }
  for (const [alias, target] of Object.entries(extraAliases)) {
    const model = byName.get(target);
    if (!model) throw new Error(`Model alias '${alias}' points at unknown model '${target}'.`);
    byName.set(alias, model);
  }
  const byId = new Map(models.map((model) => [model.id, model]));
  return { models, find: (name) => byName.get(name.trim()), byId: (id) => byId.get(id) };
}
