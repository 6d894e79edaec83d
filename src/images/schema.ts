/**
 * The request and response schemas of the image endpoints: one TypeBox schema gives the
 * validation, the TypeScript type and the OpenAPI document. What depends on the model (which
 * sizes, which qualities, how long a prompt) is checked against the catalog in images/plan.
 */
import { type Static, type TSchema, Type } from "typebox";

/** Longest prompt any model takes; each model's own limit is in the catalog. */
export const MAX_PROMPT_LENGTH = 32000;
/** The most input images a request may carry, whatever the model. */
export const MAX_INPUT_IMAGES = 16;

const ImageSource = Type.String({
  minLength: 1,
  description: "An http(s) URL, a data: URL, or bare base64 of a PNG, JPEG or WebP image.",
});

const ImageInput = Type.Union(
  [ImageSource, Type.Array(ImageSource, { minItems: 1, maxItems: MAX_INPUT_IMAGES })],
  { description: "Source image(s) to edit: URL or base64, one or an array." },
);

const requestFields = {
  prompt: Type.String({
    minLength: 1,
    maxLength: MAX_PROMPT_LENGTH,
    description: "A text description of the desired image(s).",
  }),
  model: Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, description: "Model id; default dall-e-2." }),
  ),
  image: Type.Optional(ImageInput),
  mask: Type.Optional(ImageSource),
  n: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 10, description: "Number of images, 1 to 10." }),
  ),
  size: Type.Optional(
    Type.String({
      pattern: "^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$",
      description: "WxH, e.g. 1024x1024; the sizes a model takes are in GET /api/models.",
    }),
  ),
  response_format: Type.Optional(
    Type.Union([Type.Literal("url"), Type.Literal("b64_json")], {
      description: "url (hosted by the hub for one hour) or b64_json.",
    }),
  ),
  // Plain words, not a fixed list: what each model takes is catalog data an operator can change
  // (GET /api/models), and images/plan checks the value against the model with a 400 naming it.
  quality: Type.Optional(
    Type.String({
      pattern: "^[a-z0-9_-]{1,32}$",
      description:
        "standard or hd (dall-e-3); low, medium, high or auto (GPT image); each model's values are in GET /api/models.",
    }),
  ),
  style: Type.Optional(
    Type.String({
      pattern: "^[a-z0-9_-]{1,32}$",
      description: "vivid or natural (dall-e-3); each model's values are in GET /api/models.",
    }),
  ),
  background: Type.Optional(
    Type.Union([Type.Literal("transparent"), Type.Literal("opaque"), Type.Literal("auto")]),
  ),
  output_format: Type.Optional(
    Type.Union([Type.Literal("png"), Type.Literal("jpeg"), Type.Literal("webp")]),
  ),
  output_compression: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  moderation: Type.Optional(Type.Union([Type.Literal("low"), Type.Literal("auto")])),
  user: Type.Optional(Type.String({ maxLength: 256 })),
  extra: Type.Optional(
    Type.Object(
      {},
      {
        additionalProperties: true,
        maxProperties: 30,
        description:
          "Vendor options beyond OpenAI's, by the vendor's names (negative_prompt, seed, steps, …): only those the model declares (`extra_options` in GET /api/models); others are refused.",
      },
    ),
  ),
  stream: Type.Optional(Type.Boolean({ description: "Streaming is not supported: false only." })),
};

/**
 * A field the hub does not know is refused by name, as OpenAI does, rather than ignored: it may
 * be an option the client counts on. By `propertyNames`, since `additionalProperties: false`
 * would have Fastify's ajv strip such fields silently (its removeAdditional default).
 */
function closedObject<Fields extends Record<string, TSchema>>(fields: Fields) {
  return Type.Object(fields, {
    additionalProperties: true,
    propertyNames: { enum: Object.keys(fields) },
  });
}

export const ImageGenerationBody = closedObject(requestFields);

/** The text fields of a multipart edit: the same, less the files (`image`, `mask`). */
const { image: _image, mask: _mask, ...formFields } = requestFields;
export const ImageEditFormFields = closedObject(formFields);

/**
 * An image sent as a file part of a multipart form. http/multipart.ts also reads a text part
 * holding a URL or base64 in its place; the document shows the file, as OpenAI's does.
 */
const ImageFile = Type.String({ format: "binary" });
const ImageFiles = (description: string) =>
  Type.Array(ImageFile, { minItems: 1, maxItems: MAX_INPUT_IMAGES, description });

/**
 * For the document only: the multipart form of an edit (http/multipart.ts reads it, and checks
 * its text fields against ImageEditFormFields). Each image is a part of its own; the two names
 * are OpenAI's.
 */
export const ImageEditForm = Type.Object(
  {
    image: Type.Optional(
      ImageFiles(
        "The image(s) to edit, PNG, JPEG or WebP, a part each; a text part with a URL or base64 also does. This or 'image[]' is required.",
      ),
    ),
    "image[]": Type.Optional(ImageFiles("The same as 'image', under the name some clients send.")),
    mask: Type.Optional(
      Type.String({
        format: "binary",
        description:
          "Where to edit, transparent where the image may change; a URL or base64 as text also does.",
      }),
    ),
    ...formFields,
  },
  { description: "A field the hub does not know is refused by name (400)." },
);

/** For the document only: an edit sent as JSON, the generation body with `image` required. */
export const ImageEditBody = closedObject({ ...requestFields, image: ImageInput });

export type ImageGenerationRequest = Static<typeof ImageGenerationBody>;

export const ImageData = Type.Object({
  url: Type.Optional(Type.String({ description: "Hosted by the hub; valid for one hour." })),
  b64_json: Type.Optional(Type.String()),
  revised_prompt: Type.Optional(Type.String()),
});

export const ImageResponse = Type.Object({
  created: Type.Integer({ description: "Unix seconds when the generation started." }),
  data: Type.Array(ImageData),
  background: Type.Optional(Type.String()),
  output_format: Type.Optional(Type.String()),
  quality: Type.Optional(Type.String()),
  size: Type.Optional(Type.String()),
  usage: Type.Optional(
    Type.Object({
      input_tokens: Type.Integer(),
      output_tokens: Type.Integer(),
      total_tokens: Type.Integer(),
    }),
  ),
});

export const ErrorResponse = Type.Object({
  error: Type.Object({
    message: Type.String(),
    type: Type.String(),
    param: Type.Union([Type.String(), Type.Null()]),
    code: Type.Union([Type.String(), Type.Null()]),
  }),
});

/**
 * What each error status means on this hub, in general words; a route may say what its own
 * means more exactly. One table, so the document words a status alike on every route.
 */
const ERROR_MEANINGS = {
  400: "The request is not valid; `param` names the parameter at fault.",
  401: "No API key, or one this hub does not know.",
  402: "The key's credit cannot cover the most this request may cost.",
  403: "The key may not do this.",
  404: "Not found.",
  409: "The request conflicts with the current state.",
  410: "Gone.",
  413: "The body, a file or a field is larger than this hub accepts.",
  415: "The body's Content-Type is not one this endpoint takes.",
  429: "Too many wrong API keys from this address lately: wait as Retry-After says.",
  431: "The request headers are larger than this hub accepts.",
  500: "A fault of the hub; its message says no more.",
  502: "The provider failed, or answered something the hub cannot use.",
  503: "The provider is unavailable, or the hub is shutting down.",
  504: "The provider did not answer in time.",
} as const;

export type ErrorStatus = keyof typeof ERROR_MEANINGS;

/** Sent with a 429, and with a 503 when the provider said how long to wait. */
const RetryAfterHeader = {
  "Retry-After": Type.Integer({ minimum: 1, description: "Seconds to wait before trying again." }),
};

/**
 * The error responses of a route: ErrorResponse under each status, described by `meanings` or
 * else by the general words. Safe as serializing schemas too: every error leaves in this shape.
 *
 * @example
 * response: { 200: ApiKey, ...errorResponses([401, 403, 404], { 404: "No key with this id." }) }
 */
export function errorResponses(
  statuses: readonly ErrorStatus[],
  meanings: Partial<Record<ErrorStatus, string>> = {},
): Partial<Record<ErrorStatus, TSchema>> {
  const responses: Partial<Record<ErrorStatus, TSchema>> = {};
  for (const status of statuses) {
    responses[status] = {
      ...ErrorResponse,
      description: meanings[status] ?? ERROR_MEANINGS[status],
      ...(status === 429 || status === 503 ? { headers: RetryAfterHeader } : {}),
    };
  }
  return responses;
}

/**
 * The error responses of an admin route: those of `requireAdmin` (http/auth.ts) and the error
 * handler on every one (401, 403 for a client key, 429, 500), and the route's own `statuses`.
 */
export function adminErrorResponses(
  statuses: readonly ErrorStatus[],
  meanings: Partial<Record<ErrorStatus, string>> = {},
): Partial<Record<ErrorStatus, TSchema>> {
  return errorResponses([401, 403, 429, 500, ...statuses], {
    403: "Not an admin key: this endpoint needs one.",
    ...meanings,
  });
}

/** What a route with a JSON body answers for it: 400 not valid, 413 too large, 415 not JSON. */
export const BODY_ERROR_STATUSES = [400, 413, 415] as const satisfies readonly ErrorStatus[];
