/**
 * What an operator does to the catalog through /api/admin/models, as plain functions the route
 * calls: define a model (whole, or `like` another), change one, delete one, and see each with
 * its lifecycle and what its provider says of it. Every write is checked against the whole
 * catalog first (a successor that exists, no loop, no name two models answer to), stored in the
 * database, and read back by the store, so the next request anywhere uses it.
 */

import { usdToMicros } from "../billing/money.ts";
import type { PriceService } from "../billing/price-service.ts";
import { HubError, invalidRequest, modelNotFound } from "../errors.ts";
import type { Database, ImagePrice, TokenPrice } from "../storage/db/types.ts";
import type { ModelSpec, ProviderName } from "./catalog.ts";
import type { CatalogStore, StoredDefinition } from "./catalog-store.ts";
import { storedText } from "./catalog-store.ts";
import { lifecycleOf } from "./lifecycle.ts";
import type { ModelFieldValues, PriceValue } from "./model-definition.ts";
import { CAPABILITY_FIELDS, fieldsOfSpec, specFromFields } from "./model-fields.ts";
import { modelWarnings } from "./model-warnings.ts";
import { checkImagePriceTarget, checkTokenPriceTarget } from "./price-checks.ts";
import type { UpstreamModelBoard } from "./upstream-models.ts";

export interface ModelAdminDeps {
  store: CatalogStore;
  db: Pick<Database, "insertCatalogModel" | "putCatalogModel" | "deleteCatalogModel">;
  prices: Pick<PriceService, "book" | "putImagePrice" | "putTokenPrice" | "deleteImagePrice">;
  board: UpstreamModelBoard;
  isProviderConfigured(provider: ProviderName): boolean;
  /** What is wrong with a model's request template for its provider (a ComfyUI workflow). */
  templateProblem?(
    provider: ProviderName,
    template: Readonly<Record<string, unknown>>,
  ): string | undefined;
  clock?: () => number;
}

export function createModelAdmin(deps: ModelAdminDeps) {
  const clock = deps.clock ?? Date.now;

  /** The admin's view of a model: its fields, its life, its price and what to look at. */
  function view(model: ModelSpec) {
    const now = clock();
    const life = lifecycleOf(model, deps.board, now);
    return {
      object: "catalog_model" as const,
      ...fieldsOfSpec(model),
      status: life.status,
      declared_status: model.declaredStatus,
      shutdown_date: life.shutdownDate,
      origin: model.origin,
      configured: deps.isProviderConfigured(model.provider),
      upstream: {
        listed: life.upstream.offered,
        shutdown_date: life.upstream.shutdownDate,
        checked_at:
          life.upstream.checkedAt === null ? null : Math.floor(life.upstream.checkedAt / 1000),
      },
      pricing: deps.prices.book().describe(model.id) ?? null,
      warnings: modelWarnings(model, life, deps.board, now),
    };
  }

  /** A template its provider cannot use is the admin's mistake: refused by name, not stored. */
  function checkTemplate(spec: ModelSpec): void {
    if (!spec.requestTemplate) return;
    const problem = deps.templateProblem?.(spec.provider, spec.requestTemplate);
    if (problem) {
      throw invalidRequest(`Invalid 'request_template': ${problem}`, "request_template");
    }
  }

  async function named(name: string): Promise<ModelSpec> {
    await deps.store.reload();
    const model = deps.store.find(name);
    if (!model) throw modelNotFound(name);
    return model;
  }

  return {
    async list() {
      await deps.store.reload();
      return { object: "list" as const, data: deps.store.models.map(view) };
    },

    get: async (name: string) => view(await named(name)),

    async create(input: ModelFieldValues) {
      await deps.store.reload();
      const { like, price, ...given } = input;
      const id = input.id;
      if (id === undefined) {
        throw invalidRequest(
          "Missing 'id': a new model names its id.",
          "id",
          "missing_required_parameter",
        );
      }
      if (deps.store.find(id)) {
        throw new HubError(
          `A model '${id}' already exists; PATCH /api/admin/models/${id} changes it.`,
          {
            status: 409,
            type: "invalid_request_error",
            code: "model_exists",
            param: "id",
          },
        );
      }
      const template = like === undefined ? undefined : deps.store.find(like);
      if (like !== undefined && !template) {
        throw invalidRequest(
          `Invalid 'like': no model '${like}' on this hub.`,
          "like",
          "model_not_found",
        );
      }
      const fields: ModelFieldValues = { ...capabilitiesOf(template), ...given, id };
      const spec = specFromFields(fields, "admin");
      checkAgainstCatalog(spec, deps.store);
      checkTemplate(spec);
      const priceRows = pricesOf(price, spec, template, deps.prices);
      const inserted = await deps.db.insertCatalogModel({
        id,
        definition: storedText({ mode: "define", fields }),
        hidden: false,
        updatedAt: clock(),
      });
      if (!inserted)
        throw new HubError(`A model '${id}' already exists.`, conflict("model_exists"));
      await writePrices(priceRows, id);
      await deps.store.reload();
      return view(deps.store.byId(id) ?? spec);
    },

    async update(name: string, input: ModelFieldValues) {
      const model = await named(name);
      const { like, price, ...given } = input;
      if (like !== undefined) {
        throw invalidRequest("'like' is for new models; name the fields to change.", "like");
      }
      if (given.id !== undefined && given.id !== model.id) {
        throw invalidRequest("A model's id cannot change; define a new model instead.", "id");
      }
      const stored = deps.store.stored(model.id);
      const definition: StoredDefinition =
        model.origin === "admin"
          ? {
              mode: "define",
              fields: { ...(stored?.fields ?? fieldsOfSpec(model)), ...given, id: model.id },
            }
          : { mode: "override", fields: { ...stored?.fields, ...given } };
      const merged =
        definition.mode === "define" ? definition.fields : { ...fieldsOfSpec(model), ...given };
      const spec = specFromFields({ ...merged, id: model.id }, model.origin);
      checkAgainstCatalog(spec, deps.store);
      checkTemplate(spec);
      const priceRows =
        price === undefined ? undefined : pricesOf(price, spec, undefined, deps.prices);
      await deps.db.putCatalogModel({
        id: model.id,
        definition: storedText(definition),
        hidden: false,
        updatedAt: clock(),
      });
      if (priceRows) await writePrices(priceRows, model.id);
      await deps.store.reload();
      return view(deps.store.byId(model.id) ?? spec);
    },

    async remove(name: string) {
      const model = await named(name);
      const heirs = deps.store.models.filter((other) => other.successor === model.id);
      if (heirs.length > 0) {
        throw new HubError(
          `Model '${model.id}' is the successor of ${heirs.map((heir) => `'${heir.id}'`).join(", ")}: point them at another model first (PATCH their 'successor').`,
          { ...conflict("model_in_use"), param: "successor" },
        );
      }
      // A built-in model stays hidden, whatever row stood for it; an added one is gone.
      if (deps.store.isBuiltIn(model.id)) {
        await deps.db.putCatalogModel({
          id: model.id,
          definition: "{}",
          hidden: true,
          updatedAt: clock(),
        });
      } else {
        await deps.db.deleteCatalogModel(model.id);
      }
      await deps.store.reload();
      return { id: model.id, object: "catalog_model" as const, deleted: true };
    },
  };

  async function writePrices(rows: { images: ImagePrice[]; tokens: TokenPrice[] }, model: string) {
    const book = deps.prices.book().describe(model);
    // A price given replaces the model's per-image rows: rows it leaves out would still match.
    for (const old of book?.per_image ?? []) {
      if (!rows.images.some((row) => row.size === old.size && row.quality === old.quality)) {
        await deps.prices.deleteImagePrice(model, old.size, old.quality);
      }
    }
    for (const row of rows.images) await deps.prices.putImagePrice(row);
    for (const row of rows.tokens) await deps.prices.putTokenPrice(row);
  }
}

export type ModelAdmin = ReturnType<typeof createModelAdmin>;

function conflict(code: string) {
  return { status: 409, type: "invalid_request_error" as const, code };
}

function capabilitiesOf(template: ModelSpec | undefined): ModelFieldValues {
  if (!template) return {};
  const fields = fieldsOfSpec(template);
  return Object.fromEntries(
    CAPABILITY_FIELDS.map((name) => [name, fields[name]]),
  ) as ModelFieldValues;
}

/**
 * What a single model's fields cannot show: its successor exists and the chain does not loop,
 * and none of its names (id, aliases) is already another model's.
 */
function checkAgainstCatalog(spec: ModelSpec, store: CatalogStore): void {
  for (const name of [spec.id, ...spec.aliases]) {
    const owner = store.find(name);
    if (owner && owner.id !== spec.id) {
      throw invalidRequest(
        `Invalid '${name === spec.id ? "id" : "aliases"}': '${name}' already names model '${owner.id}'.`,
        name === spec.id ? "id" : "aliases",
        "name_taken",
      );
    }
  }
  if (spec.successor === null) return;
  const seen = new Set([spec.id]);
  let next: string | null = spec.successor;
  while (next !== null) {
    const model = store.byId(next);
    if (!model) {
      throw invalidRequest(
        `Invalid 'successor': no model '${next}' on this hub (successors are named by id).`,
        "successor",
        "model_not_found",
      );
    }
    if (seen.has(model.id)) {
      throw invalidRequest(
        `Invalid 'successor': the chain through '${model.id}' loops.`,
        "successor",
        "successor_loop",
      );
    }
    seen.add(model.id);
    next = model.successor;
  }
}

/** The price rows a definition brings: its own `price`, else a copy of its template's. */
function pricesOf(
  price: PriceValue | undefined,
  spec: ModelSpec,
  template: ModelSpec | undefined,
  prices: Pick<PriceService, "book">,
): { images: ImagePrice[]; tokens: TokenPrice[] } {
  const source = "admin";
  const model = spec.id;
  if (price !== undefined) {
    const perImage =
      typeof price === "number"
        ? [{ size: "*", quality: "*", usd: price }]
        : (price.per_image ?? []);
    if (typeof price !== "number" && perImage.length === 0) {
      throw invalidRequest(
        "Invalid 'price': 'per_image' is needed (what a request reserves); 'per_million_tokens' alone cannot price an image before it is made.",
        "price.per_image",
      );
    }
    const tokens = typeof price === "number" ? undefined : price.per_million_tokens;
    // Held to the model being defined, as /api/admin/prices holds its rows (400 naming the field).
    for (const row of perImage) checkImagePriceTarget(spec, row.size, row.quality);
    if (tokens) checkTokenPriceTarget(spec);
    return {
      images: perImage.map((row) => ({
        model,
        size: row.size,
        quality: row.quality,
        microsPerImage: usdToMicros(row.usd),
        source,
        updatedAt: Date.now(),
      })),
      tokens: tokens
        ? [
            {
              model,
              textInputPerMillion: tokens.text_input,
              imageInputPerMillion: tokens.image_input,
              outputPerMillion: tokens.output,
              source,
              updatedAt: Date.now(),
            },
          ]
        : [],
    };
  }
  if (!template) {
    throw invalidRequest(
      "Missing 'price': a new model needs its price (USD per image, or {per_image, per_million_tokens}) so requests can be reserved and charged; 'like' copies another model's.",
      "price",
      "missing_required_parameter",
    );
  }
  const book = prices.book();
  const described = book.describe(template.id);
  const tokenPrice = book.tokenPrice(template.id);
  return {
    images: (described?.per_image ?? []).map((row) => ({
      model,
      size: row.size,
      quality: row.quality,
      microsPerImage: usdToMicros(row.usd),
      source: `as ${template.id}`,
      updatedAt: Date.now(),
    })),
    tokens: tokenPrice
      ? [{ ...tokenPrice, model, source: `as ${template.id}`, updatedAt: Date.now() }]
      : [],
  };
}
