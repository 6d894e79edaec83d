/**
 * GET /healthz for load balancers, and GET /openapi.json generated from the route schemas, with
 * the image endpoints' `model` field describing the models of the catalog in force: the catalog
 * changes at run time, so the document is completed when it is asked for, not at start.
 */
import type { FastifyInstance } from "fastify";
import type { Catalog } from "../images/catalog.ts";

const IMAGE_PATHS = [
  "/api/images/generations",
  "/v1/images/generations",
  "/api/images/edits",
  "/v1/images/edits",
];

export function registerHealthRoutes(app: FastifyInstance, options: { catalog: Catalog }): void {
  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get("/openapi.json", { schema: { hide: true } }, async () =>
    withCatalogModels(app.swagger(), options.catalog),
  );
}

interface Document {
  paths?: Record<
    string,
    Record<string, { requestBody?: { content?: Record<string, { schema?: unknown }> } }>
  >;
}

/**
 * A copy of the document whose image requests name the catalog's models in `model`: what
 * /openapi.json serves, and what the API reference page (api-reference.ts) shows.
 */
export function withCatalogModels(document: unknown, catalog: Catalog): unknown {
  const copy = structuredClone(document) as Document;
  const ids = catalog.models.map((model) => model.id);
  for (const path of IMAGE_PATHS) {
    for (const content of Object.values(copy.paths?.[path]?.post?.requestBody?.content ?? {})) {
      const schema = content.schema as { properties?: Record<string, Record<string, unknown>> };
      const model = schema?.properties?.model;
      if (!model) continue;
      model.examples = ids;
      model.description = `Model id, alias or provider/id; default dall-e-2. The models of this hub: ${ids.join(", ")} (GET /api/models says what each takes; a retired one is served by its successor).`;
    }
  }
  return copy;
}
