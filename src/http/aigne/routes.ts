/**
 * AIGNE Hub's image routes, on the same pipeline as the OpenAI ones (keys, limits,
 * reservations, ledger, fan-out, hosting, fallbacks, error codes), so `@aigne/aigne-hub` works
 * against image-hub unchanged:
 *
 * - `POST /api/v2/image`: what `AIGNEHubImageModel` calls (http/aigne/input.ts reads its body).
 *   The client sends no Idempotency-Key and re-POSTs after a timeout, so one is derived from
 *   the key and the body, valid while the first request runs and AIGNE_RETRY_GRACE_SECONDS
 *   after: the retry joins it rather than paying again, and the same prompt sent later is a new
 *   request. `X-Image-Hub-Idempotency: derived; …` says so.
 * - `POST /api/v2/image/generations`: AIGNE Hub's OpenAI-shaped route.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { GenerationResult } from "../../images/generate.ts";
import type { ImageJobRequest } from "../../images/plan.ts";
import { ImageGenerationBody } from "../../images/schema.ts";
import { documentOnly } from "../api-reference.ts";
import type { AuthHooks } from "../auth.ts";
import { validationError } from "../errors.ts";
import {
  answerImageRequest,
  IdempotencyReplyHeaders,
  type ImageRequestDeps,
  ImageRequestHeaders,
  jsonReply,
} from "../image-request.ts";
import { imageErrorResponses } from "../images.ts";
import { callOfAigneInvoke, callOfOpenAIShaped } from "./input.ts";
import { aigneGenerationsPieces, aigneInvokePieces } from "./reply.ts";

/** An object of any fields (OpenAPI 3.0 has no patternProperties for a Record). */
const AnyObject = (description?: string) =>
  Type.Object({}, { additionalProperties: true, ...(description ? { description } : {}) });

const AigneInvokeBody = Type.Object(
  {
    input: Type.Object(
      {
        prompt: Type.String({ minLength: 1, description: "What to draw." }),
        n: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
        image: Type.Optional(
          Type.Array(
            AnyObject(
              'An image to edit: {"type":"url","url"} or {"type":"file","data":"<base64>","mimeType"}.',
            ),
          ),
        ),
        outputFileType: Type.Optional(
          Type.String({ description: "`url` (default; `local` too) or `file` (base64)." }),
        ),
        modelOptions: Type.Optional(
          AnyObject(
            "`model`, and the options (size, quality, style, outputFormat, …) in camelCase or snake_case.",
          ),
        ),
      },
      { additionalProperties: true },
    ),
    agent: Type.Optional(Type.String()),
    options: Type.Optional(AnyObject()),
    model: Type.Optional(Type.String({ description: "The model, from older clients." })),
  },
  { additionalProperties: true },
);

const AigneInvokeReply = Type.Object(
  {
    images: Type.Array(
      Type.Object({
        type: Type.String({ description: "`url` or `file`." }),
        url: Type.Optional(Type.String()),
        data: Type.Optional(Type.String({ description: "Base64, for `file`." })),
        mimeType: Type.String(),
      }),
    ),
    usage: Type.Object({
      inputTokens: Type.Number(),
      outputTokens: Type.Number(),
      aigneHubCredits: Type.Number({ description: "USD charged." }),
      creditPrefix: Type.String(),
    }),
    model: Type.String({ description: "The model that served." }),
  },
  { description: "The images, as AIGNE's client reads them." },
);

export function registerAigneImageRoutes(
  app: FastifyInstance,
  options: ImageRequestDeps & { auth: AuthHooks; retryGraceMs: number },
): void {
  const replyHeaders = {
    "X-Image-Hub-Model": Type.String(),
    "X-Image-Hub-Record-Id": Type.String(),
    "X-Image-Hub-Cost": Type.String(),
    "X-Image-Hub-Warnings": Type.String({
      description: "Includes the fields the hub did not use (`ignored: …`).",
    }),
    ...IdempotencyReplyHeaders,
  };

  app.post<{ Body: Record<string, unknown> }>(
    "/api/v2/image",
    {
      onRequest: options.auth.requireKey,
      schema: {
        summary: "Generate or edit images, as AIGNE's AIGNEHubImageModel calls",
        tags: ["aigne"],
        security: [{ bearerAuth: [] }],
        body: AigneInvokeBody,
        response: {
          200: { ...AigneInvokeReply, headers: replyHeaders },
          ...imageErrorResponses("Not JSON (`unsupported_media_type`)."),
        },
      },
      config: documentOnly({ headers: ImageRequestHeaders }),
    },
    async (request, reply) => {
      const call = callOfAigneInvoke(request.body);
      return answerImageRequest(options, request, reply, {
        body: checked(request, call.request),
        sent: request.body,
        deriveKeepMs: options.retryGraceMs,
        prepare: (result: GenerationResult) =>
          jsonReply(result, aigneInvokePieces(result, call.fileType), ignoredNote(call.ignored)),
      });
    },
  );

  app.post<{ Body: Record<string, unknown> }>(
    "/api/v2/image/generations",
    {
      onRequest: options.auth.requireKey,
      schema: {
        summary: "Create images, OpenAI's request with AIGNE Hub's reply additions",
        tags: ["aigne"],
        security: [{ bearerAuth: [] }],
        body: Type.Object(
          { prompt: Type.String({ minLength: 1 }) },
          {
            additionalProperties: true,
            description: "The fields of /api/images/generations; camelCase spellings accepted.",
          },
        ),
        response: { ...imageErrorResponses("Not JSON (`unsupported_media_type`).") },
      },
      config: documentOnly({ headers: ImageRequestHeaders }),
    },
    async (request, reply) => {
      const call = callOfOpenAIShaped(request.body, Object.keys(ImageGenerationBody.properties));
      return answerImageRequest(options, request, reply, {
        body: checked(request, call.request),
        sent: request.body,
        prepare: (result: GenerationResult) =>
          jsonReply(result, aigneGenerationsPieces(result), ignoredNote(call.ignored)),
      });
    },
  );
}

/** The translated request, checked as the OpenAI route checks its body. */
function checked(request: FastifyRequest, body: ImageJobRequest): ImageJobRequest {
  const validate = request.compileValidationSchema(ImageGenerationBody, "body");
  if (!validate(body)) throw validationError(validate.errors ?? []);
  return body;
}

function ignoredNote(ignored: readonly string[]): string[] {
  return ignored.length === 0 ? [] : [`ignored: ${ignored.join(", ")}`];
}
