/**
 * Prices, for admins: read them all, set a price per image (by model, size and quality, `*`
 * for any) or per million tokens, remove one. Changes apply to the next request. A price that
 * could never apply (a size or quality the model lacks, tokens from an upstream that reports
 * none) is refused; a removal says what the model is left without a price for (keys with a
 * balance are refused those requests, 400 `model_not_priced`). A price of 0 makes a model free.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { microsToUsd, usdToMicros } from "../billing/money.ts";
import type { PriceService } from "../billing/price-service.ts";
import { HubError, modelNotFound } from "../errors.ts";
import type { Catalog, ModelSpec } from "../images/catalog.ts";
import {
  checkImagePriceTarget,
  checkTokenPriceTarget,
  unpricedRequests,
} from "../images/price-checks.ts";
import { ErrorResponse } from "../images/schema.ts";
import type { AuthHooks } from "./auth.ts";

const ImagePriceBody = Type.Object({
  model: Type.String({ minLength: 1 }),
  size: Type.Optional(Type.String({ minLength: 1, description: "WxH, auto, or * for any" })),
  quality: Type.Optional(Type.String({ minLength: 1, description: "a quality, or * for any" })),
  usd: Type.Number({ minimum: 0, maximum: 1000, description: "USD per image" }),
});

const TokenPriceBody = Type.Object({
  model: Type.String({ minLength: 1 }),
  text_input: Type.Number({ minimum: 0, maximum: 10000, description: "USD per million" }),
  image_input: Type.Number({ minimum: 0, maximum: 10000, description: "USD per million" }),
  output: Type.Number({ minimum: 0, maximum: 10000, description: "USD per million" }),
});

export function registerPriceRoutes(
  app: FastifyInstance,
  options: { prices: PriceService; catalog: Catalog; auth: AuthHooks; clock?: () => number },
): void {
  const clock = options.clock ?? Date.now;
  const modelNamed = (name: string): ModelSpec => {
    const model = options.catalog.find(name);
    if (!model) throw modelNotFound(name);
    return model;
  };
  const common = { onRequest: options.auth.requireAdmin };
  const security = [{ bearerAuth: [] }];

  app.get(
    "/api/admin/prices",
    { ...common, schema: { summary: "List prices", tags: ["admin"], security } },
    async () => {
      const book = options.prices.book();
      return {
        object: "list",
        data: options.catalog.models.map((model) => ({
          model: model.id,
          ...book.describe(model.id),
          unpriced: unpricedRequests(model, book),
        })),
      };
    },
  );

  app.put<{ Body: { model: string; size?: string; quality?: string; usd: number } }>(
    "/api/admin/prices/image",
    {
      ...common,
      schema: {
        summary: "Set a price per image",
        tags: ["admin"],
        security,
        body: ImagePriceBody,
        response: {
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          404: ErrorResponse,
        },
      },
    },
    async (request) => {
      const { size = "*", quality = "*", usd } = request.body;
      const spec = modelNamed(request.body.model);
      checkImagePriceTarget(spec, size, quality);
      const model = spec.id;
      const microsPerImage = usdToMicros(usd);
      await options.prices.putImagePrice({
        model,
        size,
        quality,
        microsPerImage,
        source: "admin",
        updatedAt: clock(),
      });
      return { model, size, quality, usd: microsToUsd(microsPerImage), source: "admin" };
    },
  );

  app.delete<{ Querystring: { model: string; size?: string; quality?: string } }>(
    "/api/admin/prices/image",
    { ...common, schema: { summary: "Remove a price per image", tags: ["admin"], security } },
    async (request) => {
      const { size = "*", quality = "*" } = request.query;
      const spec = modelNamed(String(request.query.model ?? ""));
      const model = spec.id;
      const deleted = await options.prices.deleteImagePrice(model, size, quality);
      if (!deleted) {
        throw new HubError(`No price for ${model} at size ${size} and quality ${quality}.`, {
          status: 404,
          type: "invalid_request_error",
          code: "price_not_found",
        });
      }
      const unpriced = unpricedRequests(spec, options.prices.book());
      if (unpriced.length > 0) {
        request.log.warn(
          { model, unpriced },
          "a price removal left requests without a price: keys with a balance are refused them",
        );
      }
      return { model, size, quality, deleted: true, unpriced };
    },
  );

  app.put<{ Body: { model: string; text_input: number; image_input: number; output: number } }>(
    "/api/admin/prices/token",
    {
      ...common,
      schema: {
        summary: "Set token prices",
        tags: ["admin"],
        security,
        body: TokenPriceBody,
        response: {
          400: ErrorResponse,
          401: ErrorResponse,
          403: ErrorResponse,
          404: ErrorResponse,
        },
      },
    },
    async (request) => {
      const spec = modelNamed(request.body.model);
      checkTokenPriceTarget(spec);
      const model = spec.id;
      await options.prices.putTokenPrice({
        model,
        textInputPerMillion: request.body.text_input,
        imageInputPerMillion: request.body.image_input,
        outputPerMillion: request.body.output,
        source: "admin",
        updatedAt: clock(),
      });
      return { ...request.body, model, source: "admin" };
    },
  );
}
