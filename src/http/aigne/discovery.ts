/**
 * What AIGNE's client reads before it calls, all public (no key), as AIGNE Hub serves them:
 *
 * - `GET /__blocklet__.js?type=json`: the Blocklet Server discovery document. The client looks
 *   up AIGNE Hub's component DID in `componentMountPoints` and prefixes every later call with
 *   its `mountPoint`: PUBLIC_URL's path here, so a hub served under a prefix is found there.
 *   Without `type=json` it is the script Blocklet Server serves (`window.blocklet = {…}`).
 * - `GET /api/ai/models?type=image`: the catalog's models a request can be served by now (their
 *   provider has credentials), as a bare array in AIGNE Hub's shape; `[]` for other types.
 * - `GET /api/v2/status[?model=]`: whether the hub can serve (that model), `{"available"}`.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { microsToUsd } from "../../billing/money.ts";
import type { PriceService } from "../../billing/price-service.ts";
import type { Catalog, ModelSpec, ProviderName } from "../../images/catalog.ts";
import type { ImageService } from "../../images/generate.ts";
import { hubModelName } from "./input.ts";

/** AIGNE Hub's component DID: the key its clients look for in `componentMountPoints`. */
export const AIGNE_HUB_DID = "z8ia3xzq2tMq8CRHfaXj1BTYJyYnEcHbqP8cJ";

const PROVIDER_DISPLAY_NAMES: Record<ProviderName, string> = {
  openai: "OpenAI",
  google: "Google",
  local: "image-hub",
};

const MAX_IMAGES = 10;

export function registerAigneDiscovery(
  app: FastifyInstance,
  options: { catalog: Catalog; images: ImageService; prices: PriceService; publicUrl: string },
): void {
  const { catalog, images, prices } = options;
  const document = discoveryDocument(options.publicUrl);
  const common = { tags: ["aigne"] };
  const servable = (model: ModelSpec) => images.isProviderConfigured(model.provider);

  app.get<{ Querystring: { type?: string } }>(
    "/__blocklet__.js",
    {
      schema: {
        ...common,
        summary: "Discovery for AIGNE clients: where the AIGNE Hub API is mounted",
        querystring: Type.Object({
          type: Type.Optional(Type.String({ description: "`json` for JSON; a script otherwise." })),
        }),
      },
    },
    async (request, reply) => {
      if (request.query.type === "json") return document;
      return reply
        .type("application/javascript; charset=utf-8")
        .send(`window.blocklet = ${JSON.stringify(document)};\n`);
    },
  );

  app.get<{ Querystring: { type?: string } }>(
    "/api/ai/models",
    {
      schema: {
        ...common,
        summary: "The image models, as AIGNE Hub lists them (no key needed)",
        querystring: Type.Object({
          type: Type.Optional(
            Type.String({ maxLength: 50, description: "`image`; other types list nothing." }),
          ),
        }),
      },
    },
    async (request) => {
      const type = request.query.type;
      if (type !== undefined && type !== "image" && type !== "imageGeneration") return [];
      const book = prices.book();
      return catalog.models.filter(servable).map((model) => {
        const perImage = book.perImageMicros(model.id, model.defaultSize, undefined);
        const tokens = book.describe(model.id)?.per_million_tokens;
        return {
          // The name to give AIGNE's client: `aignehub/` keeps it from calling the provider itself.
          key: `aignehub/${model.id}`,
          model: model.id,
          type: "image",
          provider: model.provider,
          providerDisplayName: PROVIDER_DISPLAY_NAMES[model.provider],
          // AIGNE Hub's credits are USD here; an image model's output price is per image.
          input_credits_per_token: String(tokens ? tokens.text_input / 1_000_000 : 0),
          output_credits_per_token: String(perImage === undefined ? 0 : microsToUsd(perImage)),
          modelMetadata: {
            description: model.description,
            imageGeneration: {
              max: MAX_IMAGES,
              size: model.sizes.kind === "list" ? model.sizes.sizes : [],
              quality: model.qualities,
              style: model.styles,
            },
          },
          status: { available: true },
        };
      });
    },
  );

  app.get<{ Querystring: { model?: string } }>(
    "/api/v2/status",
    {
      schema: {
        ...common,
        summary: "Whether the hub can serve, or serve one model (no key needed)",
        querystring: Type.Object({ model: Type.Optional(Type.String({ maxLength: 200 })) }),
      },
    },
    async (request) => {
      const name = request.query.model;
      if (name === undefined) return { available: catalog.models.some(servable) };
      const model = catalog.find(hubModelName(name));
      if (!model) return { available: false, error: `No model '${name}' on this hub.` };
      if (!servable(model)) {
        return { available: false, error: `The provider of '${model.id}' has no credentials.` };
      }
      return { available: true };
    },
  );
}

function discoveryDocument(publicUrl: string) {
  const url = new URL(publicUrl);
  const mountPoint = url.pathname.replace(/\/+$/, "") || "/";
  return {
    appName: "image-hub",
    appUrl: url.origin,
    componentMountPoints: [
      {
        did: AIGNE_HUB_DID,
        name: "image-hub",
        title: "AIGNE Hub API",
        mountPoint,
        status: "running",
      },
    ],
  };
}
