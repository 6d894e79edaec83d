/**
 * GET /api/models (and /v1/models): the image models this hub can serve now, in the OpenAI list
 * shape, with what each accepts read from the catalog and where it is in its life (`status`,
 * `shutdown_date`, `successor`, always present; retired models are listed, since requests for
 * them are served by their successors). Models whose provider has no credentials, and models
 * the key may not use, are left out, since a request for them could only fail.
 * `GET /api/models/{id}` (and /v1) shows one, as the openai SDK's `models.retrieve` asks.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Principal } from "../auth/principal.ts";
import type { PriceService } from "../billing/price-service.ts";
import { modelNotFound } from "../errors.ts";
import type { Catalog, ModelSpec } from "../images/catalog.ts";
import type { ImageService } from "../images/generate.ts";
import type { LatencyBoard } from "../images/latency.ts";
import { lifecycleOf } from "../images/lifecycle.ts";
import { describeSizes } from "../images/plan.ts";
import { ErrorResponse } from "../images/schema.ts";
import type { UpstreamModelBoard } from "../images/upstream-models.ts";
import { type AuthHooks, principalOf } from "./auth.ts";

/** A fixed date for `created`: the catalog has no real one and clients only need an integer. */
const CATALOG_CREATED = 1_735_689_600;

export function registerModelRoutes(
  app: FastifyInstance,
  options: {
    catalog: Catalog;
    images: ImageService;
    prices: PriceService;
    board: UpstreamModelBoard;
    latency?: LatencyBoard;
    auth: AuthHooks;
    clock?: () => number;
  },
): void {
  const clock = options.clock ?? Date.now;
  /** What the list and a lookup show of a model. */
  const present = (model: ModelSpec) => ({
    ...describeModel(model),
    ...describeLife(model, options.board, clock()),
    pricing: options.prices.book().describe(model.id),
    typical_ms: options.latency?.typical(model.id) ?? null,
  });
  /** A model this key can ask for: its provider has credentials and the key may use it. */
  const offered = (model: ModelSpec, principal: Principal) =>
    options.images.isProviderConfigured(model.provider) &&
    (principal.models === null || principal.models.includes(model.id));
  const common = { tags: ["models"], security: [{ bearerAuth: [] }] };
  const errors = { 401: ErrorResponse, 404: ErrorResponse, 429: ErrorResponse };

  for (const prefix of ["/api", "/v1"]) {
    app.get(
      `${prefix}/models`,
      {
        onRequest: options.auth.requireKey,
        schema: { ...common, summary: "List the image models this key can use", response: errors },
      },
      async (request) => {
        const principal = principalOf(request);
        return {
          object: "list",
          data: options.catalog.models.filter((model) => offered(model, principal)).map(present),
        };
      },
    );

    // The openai SDK's `client.models.retrieve(id)`; ids may hold a slash (local/placeholder).
    app.get<{ Params: { "*": string } }>(
      `${prefix}/models/*`,
      {
        onRequest: options.auth.requireKey,
        schema: {
          ...common,
          summary: "Show one model: by id, alias or provider/id",
          params: Type.Object({
            "*": Type.String({ description: "A model id, alias or provider/id." }),
          }),
          response: errors,
        },
      },
      async (request) => {
        const name = decodeURIComponent(request.params["*"]);
        const model = options.catalog.find(name);
        if (!model || !offered(model, principalOf(request))) throw modelNotFound(name);
        return present(model);
      },
    );
  }
}

export function describeModel(model: ModelSpec) {
  return {
    id: model.id,
    object: "model",
    created: CATALOG_CREATED,
    owned_by: model.kind === "placeholder" ? "image-hub" : model.provider,
    type: "image",
    kind: model.kind,
    provider: model.provider,
    description: model.description,
    // `provider/id` is always accepted; ids that already carry it (local/placeholder) have no other.
    aliases: [
      ...model.aliases,
      ...(model.id.startsWith(`${model.provider}/`) ? [] : [`${model.provider}/${model.id}`]),
    ],
    sizes:
      model.sizes.kind === "list"
        ? [...model.sizes.sizes, ...(model.sizes.auto ? ["auto"] : [])]
        : undefined,
    size_rule: describeSizes(model.sizes),
    // The rule as numbers, for a form that offers only sizes the model makes; null for a list.
    size_limits:
      model.sizes.kind === "rule"
        ? {
            multiple_of: model.sizes.multipleOf,
            max_side: model.sizes.maxSide,
            min_pixels: model.sizes.minPixels,
            max_pixels: model.sizes.maxPixels,
            min_ratio: model.sizes.minRatio,
            max_ratio: model.sizes.maxRatio,
            auto: model.sizes.auto,
          }
        : null,
    default_size: model.defaultSize,
    max_images: 10,
    max_images_per_call: model.maxPerCall,
    qualities: model.qualities,
    default_quality: model.defaultQuality ?? null,
    styles: model.styles,
    default_style: model.defaultStyle ?? null,
    max_prompt_length: model.maxPromptLength,
    edits: model.maxInputImages > 0,
    max_input_images: model.maxInputImages,
    mask: model.maxInputImages > 0 && model.masks,
    output_formats: model.outputFormats,
    background: model.background,
    compression: model.compression,
    response_formats: ["url", "b64_json"],
    extra_options: model.extraOptions,
  };
}

/** Where the model is in its life; the keys are always there, null where nothing is known. */
function describeLife(model: ModelSpec, board: UpstreamModelBoard, now: number) {
  const life = lifecycleOf(model, board, now);
  return {
    status: life.status,
    shutdown_date: life.shutdownDate,
    successor: life.successor,
    upstream: {
      listed: life.upstream.offered,
      checked_at:
        life.upstream.checkedAt === null ? null : Math.floor(life.upstream.checkedAt / 1000),
    },
  };
}
