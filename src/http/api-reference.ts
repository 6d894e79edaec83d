/**
 * The API reference: `GET /docs`, a page that renders /openapi.json with Swagger UI. Its scripts
 * and styles are files of the @fastify/swagger-ui package, served by the hub itself, so the page
 * works without the internet, and its Content-Security-Policy lets it load nothing from
 * elsewhere. Public, like the document it shows.
 *
 * Also `documentOnly`, for what a route's document says that its schemas cannot: a schema in
 * `schema` validates requests and serializes replies, one given here is only shown.
 */
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, FastifySchema } from "fastify";
import type { Catalog } from "../images/catalog.ts";
import { withCatalogModels } from "./health.ts";

const API_REFERENCE_PREFIX = "/docs";

/**
 * Everything from the hub itself. Swagger UI sets styles inline and shows images as data: URLs;
 * the requests "Try it out" sends go to the hub (the document names no other server).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'self' 'unsafe-inline'",
  "script-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join("; ");

export async function registerApiReference(
  app: FastifyInstance,
  options: { catalog: Catalog },
): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: API_REFERENCE_PREFIX,
    theme: { title: "image-hub API reference" },
    uiConfig: { deepLinking: true, docExpansion: "list", defaultModelsExpandDepth: 0 },
    // No badge from the online validator: it would send the document elsewhere.
    validatorUrl: false,
    staticCSP: CONTENT_SECURITY_POLICY,
    // The page shows what /openapi.json serves, the catalog's models included; this makes a copy.
    transformSpecification: (document) => withCatalogModels(document, options.catalog) as object,
    transformSpecificationClone: false,
  });
}

/**
 * Route `config` that adds to what the document says of a route, and to nothing else: the
 * schemas given here neither validate requests nor serialize replies (@fastify/swagger reads
 * them through its `swaggerTransform`). For a request the handler reads itself (a multipart
 * form), or a reply a schema must not touch (a file), or checks a handler makes with errors of
 * its own (a signed link's query). `response` entries are added to the route's own.
 *
 * @example
 * app.get("/files/:name", { schema, config: documentOnly({ querystring: SignedQuery }) }, handler)
 */
export function documentOnly(extra: FastifySchema) {
  return {
    swaggerTransform: ({ schema = {}, url }: { schema?: FastifySchema; url: string }) => {
      const response =
        schema.response === undefined && extra.response === undefined
          ? undefined
          : { ...(schema.response as object), ...(extra.response as object) };
      return { schema: { ...schema, ...extra, ...(response ? { response } : {}) }, url };
    },
  };
}
