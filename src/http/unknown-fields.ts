/**
 * The hub's ajv drops properties a schema does not name. On the admin API a typo would then go
 * unnoticed where it matters most (`"balace": 10` makes an unlimited key, a fallback's
 * `"credential_id"` quietly means the provider's pool), so unknown fields are refused instead,
 * as OpenAI refuses them, named by their path: `balace`, `fallbacks[0].credential_id`.
 *
 * (The image endpoints refuse theirs in the schema itself, by `propertyNames`; see
 * images/schema.ts.)
 */
import type { FastifyRequest } from "fastify";
import type { TSchema } from "typebox";
import { invalidRequest } from "../errors.ts";

/** What is read of a JSON schema (a TypeBox one is such an object). */
interface SchemaShape {
  type?: unknown;
  items?: SchemaShape;
  properties?: Record<string, SchemaShape>;
}

/** A `preValidation` hook refusing the first field `schema` does not name, at any depth. */
export function refuseUnknownFields(schema: TSchema) {
  return async (request: FastifyRequest): Promise<void> => {
    const unknown = unknownFieldIn(request.body, schema as SchemaShape, "");
    if (unknown !== undefined) {
      throw invalidRequest(
        `Unrecognized request argument supplied: ${unknown}.`,
        unknown,
        "unknown_parameter",
      );
    }
  };
}

/** The path of the first unknown field: an object's own fields first, then what they hold. */
function unknownFieldIn(value: unknown, schema: SchemaShape, path: string): string | undefined {
  if (Array.isArray(value)) {
    const items = schema.items;
    if (schema.type !== "array" || items === undefined) return undefined;
    for (const [index, item] of value.entries()) {
      const found = unknownFieldIn(item, items, `${path}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  const properties = schema.properties;
  if (value === null || typeof value !== "object" || properties === undefined) return undefined;
  const fieldPath = (name: string) => (path ? `${path}.${name}` : name);
  const fields = Object.entries(value);
  const unknown = fields.find(([name]) => !Object.hasOwn(properties, name));
  if (unknown !== undefined) return fieldPath(unknown[0]);
  for (const [name, field] of fields) {
    const found = unknownFieldIn(field, properties[name] as SchemaShape, fieldPath(name));
    if (found !== undefined) return found;
  }
  return undefined;
}
