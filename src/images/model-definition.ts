/**
 * A model as data: the JSON shape of one catalog row, the same in the built-in data file
 * (models.json) and in the admin API (/api/admin/models), and its conversion to the `ModelSpec`
 * every other part reads. One shape and one set of checks, so a model an operator adds is held
 * to the rules of the ones shipped. Field names are the API's (snake_case).
 */

import { Ajv, type ValidateFunction } from "ajv";
import { type Static, type TSchema, Type } from "typebox";
import { ExtraOptions } from "./extra-options.ts";
import { MAX_PROMPT_LENGTH } from "./schema.ts";

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** Lower case, as clients send it; `/` for namespaced ids such as `local/placeholder`. */
export const MODEL_ID_PATTERN = "^[a-z0-9][a-z0-9._/-]*$";
const DATE_PATTERN = "^\\d{4}-\\d{2}-\\d{2}$";

const ModelName = Type.String({ minLength: 1, maxLength: 100, pattern: MODEL_ID_PATTERN });

/** A ratio as a number (width / height) or as `W:H`, e.g. `1:3`. */
const Ratio = Type.Union([
  Type.Number({ exclusiveMinimum: 0, maximum: 100 }),
  Type.String({ pattern: "^\\d{1,3}:\\d{1,3}$" }),
]);

export const SizeRuleFields = Type.Object(
  {
    multiple_of: Type.Integer({
      minimum: 1,
      maximum: 1024,
      description: "Both sides multiples of this.",
    }),
    max_side: Type.Integer({ minimum: 1, maximum: 16384, description: "Longest side, pixels." }),
    min_pixels: Type.Optional(Type.Integer({ minimum: 1 })),
    max_pixels: Type.Optional(Type.Integer({ minimum: 1 })),
    min_ratio: Type.Optional(Ratio),
    max_ratio: Type.Optional(Ratio),
    auto: Type.Optional(Type.Boolean({ description: "Whether size `auto` is taken." })),
  },
  { additionalProperties: false },
);

const SizeList = Type.Array(
  Type.String({ pattern: "^(\\d{1,5}x\\d{1,5}|auto)$", description: "`WxH`, or `auto`." }),
  { minItems: 1, maxItems: 200 },
);

const Edits = Type.Union([
  Type.Literal(false),
  Type.Object(
    {
      max_images: Type.Integer({ minimum: 1, maximum: 16 }),
      mask: Type.Boolean(),
    },
    { additionalProperties: false },
  ),
]);

const Money = Type.Number({ minimum: 0, maximum: 1000 });

export const PriceFields = Type.Union([
  Type.Number({
    minimum: 0,
    maximum: 1000,
    description: "USD per image, at any size and quality.",
  }),
  Type.Object(
    {
      per_image: Type.Optional(
        Type.Array(
          Type.Object(
            {
              size: Type.String({
                minLength: 1,
                maxLength: 20,
                description: "`WxH`, `auto`, `*` (any), or a pixel tier such as `<=1024x1024`.",
              }),
              quality: Type.String({
                minLength: 1,
                maxLength: 20,
                description: "A quality or `*`.",
              }),
              usd: Money,
            },
            { additionalProperties: false },
          ),
          { minItems: 1, maxItems: 500 },
        ),
      ),
      per_million_tokens: Type.Optional(
        Type.Object(
          { text_input: Money, image_input: Money, output: Money },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false },
  ),
]);

const Word = Type.String({ minLength: 1, maxLength: 32, pattern: "^[a-z0-9_-]+$" });
const Words = Type.Array(Word, { maxItems: 20 });

/** Every field a model may have. All optional here; `specFromDefinition` says which it needs. */
export const ModelFields = Type.Object(
  {
    id: Type.Optional(ModelName),
    like: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description: "An existing model whose capabilities (and price) the new one copies.",
      }),
    ),
    provider: Type.Optional(
      Type.String({
        pattern: "^[a-z][a-z0-9-]{0,39}$",
        description:
          "The provider instance that serves it: `openai`, `google`, `local`, `xai`, `azure`, `openrouter`, `stability`, `a1111`, or an OpenAI-compatible instance's id.",
      }),
    ),
    upstream_model: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    kind: Type.Optional(Type.Union([Type.Literal("ai"), Type.Literal("placeholder")])),
    sizes: Type.Optional(Type.Union([SizeList, SizeRuleFields])),
    default_size: Type.Optional(Type.String({ pattern: "^(\\d{1,5}x\\d{1,5}|auto)$" })),
    max_per_call: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
    qualities: Type.Optional(Words),
    default_quality: Type.Optional(Nullable(Word)),
    styles: Type.Optional(Words),
    default_style: Type.Optional(Nullable(Word)),
    prompt_max: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_PROMPT_LENGTH, description: "Characters." }),
    ),
    edits: Type.Optional(Edits),
    output_formats: Type.Optional(
      Type.Array(Type.Union([Type.Literal("png"), Type.Literal("jpeg"), Type.Literal("webp")]), {
        minItems: 1,
        maxItems: 3,
      }),
    ),
    compression: Type.Optional(Type.Boolean()),
    background: Type.Optional(Type.Boolean()),
    moderation: Type.Optional(Type.Boolean()),
    extra_options: Type.Optional(ExtraOptions),
    request_template: Type.Optional(
      Nullable(
        Type.Object(
          {},
          {
            additionalProperties: true,
            description:
              "A document the provider fills in per request: a ComfyUI workflow (API format) with placeholders such as {{prompt}}, {{width}}, {{height}}, {{seed}}, {{count}}.",
          },
        ),
      ),
    ),
    resize_to_fit: Type.Optional(
      Type.Boolean({
        description:
          "A size the model cannot make is made at its nearest size and resized by the hub to the size asked (default false: 400).",
      }),
    ),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1000, maximum: 3_600_000 })),
    price: Type.Optional(PriceFields),
    aliases: Type.Optional(Type.Array(ModelName, { maxItems: 20 })),
    status: Type.Optional(
      Nullable(
        Type.Union([Type.Literal("active"), Type.Literal("deprecated"), Type.Literal("retired")], {
          description:
            "Declared status: `retired` serves it through its successor now; `active` calls it as itself whatever dates or the provider's list say; null learns it.",
        }),
      ),
    ),
    shutdown_date: Type.Optional(Nullable(Type.String({ pattern: DATE_PATTERN }))),
    successor: Type.Optional(Nullable(ModelName)),
    use_successor: Type.Optional(
      Type.Boolean({
        description:
          "Whether requests for it, once retired, are served by its successor (default true); false answers 410 model_retired.",
      }),
    ),
    source: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
    checked: Type.Optional(Nullable(Type.String({ pattern: DATE_PATTERN }))),
  },
  { additionalProperties: false },
);

export type ModelFieldValues = Static<typeof ModelFields>;
export type PriceValue = Static<typeof PriceFields>;

// ajv, as Fastify validates the admin API with it: the same schema, and far lighter to load
// than typebox/value (which would add 0.4 s to every start and every CLI call). Compiled on
// first use: only stored rows need it, and most hubs have none.
let validateFields: ValidateFunction | undefined;

/**
 * Why `value` is not a model's fields (the first problem, as `path message`), or undefined when
 * it is: for rows the admin API did not check as they arrived (stored rows, the data file's
 * test).
 */
export function problemWithFields(value: unknown): string | undefined {
  validateFields ??= new Ajv({ allErrors: false, strict: false }).compile(ModelFields);
  if (validateFields(value)) return undefined;
  const error = validateFields.errors?.[0];
  return error ? `${error.instancePath || "/"} ${error.message ?? "is invalid"}` : "is invalid";
}
