/**
 * GET /api/models (and /v1/models): the image models this hub can serve now, in the OpenAI list
 * shape, with what each accepts read from the catalog and where it is in its life (`status`,
 * `shutdown_date`, `successor`, always present; retired models are listed, since requests for
 * them are served by their successors). Models whose provider has no credentials are left out,
 * since a request for them could only fail.
 */
import type { FastifyInstance } from "fastify";
import type { PriceService } from "../billing/price-service.ts";
import type { Catalog, ModelSpec } from "../images/catalog.ts";
import type { ImageService } from "../images/generate.ts";
import { lifecycleOf } from "../images/lifecycle.ts";
import { describeSizes } from "../images/plan.ts";
import type { UpstreamModelBoard } from "../images/upstream-models.ts";
import type { AuthHooks } from "./auth.ts";

/** A fixed date for `created`: the catalog has no real one and clients only need an integer. */
const CATALOG_CREATED = 1_735_689_600;

export function registerModelRoutes(
  app: FastifyInstance,
  options: {
    catalog: Catalog;
    images: ImageService;
    prices: PriceService;
    board: UpstreamModelBoard;
    auth: AuthHooks;
    clock?: () => number;
  },
): void {
  const clock = options.clock ?? Date.now;
  for (const prefix of ["/api", "/v1"]) {
    app.get(
      `${prefix}/models`,
      {
        onRequest: options.auth.requireKey,
        schema: {
          summary: "List the image models this hub serves",
          tags: ["models"],
          security: [{ bearerAuth: [] }],
        },
      },
      async () => ({
        object: "list",
        data: options.catalog.models
          .filter((model) => options.images.isProviderConfigured(model.provider))
          .map((model) => ({
            ...describeModel(model),
            ...describeLife(model, options.board, clock()),
            pricing: options.prices.book().describe(model.id),
          })),
      }),
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
    default_size: model.defaultSize,
    max_images: 10,
    max_images_per_call: model.maxPerCall,
    qualities: model.qualities,
    styles: model.styles,
    max_prompt_length: model.maxPromptLength,
    edits: model.maxInputImages > 0,
    max_input_images: model.maxInputImages,
    output_formats: model.outputFormats,
    response_formats: ["url", "b64_json"],
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
