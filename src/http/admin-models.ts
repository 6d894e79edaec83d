/**
 * The admin API of the model catalog (images/model-admin.ts does the work): list, define, change
 * and delete models at run time, stored in the database so every instance serves the change.
 *
 * - `GET /api/admin/models`: `{"object":"list","data":[…]}`, every model with its fields, its
 *   lifecycle, its price and what its provider says of it.
 * - `POST /api/admin/models`: 201 with the model; 409 `model_exists` for an id in use.
 * - `GET|PATCH|DELETE /api/admin/models/{id}`: PATCH merges the fields it names; DELETE hides a
 *   built-in model (a later POST defines it anew) and removes an added one.
 *
 * Ids may hold a slash (`local/placeholder`), so the id is the rest of the path.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { ModelAdmin } from "../images/model-admin.ts";
import { ModelFields, type ModelFieldValues } from "../images/model-definition.ts";
import { adminErrorResponses, BODY_ERROR_STATUSES } from "../images/schema.ts";
import type { AuthHooks } from "./auth.ts";
import { refuseUnknownFields } from "./unknown-fields.ts";

const ModelParams = Type.Object({
  "*": Type.String({
    description: "A model id, alias or provider/id (the slash may be sent as is).",
  }),
});

const ModelView = Type.Object(
  {
    ...ModelFields.properties,
    object: Type.Literal("catalog_model"),
    status: Type.Union(
      [Type.Literal("active"), Type.Literal("deprecated"), Type.Literal("retired")],
      {
        description:
          "active; deprecated: a shutdown date ahead; retired: served by its successor (or 410).",
      },
    ),
    declared_status: Type.Union([Type.String(), Type.Null()]),
    origin: Type.String({ description: "built-in, admin, or built-in, changed" }),
    configured: Type.Boolean({ description: "Whether its provider has credentials on this hub." }),
    upstream: Type.Object({
      listed: Type.Union([Type.Boolean(), Type.Null()], {
        description: "Whether the provider's model list has it; null until a list was read.",
      }),
      shutdown_date: Type.Union([Type.String(), Type.Null()]),
      checked_at: Type.Union([Type.Integer(), Type.Null()], { description: "Unix seconds" }),
    }),
    pricing: Type.Unknown(),
    warnings: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);

const NO_SUCH_MODEL = { 404: "No model of this name in the catalog (`model_not_found`)." };
const common = { tags: ["admin"], security: [{ bearerAuth: [] }] };

export function registerAdminModelRoutes(
  app: FastifyInstance,
  options: { admin: ModelAdmin; auth: AuthHooks },
): void {
  const { admin, auth } = options;

  app.get(
    "/api/admin/models",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "List every model of the catalog, retired ones included",
        response: {
          200: Type.Object({ object: Type.Literal("list"), data: Type.Array(ModelView) }),
          ...adminErrorResponses([]),
        },
      },
    },
    async () => admin.list(),
  );

  app.post<{ Body: ModelFieldValues }>(
    "/api/admin/models",
    {
      onRequest: auth.requireAdmin,
      preValidation: refuseUnknownFields(ModelFields),
      schema: {
        ...common,
        summary: "Define a model: its own capabilities, or `like` another's",
        body: ModelFields,
        response: {
          201: ModelView,
          ...adminErrorResponses([...BODY_ERROR_STATUSES, 409], {
            409: "A model with this id exists (`model_exists`); PATCH changes it.",
          }),
        },
      },
    },
    async (request, reply) => {
      const model = await admin.create(request.body);
      request.log.info({ model: model.id, provider: model.provider }, "catalog model defined");
      return reply.code(201).send(model);
    },
  );

  app.get<{ Params: { "*": string } }>(
    "/api/admin/models/*",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "Show one model",
        params: ModelParams,
        response: { 200: ModelView, ...adminErrorResponses([404], NO_SUCH_MODEL) },
      },
    },
    async (request) => admin.get(request.params["*"]),
  );

  app.patch<{ Params: { "*": string }; Body: ModelFieldValues }>(
    "/api/admin/models/*",
    {
      onRequest: auth.requireAdmin,
      preValidation: refuseUnknownFields(ModelFields),
      schema: {
        ...common,
        summary: "Change a model: the fields named are merged over what it has",
        params: ModelParams,
        body: ModelFields,
        response: {
          200: ModelView,
          ...adminErrorResponses([...BODY_ERROR_STATUSES, 404], NO_SUCH_MODEL),
        },
      },
    },
    async (request) => {
      const model = await admin.update(request.params["*"], request.body);
      request.log.info(
        { model: model.id, fields: Object.keys(request.body) },
        "catalog model changed",
      );
      return model;
    },
  );

  app.delete<{ Params: { "*": string } }>(
    "/api/admin/models/*",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "Delete a model (a built-in one is hidden until defined anew)",
        params: ModelParams,
        response: {
          200: Type.Object({
            id: Type.String(),
            object: Type.Literal("catalog_model"),
            deleted: Type.Boolean(),
          }),
          ...adminErrorResponses([404, 409], {
            ...NO_SUCH_MODEL,
            409: "The model is another's successor (`model_in_use`): point that one elsewhere first.",
          }),
        },
      },
    },
    async (request) => {
      const result = await admin.remove(request.params["*"]);
      request.log.info({ model: result.id }, "catalog model deleted");
      return result;
    },
  );
}
