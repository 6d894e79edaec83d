/**
 * The admin API of model routes (images/routes.ts): per model, an ordered list of fallbacks,
 * the time budget of its upstream calls and whether failures that may already have made a
 * billable image are retried. Every catalog model has a route, a stored one or the defaults;
 * PUT changes the fields it names and DELETE goes back to the defaults.
 *
 * A route is checked when it is set, not when a request needs it: a fallback naming a model or
 * credential the hub does not have, a credential of another provider, or the model itself on
 * the same credentials is refused here with a 400 naming the entry, rather than found out during
 * an outage. After each change the route book reloads, so the next image request follows it.
 */
import type { FastifyInstance } from "fastify";
import { type Static, type TSchema, Type } from "typebox";
import type { CredentialView, ProviderRegistry } from "../credentials/registry.ts";
import { invalidRequest, modelNotFound } from "../errors.ts";
import type { Catalog, ModelSpec } from "../images/catalog.ts";
import { defaultRoute, type RouteBook } from "../images/routes.ts";
import { adminErrorResponses, BODY_ERROR_STATUSES } from "../images/schema.ts";
import type { Database, FallbackTarget, ModelRouteRecord } from "../storage/db/types.ts";
import type { AuthHooks } from "./auth.ts";
import { refuseUnknownFields } from "./unknown-fields.ts";

/** Each fallback can cost a full upstream time budget; more than a few only delays the error. */
export const MAX_FALLBACKS = 5;
export const MIN_ROUTE_TIMEOUT_MS = 1000;
export const MAX_ROUTE_TIMEOUT_MS = 3_600_000;

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const FallbackBody = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 200, description: "A model id or alias." }),
    credential: Type.Optional(
      Nullable(
        Type.String({
          minLength: 1,
          maxLength: 100,
          description:
            "A provider credential id (GET /api/admin/credentials) of the model's provider; omitted or null for the provider's pool.",
        }),
      ),
    ),
  },
  { additionalProperties: false },
);

const PutRouteBody = Type.Object(
  {
    fallbacks: Type.Optional(
      Type.Array(FallbackBody, {
        maxItems: MAX_FALLBACKS,
        description: "Tried in order after the model's own calls fail; [] for none.",
      }),
    ),
    timeout_ms: Type.Optional(
      Nullable(
        Type.Integer({
          minimum: MIN_ROUTE_TIMEOUT_MS,
          maximum: MAX_ROUTE_TIMEOUT_MS,
          description: "Time budget of the model's upstream calls; null for the default.",
        }),
      ),
    ),
    retry_billable: Type.Optional(
      Type.Boolean({
        description:
          "Retry and fall back even after failures that may have produced a billable image.",
      }),
    ),
  },
  { additionalProperties: false },
);

type PutBody = Static<typeof PutRouteBody>;
type FallbackEntry = Static<typeof FallbackBody>;

const RouteParams = Type.Object({
  "*": Type.String({
    description: "A model id, alias or provider/id (the slash may be sent as is).",
  }),
});

const RouteView = Type.Object({
  object: Type.Literal("model_route"),
  model: Type.String(),
  provider: Type.String(),
  fallbacks: Type.Array(
    Type.Object({
      model: Type.String(),
      provider: Nullable(
        Type.String({ description: "null when the catalog no longer has the model." }),
      ),
      credential: Nullable(Type.String({ description: "null for the provider's pool." })),
    }),
  ),
  timeout_ms: Type.Integer({ description: "The time budget the model's calls get now." }),
  timeout_source: Type.Union([
    Type.Literal("catalog"),
    Type.Literal("setting"),
    Type.Literal("route"),
  ]),
  retry_billable: Type.Boolean(),
  configured: Type.Boolean({ description: "false: no stored route, the defaults apply." }),
  updated_at: Nullable(Type.Integer({ description: "Unix seconds" })),
});

const RouteList = Type.Object({ object: Type.Literal("list"), data: Type.Array(RouteView) });

export interface ModelRouteRoutesOptions {
  routes: RouteBook;
  db: Database;
  catalog: Catalog;
  registry: Pick<ProviderRegistry, "list">;
  auth: AuthHooks;
  /** The UPSTREAM_TIMEOUT_MS setting: overrides the catalog's timeouts, not a route's. */
  upstreamTimeoutMs: number | undefined;
  clock?: () => number;
}

const NO_SUCH_MODEL = { 404: "No model of this name in the catalog (`model_not_found`)." };
const routeErrors = adminErrorResponses([404], NO_SUCH_MODEL);
const common = { tags: ["admin"], security: [{ bearerAuth: [] }] };

export function registerModelRouteRoutes(
  app: FastifyInstance,
  options: ModelRouteRoutesOptions,
): void {
  const { routes, db, catalog, registry, auth } = options;
  const clock = options.clock ?? Date.now;
  const viewOf = (model: ModelSpec) =>
    present(model, storedIn(routes, model.id), catalog, options.upstreamTimeoutMs);

  app.get(
    "/api/admin/routes",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "List the route of every model: fallbacks, timeout, retry policy",
        response: { 200: RouteList, ...adminErrorResponses([]) },
      },
    },
    async () => {
      const stored = new Map(routes.list().map((record) => [record.model, record]));
      return {
        object: "list" as const,
        data: catalog.models.map((model) =>
          present(model, stored.get(model.id), catalog, options.upstreamTimeoutMs),
        ),
      };
    },
  );

  app.get<{ Params: { "*": string } }>(
    "/api/admin/routes/*",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "Show the route of one model",
        params: RouteParams,
        response: { 200: RouteView, ...routeErrors },
      },
    },
    async (request) => viewOf(modelNamed(catalog, request.params["*"])),
  );

  app.put<{ Params: { "*": string }; Body: PutBody }>(
    "/api/admin/routes/*",
    {
      onRequest: auth.requireAdmin,
      preValidation: refuseUnknownFields(PutRouteBody),
      schema: {
        ...common,
        summary: "Set a model's fallbacks, timeout or retry policy (fields left out are kept)",
        params: RouteParams,
        body: PutRouteBody,
        response: {
          200: RouteView,
          ...adminErrorResponses([...BODY_ERROR_STATUSES, 404], {
            ...NO_SUCH_MODEL,
            400: "A field is not valid, or a fallback names a model or credential the hub does not have, one of another provider, or the same call again (`param` names the entry).",
          }),
        },
      },
    },
    async (request) => {
      const model = modelNamed(catalog, request.params["*"]);
      const { fallbacks, timeout_ms: timeoutMs, retry_billable: retryBillable } = request.body;
      const targets =
        fallbacks === undefined
          ? undefined
          : fallbackTargets(fallbacks, model, catalog, registry.list());
      // The stored route, not the book's copy: the book may be a minute behind another
      // instance's change, and the fields this request leaves out must keep their newest value.
      const base = (await db.listModelRoutes()).find((record) => record.model === model.id);
      const kept = base ?? defaultRoute(model.id);
      const record: ModelRouteRecord = {
        model: model.id,
        fallbacks: targets ?? [...kept.fallbacks],
        timeoutMs: timeoutMs === undefined ? kept.timeoutMs : timeoutMs,
        retryBillable: retryBillable ?? kept.retryBillable,
        updatedAt: clock(),
      };
      await db.putModelRoute(record);
      await routes.reload();
      request.log.info(
        {
          model: record.model,
          fallbacks: record.fallbacks.map((target) => target.model),
          timeoutMs: record.timeoutMs,
          retryBillable: record.retryBillable,
        },
        "model route set",
      );
      return viewOf(model);
    },
  );

  app.delete<{ Params: { "*": string } }>(
    "/api/admin/routes/*",
    {
      onRequest: auth.requireAdmin,
      schema: {
        ...common,
        summary: "Put a model's route back to the defaults",
        params: RouteParams,
        response: { 200: RouteView, ...routeErrors },
      },
    },
    async (request) => {
      const model = modelNamed(catalog, request.params["*"]);
      if (await db.deleteModelRoute(model.id)) {
        await routes.reload();
        request.log.info({ model: model.id }, "model route removed: defaults apply");
      }
      return viewOf(model);
    },
  );
}

function modelNamed(catalog: Catalog, name: string): ModelSpec {
  const model = catalog.find(name);
  if (!model) throw modelNotFound(name);
  return model;
}

function storedIn(routes: RouteBook, model: string): ModelRouteRecord | undefined {
  return routes.list().find((record) => record.model === model);
}

/**
 * Checks each entry and resolves its name to the catalog id stored. The checks are the ones a
 * request could not recover from at call time: an unknown model or credential, a credential
 * another provider would refuse, and the model falling back to itself on the same credentials,
 * which would repeat the call that just failed.
 */
function fallbackTargets(
  entries: readonly FallbackEntry[],
  model: ModelSpec,
  catalog: Catalog,
  credentials: readonly CredentialView[],
): FallbackTarget[] {
  const targets: FallbackTarget[] = [];
  entries.forEach((entry, index) => {
    const param = `fallbacks[${index}]`;
    const fallback = catalog.find(entry.model);
    if (!fallback) {
      throw invalidRequest(
        `Invalid '${param}.model': the model '${entry.model}' does not exist on this hub.`,
        `${param}.model`,
        "model_not_found",
      );
    }
    const credentialId = credentialFor(entry.credential ?? null, fallback, param, credentials);
    if (fallback.id === model.id && credentialId === null) {
      throw invalidRequest(
        `Invalid '${param}': '${model.id}' falling back to itself needs a 'credential', another key of ${model.provider}; on the same pool it would repeat the call that failed.`,
        `${param}.credential`,
        "fallback_loop",
      );
    }
    const earlier = targets.findIndex(
      (target) => target.model === fallback.id && target.credentialId === credentialId,
    );
    if (earlier !== -1) {
      throw invalidRequest(
        `Invalid '${param}': the same model and credential as fallbacks[${earlier}].`,
        param,
        "duplicate_fallback",
      );
    }
    targets.push({ model: fallback.id, credentialId });
  });
  return targets;
}

/** The credential id to store for a fallback, after checking it can serve the model. */
function credentialFor(
  id: string | null,
  model: ModelSpec,
  param: string,
  credentials: readonly CredentialView[],
): string | null {
  if (id === null) return null;
  const credentialParam = `${param}.credential`;
  if (model.provider === "local") {
    throw invalidRequest(
      `Invalid '${credentialParam}': '${model.id}' is built in and takes no credential.`,
      credentialParam,
      "credential_not_applicable",
    );
  }
  const credential = credentials.find((candidate) => candidate.id === id);
  if (!credential) {
    throw invalidRequest(
      `Invalid '${credentialParam}': no provider credential '${id}' (GET /api/admin/credentials lists them).`,
      credentialParam,
      "credential_not_found",
    );
  }
  if (credential.provider !== model.provider) {
    throw invalidRequest(
      `Invalid '${credentialParam}': '${id}' is a ${credential.provider} credential, and '${model.id}' is served by ${model.provider}.`,
      credentialParam,
      "credential_provider_mismatch",
    );
  }
  return id;
}

function present(
  model: ModelSpec,
  record: ModelRouteRecord | undefined,
  catalog: Catalog,
  upstreamTimeoutMs: number | undefined,
) {
  const route = record ?? defaultRoute(model.id);
  const timeout = effectiveTimeout(route.timeoutMs, upstreamTimeoutMs, model);
  return {
    object: "model_route" as const,
    model: model.id,
    provider: model.provider,
    fallbacks: route.fallbacks.map((target) => ({
      model: target.model,
      // By id, not catalog.find: an admin alias could bear the name of another model's id.
      provider: catalog.models.find((candidate) => candidate.id === target.model)?.provider ?? null,
      credential: target.credentialId,
    })),
    timeout_ms: timeout.ms,
    timeout_source: timeout.source,
    retry_billable: route.retryBillable,
    configured: record !== undefined,
    updated_at: record === undefined ? null : Math.floor(record.updatedAt / 1000),
  };
}

/** The route's own timeout, else the UPSTREAM_TIMEOUT_MS setting, else the catalog's. */
function effectiveTimeout(
  routeMs: number | null,
  settingMs: number | undefined,
  model: ModelSpec,
): { ms: number; source: "route" | "setting" | "catalog" } {
  if (routeMs !== null) return { ms: routeMs, source: "route" };
  if (settingMs !== undefined) return { ms: settingMs, source: "setting" };
  return { ms: model.timeoutMs, source: "catalog" };
}
