/**
 * Fastify's own schema compilers (Ajv for requests, fast-json-stringify for replies), each
 * route's validator and serializer compiled on its first use instead of at start.
 *
 * The hub has some sixty routes under two prefixes, most of them used rarely (admin, AIGNE's,
 * the edits form), and compiling every schema at start held about 19 MB of generated code and
 * schema objects for the life of the process. Compiled on first use, an instance that serves
 * images only holds the image routes'. The same compilers with the same options do the work, so
 * what is accepted, refused and written is unchanged; the first request of a route pays its
 * compilation (a few milliseconds).
 *
 * A schema that does not compile (a bug of ours, never a client's doing) is still caught by
 * `test/http/lazy-schemas.test.ts`, which compiles every route's schemas eagerly.
 */
import ValidatorSelector from "@fastify/ajv-compiler";
import SerializerSelector from "@fastify/fast-json-stringify-compiler";
import type { FastifyServerOptions } from "fastify";

type CompilersFactory = NonNullable<
  NonNullable<FastifyServerOptions["schemaController"]>["compilersFactory"]
>;
type Validate = ((data: unknown, context?: unknown) => unknown) & {
  errors?: unknown;
  schemaEnv?: unknown;
};

/** When set (by tests), every schema is compiled when its route is registered, as Fastify does. */
let eager = false;
export function compileSchemasEagerly(on: boolean): void {
  eager = on;
}

type BuildValidator = ReturnType<typeof ValidatorSelector>;
type BuildSerializer = ReturnType<typeof SerializerSelector>;

export function lazySchemaCompilers(): CompilersFactory {
  const buildValidator = ValidatorSelector();
  const buildSerializer = SerializerSelector();
  const lazyValidator: BuildValidator = (externalSchemas, ajvOptions) => {
    const compile = buildValidator(externalSchemas, ajvOptions);
    return (route) => {
      if (eager) return compile(route);
      let compiled: Validate | undefined;
      const validate: Validate = (data, context) => {
        compiled ??= compile(route) as unknown as Validate;
        const result = compiled(data, context);
        validate.errors = compiled.errors;
        return result;
      };
      // Fastify passes the parent object (what lets Ajv replace a root value) only to
      // functions that look like Ajv's; this one hands it on.
      validate.schemaEnv = true;
      return validate as unknown as ReturnType<typeof compile>;
    };
  };
  const lazySerializer: BuildSerializer = (externalSchemas, serializerOptions) => {
    const compile = buildSerializer(externalSchemas, serializerOptions);
    return (route) => {
      if (eager) return compile(route);
      let compiled: ((data: unknown) => string) | undefined;
      return (data: unknown) => {
        compiled ??= compile(route);
        return compiled(data);
      };
    };
  };
  return { buildValidator: lazyValidator, buildSerializer: lazySerializer } as CompilersFactory;
}
