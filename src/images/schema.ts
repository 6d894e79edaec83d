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

const requestFields = {
  prompt: Type.String({
    minLength: 1,
    maxLength: MAX_PROMPT_LENGTH,
    description: "A text description of the desired image(s).",
  }),
  model: Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, description: "Model id; default dall-e-2." }),
  ),
  image: Type.Optional(
    Type.Union(
      [ImageSource, Type.Array(ImageSource, { minItems: 1, maxItems: MAX_INPUT_IMAGES })],
      {
        description: "Source image(s) to edit: URL or base64, one or an array.",
      },
    ),
  ),
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
