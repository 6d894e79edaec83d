/**
 * The admin API for API keys (an admin key required). Each route is one call of the key service
 * (src/auth/key-service.ts), which the CLI shares. A secret is in the reply of create and rotate
 * once and stored only as a hash.
 */
import type { FastifyInstance } from "fastify";
import { type Static, type TSchema, Type } from "typebox";
import { createKeyService } from "../auth/key-service.ts";
import type { Catalog } from "../images/catalog.ts";
import { adminErrorResponses, BODY_ERROR_STATUSES } from "../images/schema.ts";
import type { Database } from "../storage/db/types.ts";
import type { AuthHooks } from "./auth.ts";
import { refuseUnknownFields } from "./unknown-fields.ts";

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const Role = Type.Union([Type.Literal("client"), Type.Literal("admin")]);
const Models = Nullable(
  Type.Array(Type.String({ minLength: 1 }), {
    minItems: 1,
    maxItems: 100,
    description: "Model ids or aliases this key may use; null for every model.",
  }),
);
const Limit = (description: string) => Nullable(Type.Integer({ minimum: 1, description }));
const Rpm = Limit("Requests per minute; null for no limit.");
const Ipm = Limit("Images per minute; null for no limit.");
const Balance = Nullable(
  Type.Number({ minimum: 0, description: "Credit in USD; null for unlimited." }),
);
const Name = Type.String({ minLength: 1, maxLength: 100 });

const CreateKeyBody = Type.Object(
  {
    name: Name,
    role: Type.Optional(Role),
    balance: Type.Optional(Balance),
    models: Type.Optional(Models),
    rpm: Type.Optional(Rpm),
    ipm: Type.Optional(Ipm),
  },
  { additionalProperties: false },
);

const UpdateKeyBody = Type.Object(
  {
    name: Type.Optional(Name),
    balance: Type.Optional(Balance),
    models: Type.Optional(Models),
    rpm: Type.Optional(Rpm),
    ipm: Type.Optional(Ipm),
  },
  { additionalProperties: false },
);

const CreditBody = Type.Object(
  {
    amount: Type.Number({
      description: "USD to add to the balance; negative to take credit back (stops at zero).",
    }),
  },
  { additionalProperties: false },
);

const KeyParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

const KeyProperties = {
  id: Type.String(),
  object: Type.Literal("api_key"),
  name: Type.String(),
  role: Role,
  models: Nullable(Type.Array(Type.String())),
  rpm: Nullable(Type.Integer()),
  ipm: Nullable(Type.Integer()),
  balance: Nullable(Type.Number({ description: "Credit left in USD; null for unlimited." })),
  created_at: Type.Integer({ description: "Unix seconds" }),
  last_used_at: Nullable(Type.Integer({ description: "Unix seconds" })),
  revoked_at: Nullable(Type.Integer({ description: "Unix seconds" })),
};

const ApiKey = Type.Object(KeyProperties);
const ApiKeyWithSecret = Type.Object({
  ...KeyProperties,
  key: Type.String({ description: "The secret: shown once, store it now." }),
});
const ApiKeyList = Type.Object({ object: Type.Literal("list"), data: Type.Array(ApiKey) });

const NO_SUCH_KEY = { 404: "No API key with this id (`key_not_found`)." };
const listErrors = adminErrorResponses([]);
const bodyErrors = adminErrorResponses(BODY_ERROR_STATUSES);
/** 400 for an id too long to be one. */
const keyErrors = adminErrorResponses([400, 404], NO_SUCH_KEY);
const keyBodyErrors = adminErrorResponses([...BODY_ERROR_STATUSES, 404], NO_SUCH_KEY);

export function registerAdminRoutes(
  app: FastifyInstance,
  options: { db: Database; auth: AuthHooks; catalog?: Catalog },
): void {
  const keys = createKeyService(options.db, { catalog: options.catalog });
  const common = { onRequest: options.auth.requireAdmin };
  const schema = { tags: ["admin"], security: [{ bearerAuth: [] }] };

  app.post<{ Body: Static<typeof CreateKeyBody> }>(
    "/api/admin/keys",
    {
      ...common,
      preValidation: refuseUnknownFields(CreateKeyBody),
      schema: {
        ...schema,
        summary: "Create an API key",
        body: CreateKeyBody,
        response: { 201: ApiKeyWithSecret, ...bodyErrors },
      },
    },
    async (request, reply) => {
      const { name, role, balance, models, rpm, ipm } = request.body;
      const created = await keys.create({ name, role, balanceUsd: balance, models, rpm, ipm });
      request.log.info({ keyId: created.view.id, role: created.view.role }, "API key created");
      return reply.status(201).send({ ...created.view, key: created.key });
    },
  );

  app.get(
    "/api/admin/keys",
    {
      ...common,
      schema: { ...schema, summary: "List API keys", response: { 200: ApiKeyList, ...listErrors } },
    },
    async () => ({ object: "list", data: await keys.list() }),
  );

  app.get<{ Params: Static<typeof KeyParams> }>(
    "/api/admin/keys/:id",
    {
      ...common,
      schema: {
        ...schema,
        summary: "Show an API key and its remaining balance",
        params: KeyParams,
        response: { 200: ApiKey, ...keyErrors },
      },
    },
    async (request) => keys.show(request.params.id),
  );

  app.patch<{ Params: Static<typeof KeyParams>; Body: Static<typeof UpdateKeyBody> }>(
    "/api/admin/keys/:id",
    {
      ...common,
      preValidation: refuseUnknownFields(UpdateKeyBody),
      schema: {
        ...schema,
        summary: "Change an API key's name, models, limits or balance",
        params: KeyParams,
        body: UpdateKeyBody,
        response: { 200: ApiKey, ...keyBodyErrors },
      },
    },
    async (request) => {
      const { name, balance, models, rpm, ipm } = request.body;
      const view = await keys.update(request.params.id, {
        name,
        balanceUsd: balance,
        models,
        rpm,
        ipm,
      });
      request.log.info({ keyId: view.id }, "API key updated");
      return view;
    },
  );

  app.post<{ Params: Static<typeof KeyParams>; Body: Static<typeof CreditBody> }>(
    "/api/admin/keys/:id/credit",
    {
      ...common,
      preValidation: refuseUnknownFields(CreditBody),
      schema: {
        ...schema,
        summary: "Add credit to an API key (negative to take some back)",
        params: KeyParams,
        body: CreditBody,
        response: {
          200: ApiKey,
          ...adminErrorResponses([...BODY_ERROR_STATUSES, 404, 409], {
            ...NO_SUCH_KEY,
            409: "The key has no credit limit (`key_unlimited`): PATCH its balance to give it one.",
          }),
        },
      },
    },
    async (request) => {
      const view = await keys.credit(request.params.id, request.body.amount);
      request.log.info({ keyId: view.id, amount: request.body.amount }, "API key credited");
      return view;
    },
  );

  app.post<{ Params: Static<typeof KeyParams> }>(
    "/api/admin/keys/:id/rotate",
    {
      ...common,
      schema: {
        ...schema,
        summary: "Give an API key a new secret; the old one stops working at once",
        params: KeyParams,
        response: {
          200: ApiKeyWithSecret,
          ...adminErrorResponses([400, 404, 409], {
            ...NO_SUCH_KEY,
            409: "The key is revoked (`key_revoked`): create a new one instead.",
          }),
        },
      },
    },
    async (request) => {
      const rotated = await keys.rotate(request.params.id);
      request.log.info({ keyId: rotated.view.id }, "API key rotated");
      return { ...rotated.view, key: rotated.key };
    },
  );

  app.delete<{ Params: Static<typeof KeyParams> }>(
    "/api/admin/keys/:id",
    {
      ...common,
      schema: {
        ...schema,
        summary: "Revoke an API key",
        params: KeyParams,
        response: { 200: ApiKey, ...keyErrors },
      },
    },
    async (request) => {
      const view = await keys.revoke(request.params.id);
      request.log.info({ keyId: view.id }, "API key revoked");
      return view;
    },
  );
}
