/**
 * The admin API of provider credentials: add, list, change and remove the upstream API keys the
 * hub calls OpenAI and Google with. A key is stored encrypted (credentials/vault.ts) and never
 * leaves in full: every reply shows it masked. After each change the registry reloads, so the
 * next image request already uses (or no longer uses) the credential.
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type {
  CredentialProvider,
  CredentialView,
  ProviderRegistry,
} from "../credentials/registry.ts";
import { maskSecret, masterKeyRequired, type Vault } from "../credentials/vault.ts";
import { HubError, invalidRequest } from "../errors.ts";
import { adminErrorResponses, BODY_ERROR_STATUSES } from "../images/schema.ts";
import { PROVIDER_KINDS } from "../providers/kinds.ts";
import { OPENAI_COMPATIBLE_PRESETS, presetQuirks } from "../providers/openai-compatible.ts";
import type { Database, ProviderCredentialRecord } from "../storage/db/types.ts";
import type { AuthHooks } from "./auth.ts";

const MAX_WEIGHT = 1000;

const CreateCredentialBody = Type.Object({
  provider: Type.String({
    pattern: "^[a-z][a-z0-9-]{0,39}$",
    description:
      "The provider id: an instance the environment configures (`openai`, `google`, `xai`, an OpenAI-compatible one), or a provider kind (`xai`, `openrouter`, `stability`, `azure` and `a1111` with a base_url).",
  }),
  name: Type.String({ minLength: 1, maxLength: 100 }),
  api_key: Type.String({ minLength: 1, maxLength: 1000 }),
  base_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_WEIGHT })),
  kind: Type.Optional(
    Type.Union(
      PROVIDER_KINDS.filter((kind) => kind !== "local").map((kind) => Type.Literal(kind)),
      {
        description:
          "For a provider id the environment does not configure: the kind of API it speaks (an `openai-compatible` server of your own, say). Needs `base_url`.",
      },
    ),
  ),
  options: Type.Optional(
    Type.Object(
      {
        api_version: Type.Optional(
          Type.String({ maxLength: 40, description: "Azure's api-version." }),
        ),
        preset: Type.Optional(
          Type.String({ maxLength: 40, description: "OpenAI-compatible: a preset of quirks." }),
        ),
      },
      { additionalProperties: false },
    ),
  ),
});

const UpdateCredentialBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_WEIGHT })),
    disabled: Type.Optional(Type.Boolean()),
  },
  { minProperties: 1 },
);

const CredentialParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

const Credential = Type.Object({
  id: Type.String(),
  object: Type.Literal("provider_credential"),
  provider: Type.String(),
  name: Type.String(),
  key: Type.String({ description: "Masked: a known prefix and at most the last 4 characters." }),
  base_url: Type.Union([Type.String(), Type.Null()]),
  weight: Type.Integer({ description: "Share of calls, relative to the provider's others." }),
  created_at: Type.Union([Type.Integer({ description: "Unix seconds" }), Type.Null()]),
  disabled: Type.Boolean(),
  source: Type.Union([Type.Literal("environment"), Type.Literal("database")]),
  status: Type.Union([
    Type.Literal("active"),
    Type.Literal("cooling_down"),
    Type.Literal("auth_failed"),
    Type.Literal("disabled"),
    Type.Literal("undecryptable"),
  ]),
  status_detail: Type.Union([Type.String(), Type.Null()], {
    description: "Why: the upstream rate limited (cooling_down) or refused (auth_failed) it.",
  }),
  last_error: Type.Union([Type.String(), Type.Null()], {
    description: "The upstream's words of its last refusal (auth_failed), keys cut out.",
  }),
  status_since: Type.Union([Type.Integer({ description: "Unix seconds" }), Type.Null()]),
  status_until: Type.Union([
    Type.Integer({
      description:
        "Unix seconds: when a cool-down ends, or when a refused (auth_failed) credential is tried again",
    }),
    Type.Null(),
  ]),
});

const CredentialList = Type.Object({
  object: Type.Literal("list"),
  data: Type.Array(Credential),
});

const CredentialDeleted = Type.Object({
  id: Type.String(),
  object: Type.Literal("provider_credential"),
  deleted: Type.Boolean(),
});

interface CreateBody {
  provider: CredentialProvider;
  name: string;
  api_key: string;
  base_url?: string;
  weight?: number;
  kind?: string;
  options?: { api_version?: string; preset?: string };
}

interface UpdateBody {
  name?: string;
  weight?: number;
  disabled?: boolean;
}

export interface CredentialRoutesOptions {
  db: Database;
  vault: Vault;
  registry: ProviderRegistry;
  auth: AuthHooks;
  clock?: () => number;
}

const NO_SUCH_CREDENTIAL = { 404: "No provider credential with this id (`credential_not_found`)." };
const ENVIRONMENT = "the credential comes from the environment (`environment_credential`)";
const common = { tags: ["admin"], security: [{ bearerAuth: [] }] };

export function registerCredentialRoutes(
  app: FastifyInstance,
  options: CredentialRoutesOptions,
): void {
  const { db, vault, registry, auth } = options;
  const clock = options.clock ?? Date.now;

  app.post<{ Body: CreateBody }>(
    "/api/admin/credentials",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "Add a provider credential (stored encrypted; needs MASTER_KEY)",
        body: CreateCredentialBody,
        response: {
          201: Credential,
          ...adminErrorResponses(BODY_ERROR_STATUSES, {
            400: "A field is not valid (`param` names it), or the hub has no MASTER_KEY to encrypt keys with (`master_key_required`).",
          }),
        },
      },
    },
    async (request, reply) => {
      const refusal = registry.refusesCredential(
        request.body.provider,
        request.body.base_url !== undefined,
        request.body.kind,
      );
      if (refusal)
        throw invalidRequest(`Invalid 'provider': ${refusal}.`, "provider", "unknown_provider");
      const preset = request.body.options?.preset;
      if (preset !== undefined && !presetQuirks(preset)) {
        throw invalidRequest(
          `Invalid 'options.preset': no preset '${preset}'; one of ${Object.keys(OPENAI_COMPATIBLE_PRESETS).join(", ")}.`,
          "options.preset",
        );
      }
      const record = await storeCredential(db, vault, request.body, clock());
      await registry.reload();
      request.log.info(
        { credentialId: record.id, provider: record.provider },
        "provider credential added",
      );
      return reply.status(201).send(present(viewOf(registry, record.id)));
    },
  );

  app.get(
    "/api/admin/credentials",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "List provider credentials, the environment's included (keys masked)",
        response: { 200: CredentialList, ...adminErrorResponses([]) },
      },
    },
    async () => {
      await registry.syncHealth();
      return { object: "list" as const, data: registry.list().map(present) };
    },
  );

  app.patch<{ Params: { id: string }; Body: UpdateBody }>(
    "/api/admin/credentials/:id",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "Rename, reweight, disable or enable a stored provider credential",
        params: CredentialParams,
        body: UpdateCredentialBody,
        response: {
          200: Credential,
          ...adminErrorResponses([...BODY_ERROR_STATUSES, 404], {
            ...NO_SUCH_CREDENTIAL,
            400: `A field is not valid (\`param\` names it), or ${ENVIRONMENT}: only enabling it again is allowed.`,
          }),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { name, weight, disabled } = request.body;
      if (
        id.startsWith("env:") &&
        disabled === false &&
        name === undefined &&
        weight === undefined
      ) {
        // An environment key the upstream refused (401) comes back only this way, or by restart.
        registry.resetHealth(id);
        request.log.info({ credentialId: id }, "credential enabled again");
        return present(viewOf(registry, id));
      }
      refuseEnvironment(id);
      const changes: Parameters<Database["updateCredential"]>[1] = {};
      if (name !== undefined) changes.name = name;
      if (weight !== undefined) changes.weight = weight;
      if (disabled !== undefined) changes.disabledAt = disabled ? clock() : null;
      const updated = await db.updateCredential(id, changes);
      if (!updated) throw credentialNotFound(id);
      // Enabling again is the admin's word that the key works now (replaced upstream, say).
      if (disabled === false) registry.resetHealth(id);
      await registry.reload();
      request.log.info({ credentialId: id, changed: Object.keys(changes) }, "credential changed");
      return present(viewOf(registry, id));
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/api/admin/credentials/:id",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "Remove a stored provider credential",
        params: CredentialParams,
        response: {
          200: CredentialDeleted,
          ...adminErrorResponses([400, 404], {
            ...NO_SUCH_CREDENTIAL,
            400: `The id is not valid, or ${ENVIRONMENT}: change it there.`,
          }),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      refuseEnvironment(id);
      if (!(await db.deleteCredential(id))) throw credentialNotFound(id);
      await registry.reload();
      request.log.info({ credentialId: id }, "provider credential removed");
      return { id, object: "provider_credential" as const, deleted: true };
    },
  );
}

/** Validates, encrypts and stores a new credential; the secret goes no further than the vault. */
async function storeCredential(
  db: Database,
  vault: Vault,
  body: CreateBody,
  now: number,
): Promise<ProviderCredentialRecord> {
  if (!vault.canStore) throw masterKeyRequired();
  const apiKey = body.api_key.trim();
  if (apiKey.length === 0 || /\s/.test(apiKey)) {
    throw invalidRequest("Invalid 'api_key': must be the key alone, without spaces.", "api_key");
  }
  const baseUrl = baseUrlOf(body.base_url);
  const id = `cred_${randomBytes(8).toString("hex")}`;
  const record: ProviderCredentialRecord = {
    id,
    provider: body.provider,
    name: body.name.trim() || body.provider,
    encryptedKey: vault.encrypt(apiKey, id),
    keyHint: maskSecret(apiKey),
    baseUrl,
    weight: body.weight ?? 1,
    createdAt: now,
    disabledAt: null,
    kind: body.kind ?? null,
    options: body.options && Object.keys(body.options).length > 0 ? { ...body.options } : null,
  };
  await db.createCredential(record);
  return record;
}

/**
 * An http(s) base URL without credentials, query or fragment: it is stored and shown in clear,
 * so it must not carry a secret, and the provider appends paths to it.
 */
function baseUrlOf(value: string | undefined): string | null {
  if (value === undefined) return null;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw invalidBaseUrl("must be an http(s) URL such as https://api.openai.com/v1");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw invalidBaseUrl("must be an http(s) URL such as https://api.openai.com/v1");
  }
  if (url.username || url.password) {
    throw invalidBaseUrl("must not carry a user or password; send the key as 'api_key'");
  }
  if (url.search || url.hash) throw invalidBaseUrl("must not have a query or a fragment");
  return url.href.replace(/\/+$/, "");
}

function invalidBaseUrl(detail: string): HubError {
  return invalidRequest(`Invalid 'base_url': ${detail}.`, "base_url");
}

/** The environment's credentials are the operator's settings; the API cannot change them. */
function refuseEnvironment(id: string): void {
  if (id.startsWith("env:")) {
    throw invalidRequest(
      `The credential '${id}' comes from the environment (OPENAI_API_KEY, GEMINI_API_KEY); change it there.`,
      "id",
      "environment_credential",
    );
  }
}

export function credentialNotFound(id: string): HubError {
  return new HubError(`No provider credential with id '${id}'.`, {
    status: 404,
    type: "not_found_error",
    code: "credential_not_found",
    param: "id",
  });
}

export function viewOf(registry: ProviderRegistry, id: string): CredentialView {
  const view = registry.list().find((candidate) => candidate.id === id);
  // Deleted by a concurrent request between our write and the reload.
  if (!view) throw credentialNotFound(id);
  return view;
}

function present(view: CredentialView) {
  return {
    id: view.id,
    object: "provider_credential" as const,
    provider: view.provider,
    name: view.name,
    key: view.key,
    base_url: view.baseUrl,
    weight: view.weight,
    created_at: view.createdAt === null ? null : Math.floor(view.createdAt / 1000),
    disabled: view.disabled,
    source: view.source,
    status: view.status,
    status_detail: view.statusDetail,
    last_error: view.lastError,
    status_since: unixSeconds(view.statusSince),
    status_until: unixSeconds(view.statusUntil),
  };
}

function unixSeconds(ms: number | null): number | null {
  return ms === null ? null : Math.floor(ms / 1000);
}
