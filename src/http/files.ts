/**
 * Hosted images: GET /files/images/:name?expires=…&signature=…, no API key needed. The signed
 * URL is the capability; it works until it expires and never after.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { HubError } from "../errors.ts";
import { FORMAT_OF_MIME_TYPE } from "../image-formats.ts";
import { cacheControlFor, IMAGE_ROUTE_PREFIX, type ImageHost } from "../images/hosting.ts";
import { errorResponses } from "../images/schema.ts";
import { documentOnly } from "./api-reference.ts";

/** What a hosted image may be: the types the hub handles. */
const IMAGE_TYPES = Object.keys(FORMAT_OF_MIME_TYPE);

export function registerFileRoutes(
  app: FastifyInstance,
  options: { host: ImageHost; clock?: () => number },
): void {
  const clock = options.clock ?? Date.now;
  app.get<{ Params: { name: string }; Querystring: Record<string, unknown> }>(
    `${IMAGE_ROUTE_PREFIX}/:name`,
    {
      schema: {
        summary: "A hosted image (signed URL from a url response)",
        tags: ["images"],
        response: errorResponses([403, 404, 410, 500], {
          403: "The signature is missing or does not match the name and expiry (`invalid_signature`).",
          404: "No image at this name: never made, or swept after its link expired (`image_not_found`).",
          410: "The link has expired (`url_expired`); generate the image again for a new one.",
        }),
      },
      // The signed link is checked by `host.resolve`, so that any fault in it is the same 403
      // (never a 400 telling which part is malformed); the schemas only describe the link.
      config: documentOnly({
        params: Type.Object({
          name: Type.String({ description: "The image's random id and its extension." }),
        }),
        querystring: Type.Object({
          expires: Type.String({
            pattern: "^[0-9]+$",
            description: "Unix seconds when the link expires; covered by the signature.",
          }),
          signature: Type.String({ description: "base64url HMAC of the name and expiry." }),
        }),
        response: {
          200: {
            description: "The image, cacheable until the link expires.",
            content: Object.fromEntries(
              IMAGE_TYPES.map((type) => [type, { schema: { type: "string", format: "binary" } }]),
            ),
            headers: {
              "Cache-Control": Type.String({
                description: "`private, max-age=<seconds until the link expires>, immutable`.",
              }),
            },
          },
        },
      }),
    },
    async (request, reply) => {
      const image = await options.host.resolve(request.params.name, request.query);
      if (image instanceof HubError) throw image;
      return reply
        .header("content-type", image.contentType)
        .header("content-length", String(image.size))
        .header("cache-control", cacheControlFor(image.expiresAt, clock()))
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .send(image.stream);
    },
  );
}
