/**
 * Vendor options beyond OpenAI's (`negative_prompt`, `seed`, `steps`, `aspect_ratio`, …): a
 * request carries them in `extra`, by the vendor's own names, and each model declares in the
 * catalog (`extra_options`) which it takes, with their type and range. What a model declares
 * passes to its provider as sent; anything else is refused by name, since a client that asks
 * for a seed counts on it. Pure: no I/O.
 */
import { type Static, Type } from "typebox";
import { invalidRequest } from "../errors.ts";

export const ExtraOption = Type.Object(
  {
    type: Type.Union([
      Type.Literal("integer"),
      Type.Literal("number"),
      Type.Literal("string"),
      Type.Literal("boolean"),
    ]),
    minimum: Type.Optional(Type.Number()),
    maximum: Type.Optional(Type.Number()),
    enum: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { minItems: 1, maxItems: 50 })),
    max_length: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    description: Type.Optional(Type.String({ maxLength: 300 })),
  },
  { additionalProperties: false },
);
export type ExtraOption = Static<typeof ExtraOption>;

/** A model's declared options by name (at most 30: `[a-z][a-z0-9_]*`). */
export const ExtraOptions = Type.Record(
  Type.String({ pattern: "^[a-z][a-z0-9_]{0,39}$" }),
  ExtraOption,
  {
    maxProperties: 30,
    description:
      "Vendor options the model takes in a request's `extra` (negative_prompt, seed, steps, …), with their type and range.",
  },
);

/**
 * `extra` checked against what `model` declares; undefined when the request has none.
 *
 * @throws HubError 400 `unsupported_extra` for an option the model does not take, or
 *   `invalid_value` for a value outside its declaration, `param` naming it (`extra.seed`).
 */
export function checkExtra(
  model: { id: string; extraOptions: Readonly<Record<string, ExtraOption>> },
  extra: Readonly<Record<string, unknown>> | undefined,
): Readonly<Record<string, unknown>> | undefined {
  if (extra === undefined || Object.keys(extra).length === 0) return undefined;
  for (const [name, value] of Object.entries(extra)) {
    const option = model.extraOptions[name];
    const param = `extra.${name}`;
    if (!option) {
      const known = Object.keys(model.extraOptions);
      throw invalidRequest(
        `${model.id} does not take '${name}' in extra; ${known.length > 0 ? `it takes ${known.join(", ")}` : "it takes no extra options"}.`,
        param,
        "unsupported_extra",
      );
    }
    const problem = problemOf(option, value);
    if (problem) throw invalidRequest(`Invalid '${param}': ${problem}.`, param, "invalid_value");
  }
  return extra;
}

function problemOf(option: ExtraOption, value: unknown): string | undefined {
  switch (option.type) {
    case "boolean":
      return typeof value === "boolean" ? undefined : "must be true or false";
    case "string":
      if (typeof value !== "string") return "must be a string";
      if (option.enum && !option.enum.includes(value)) {
        return `must be one of ${option.enum.join(", ")}`;
      }
      if (option.max_length !== undefined && value.length > option.max_length) {
        return `must be at most ${option.max_length} characters`;
      }
      return undefined;
    default: {
      if (typeof value !== "number" || !Number.isFinite(value)) return "must be a number";
      if (option.type === "integer" && !Number.isInteger(value)) return "must be a whole number";
      if (option.minimum !== undefined && value < option.minimum) {
        return `must be at least ${option.minimum}`;
      }
      if (option.maximum !== undefined && value > option.maximum) {
        return `must be at most ${option.maximum}`;
      }
      return undefined;
    }
  }
}
