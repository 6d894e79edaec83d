/**
 * What a key may know of itself and of the images it made, for the console and for scripts:
 *
 * - `GET /api/me`: who the key is (role, name, balance, allowed models, limits).
 * - `GET /api/images`: the images the hub still hosts, newest first, with their prompt, model,
 *   size and cost, and a signed URL that works until the image expires. A client key sees its
 *   own; an admin sees everyone's and may filter by key. Filter by model; page with `before`.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { microsToUsd } from "../billing/money.ts";
import { forbidden } from "../errors.ts";
import type { Catalog } from "../images/catalog.ts";
import type { ImageHost } from "../images/hosting.ts";
import { errorResponses } from "../images/schema.ts";
import type { Database } from "../storage/db/types.ts";
import { type AuthHooks, principalOf } from "./auth.ts";

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

const Me = Type.Object({
  object: Type.Literal("key"),
  id: Type.String(),
  name: Type.String(),
  role: Type.Union([Type.Literal("admin"), Type.Literal("client")]),
  balance: Type.Union([Type.Number({ description: "USD left." }), Type.Null()], {
    description: "USD left; null for a key without a limit.",
  }),
  models: Type.Union([Type.Array(Type.String()), Type.Null()], {
    description: "The models the key may use; null for all.",
  }),
  rpm: Type.Union([Type.Integer(), Type.Null()]),
  ipm: Type.Union([Type.Integer(), Type.Null()]),
});

const GalleryQuery = Type.Object({
  key: Type.Optional(Type.String({ maxLength: 100, description: "Key id (admin only)." })),
  model: Type.Optional(Type.String({ maxLength: 200 })),
  before: Type.Optional(
    Type.String({ pattern: "^[0-9]{1,16}$", description: "Unix ms: images made before it." }),
  ),
  limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,4}$", description: `1 to ${MAX_LIMIT}.` })),
});

const GalleryImage = Type.Object({
  id: Type.String(),
  object: Type.Literal("image"),
  url: Type.String({ description: "The signed URL, working until `expires_at`." }),
  prompt: Type.String(),
  model: Type.String(),
  size: Type.String(),
  cost: Type.Number({ description: "USD: the image's share of its request's cost." }),
  key_id: Type.String(),
  record_id: Type.String({ description: "Its request's usage record." }),
  created_at: Type.Integer({ description: "Unix seconds" }),
  expires_at: Type.Integer({ description: "Unix seconds" }),
});

export function registerGalleryRoutes(
  app: FastifyInstance,
  options: {
    db: Database;
    host: ImageHost;
    catalog: Catalog;
    auth: AuthHooks;
    clock?: () => number;
  },
): void {
  const clock = options.clock ?? Date.now;
  const common = { security: [{ bearerAuth: [] }] };

  app.get(
    "/api/me",
    {
      onRequest: options.auth.requireKey,
      schema: {
        ...common,
        tags: ["keys"],
        summary: "The key that calls: role, name, balance, allowed models and limits",
        response: { 200: Me, ...errorResponses([401, 429]) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return {
        object: "key" as const,
        id: principal.keyId,
        name: principal.name,
        role: principal.role,
        balance: principal.balanceMicros === null ? null : microsToUsd(principal.balanceMicros),
        models: principal.models,
        rpm: principal.rpm,
        ipm: principal.ipm,
      };
    },
  );

  app.get<{ Querystring: { key?: string; model?: string; before?: string; limit?: string } }>(
    "/api/images",
    {
      onRequest: options.auth.requireKey,
      schema: {
        ...common,
        tags: ["images"],
        summary: "The images the hub still hosts, newest first (a client key sees its own)",
        querystring: GalleryQuery,
        response: {
          200: Type.Object({ object: Type.Literal("list"), data: Type.Array(GalleryImage) }),
          ...errorResponses([400, 401, 403, 429]),
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { query } = request;
      if (principal.role !== "admin" && query.key !== undefined && query.key !== principal.keyId) {
        throw forbidden("A client key sees only its own images.");
      }
      const model = query.model && (options.catalog.find(query.model)?.id ?? query.model.trim());
      const images = await options.db.listHostedImages({
        keyId: principal.role === "admin" ? query.key : principal.keyId,
        model: model || undefined,
        liveAt: clock(),
        before: query.before === undefined ? undefined : Number(query.before),
        limit: Math.min(MAX_LIMIT, Math.max(1, Number(query.limit ?? DEFAULT_LIMIT))),
      });
      const urls = await Promise.all(
        images.map((image) => options.host.urlOf(image.name, image.expiresAt)),
      );
      return {
        object: "list" as const,
        data: images.map((image, index) => ({
          id: image.name,
          object: "image" as const,
          url: urls[index] as string,
          prompt: image.prompt,
          model: image.model,
          size: image.size,
          cost: microsToUsd(image.costMicros),
          key_id: image.keyId,
          record_id: image.recordId,
          created_at: Math.floor(image.createdAt / 1000),
          expires_at: Math.floor(image.expiresAt / 1000),
        })),
      };
    },
  );
}
