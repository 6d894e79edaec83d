/**
 * Hosted images: GET /files/images/:name?expires=…&signature=…, no API key needed. The signed
 * URL is the capability; it works until it expires and never after.
 */
import type { FastifyInstance } from "fastify";
import { HubError } from "../errors.ts";
import { cacheControlFor, IMAGE_ROUTE_PREFIX, type ImageHost } from "../images/hosting.ts";

export function registerFileRoutes(
  app: FastifyInstance,
  options: { host: ImageHost; clock?: () => number },
): void {
  const clock = options.clock ?? Date.now;
  app.get<{ Params: { name: string }; Querystring: Record<string, unknown> }>(
    `${IMAGE_ROUTE_PREFIX}/:name`,
    { schema: { summary: "A hosted image (signed URL from a url response)", tags: ["images"] } },
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
