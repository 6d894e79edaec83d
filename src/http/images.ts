/**
 * The image endpoints: generations (JSON) and edits (multipart or JSON), each under /api and
 * /v1 so the official `openai` SDK works with either base URL. Each handler reads the request,
 * calls the image service once and shapes the reply.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type Static, Type } from "typebox";
import { HubError, invalidRequest } from "../errors.ts";
import type { GenerationResult } from "../images/generate.ts";
import type { ImageJobRequest } from "../images/plan.ts";
import {
  errorResponses,
  ImageEditBody,
  ImageEditForm,
  ImageEditFormFields,
  ImageGenerationBody,
  ImageResponse,
} from "../images/schema.ts";
import { documentOnly } from "./api-reference.ts";
import type { AuthHooks } from "./auth.ts";
import { validationError } from "./errors.ts";
import { imageReplyPieces } from "./image-reply.ts";
import {
  answerImageRequest,
  IdempotencyReplyHeaders,
  type ImageRequestDeps,
  ImageRequestHeaders,
  jsonReply,
} from "./image-request.ts";
import { type FormLimits, formLimitsOfApp, readMultipartEdit } from "./multipart.ts";

const PREFIXES = ["/api", "/v1"] as const;

/** The headers of an image reply (http/image-request.ts), for the document. */
const ImageReplyHeaders = {
  "X-Image-Hub-Model": Type.String({
    description: "The model that served the request: a retired model's successor, say.",
  }),
  "X-Image-Hub-Record-Id": Type.String({
    description: "The request's usage record (GET /api/usage), for matching a reply to its cost.",
  }),
  "X-Image-Hub-Cost": Type.String({
    description: "What the key was charged for this request, USD with six places (`0.040000`).",
  }),
  "X-Image-Hub-Warnings": Type.String({
    description:
      "What the model did not honour of the request (a style, a seed), joined by ' | '; absent when nothing.",
  }),
  "X-Image-Hub-Partial": Type.String({
    description:
      "`requested=N; delivered=M; error=CODE` when fewer images were made than asked for; absent otherwise.",
  }),
  ...IdempotencyReplyHeaders,
};

/** The reply is written as bytes (http/image-request.ts), so this schema describes it and strips nothing. */
const ImageReply = {
  ...ImageResponse,
  description:
    "The images, as `b64_json` or `url` (hosted by the hub until the link expires) as asked, and the tokens used where the model counts them.",
  headers: ImageReplyHeaders,
};

export const imageErrorResponses = (unsupportedMediaType: string) =>
  errorResponses([400, 401, 402, 403, 404, 409, 410, 413, 415, 429, 431, 500, 502, 503, 504], {
    400: "A parameter is missing or not valid (`param` names it), an input image cannot be read or fetched, or the provider refused the prompt or image (`content_policy_violation`).",
    403: "The key may not use this model (`model_not_allowed`).",
    404: "No such model on this hub (`model_not_found`).",
    409: "The Idempotency-Key was used for a different request (`idempotency_key_reused`).",
    410: "The model is retired and has no successor on this hub (`model_retired`).",
    413: "The body, an input image or a form field is larger than this hub accepts.",
    415: unsupportedMediaType,
    429: "The key's rate limit (requests or images per minute), the provider's, or too many wrong keys from this address: wait as Retry-After says.",
    503: "The provider is unavailable or has no credentials on this hub any more, or the hub is shutting down.",
  });

export function registerImageRoutes(
  app: FastifyInstance,
  options: ImageRequestDeps & { auth: AuthHooks },
): void {
  const { auth } = options;
  const formLimits = formLimitsOfApp(app);
  const prepare = (result: GenerationResult) => jsonReply(result, imageReplyPieces(result));

  for (const prefix of PREFIXES) {
    app.post<{ Body: Static<typeof ImageGenerationBody> }>(
      `${prefix}/images/generations`,
      {
        onRequest: auth.requireKey,
        preValidation: refuseMultipart,
        schema: {
          summary: "Create images from a prompt (or edit, with `image`)",
          tags: ["images"],
          security: [{ bearerAuth: [] }],
          body: ImageGenerationBody,
          response: {
            200: ImageReply,
            ...imageErrorResponses(
              "Not JSON: a multipart/form-data body belongs to /images/edits (`unsupported_media_type`).",
            ),
          },
        },
        config: documentOnly({ headers: ImageRequestHeaders }),
      },
      async (request, reply) =>
        answerImageRequest(options, request, reply, {
          body: request.body,
          sent: request.body,
          prepare,
        }),
    );

    app.post(
      `${prefix}/images/edits`,
      {
        onRequest: auth.requireKey,
        schema: {
          summary: "Edit images: multipart/form-data as OpenAI's edits endpoint, or JSON",
          tags: ["images"],
          security: [{ bearerAuth: [] }],
          response: {
            200: ImageReply,
            ...imageErrorResponses(
              "Neither multipart/form-data nor JSON (`unsupported_media_type`).",
            ),
          },
        },
        // The handler reads and checks the body itself (`readEditRequest`): a form is parsed
        // as it streams in, so a body schema here could only describe it.
        config: documentOnly({
          headers: ImageRequestHeaders,
          body: {
            content: {
              "multipart/form-data": { schema: ImageEditForm },
              "application/json": { schema: ImageEditBody },
            },
          },
        }),
      },
      async (request, reply) => {
        const body = await readEditRequest(request, reply, formLimits);
        return answerImageRequest(options, request, reply, { body, sent: body, prepare });
      },
    );
  }
}

async function readEditRequest(
  request: FastifyRequest,
  reply: FastifyReply,
  formLimits: FormLimits,
): Promise<ImageJobRequest> {
  let body: Record<string, unknown>;
  let fields: Record<string, unknown>;
  if (request.isMultipart()) {
    body = await readMultipartEdit(request, formLimits).catch((error: unknown) => {
      // The rest of a body refused midway is not read; closing the connection after the reply
      // frees it at once instead of waiting for a client that may stream for ever.
      if (!request.raw.complete) reply.header("connection", "close");
      throw error;
    });
    const { image: _image, mask: _mask, ...rest } = body;
    fields = rest;
  } else {
    body = (request.body ?? {}) as Record<string, unknown>;
    fields = body;
  }
  const validate = request.compileValidationSchema(
    request.isMultipart() ? ImageEditFormFields : ImageGenerationBody,
    "body",
  );
  if (!validate(fields)) throw validationError(validate.errors ?? []);
  if (body.image === undefined) {
    throw invalidRequest(
      "Missing required parameter: 'image'.",
      "image",
      "missing_required_parameter",
    );
  }
  return { ...fields, image: body.image, mask: body.mask } as ImageJobRequest;
}

/** Multipart belongs to the edits endpoint; say so rather than "body must be object". */
async function refuseMultipart(request: FastifyRequest) {
  if (request.isMultipart()) {
    throw new HubError(
      "This endpoint takes JSON. Send multipart/form-data to /images/edits, or send the image " +
        "as a URL or base64 in JSON here.",
      { status: 415, type: "invalid_request_error", code: "unsupported_media_type" },
    );
  }
}
