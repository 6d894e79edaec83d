/**
 * The usage API: one row per image request, with totals per day and per model. A client key
 * sees its own requests; an admin sees everyone's and may filter by key. `GET /api/usage/export`
 * sends the same rows as CSV for spreadsheets and accounting.
 */
import { Readable } from "node:stream";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type Static, type TSchema, Type } from "typebox";
import type { Principal } from "../auth/principal.ts";
import { formatUsd, microsToUsd } from "../billing/money.ts";
import { forbidden, invalidRequest } from "../errors.ts";
import { type Catalog, createCatalog } from "../images/catalog.ts";
import { errorResponses } from "../images/schema.ts";
import type { Database, UsageFilter, UsageRecord, UsageTotal } from "../storage/db/types.ts";
import { type AuthHooks, principalOf } from "./auth.ts";

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
/** Rows fetched per query while an export streams. */
const EXPORT_PAGE = 1000;
const MAX_EXPORT_LIMIT = 1_000_000;
const DAY_MS = 86_400_000;

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

// The hub's ajv does not coerce types, so every query value arrives as text and is read here.
const UsageQuery = Type.Object({
  key: Type.Optional(Type.String({ description: "Key id (admin only)." })),
  model: Type.Optional(
    Type.String({
      description:
        "Model id or alias: the requests it served, and those naming it that another model served.",
    }),
  ),
  app: Type.Optional(
    Type.String({
      maxLength: 256,
      description: "The calling application, exactly as it named itself (AIGNE's client DID).",
    }),
  ),
  status: Type.Optional(
    Type.Union([Type.Literal("succeeded"), Type.Literal("partial"), Type.Literal("failed")], {
      description: "Only requests that ended so: every image, some, or none.",
    }),
  ),
  from: Type.Optional(
    Type.String({ description: "Inclusive start: ISO 8601 date or time, or unix seconds." }),
  ),
  to: Type.Optional(
    Type.String({
      description:
        "End: unix seconds or an ISO time (exclusive), or an ISO date (through the end of that day, UTC).",
    }),
  ),
  limit: Type.Optional(
    Type.String({ pattern: "^[0-9]+$", description: `Rows, 1 to ${MAX_LIMIT}.` }),
  ),
  offset: Type.Optional(Type.String({ pattern: "^[0-9]+$" })),
});
type UsageQuery = Static<typeof UsageQuery>;

const UsageRow = Type.Object({
  id: Type.String(),
  key_id: Type.String(),
  model: Type.String({ description: "The model that served the request." }),
  requested_model: Nullable(
    Type.String({
      description:
        "The model the client named, when another served it (a retired model's successor); null when the named model served.",
    }),
  ),
  app: Nullable(
    Type.String({
      description:
        "The application that called, as it named itself (`x-aigne-hub-client-did`); null when it did not.",
    }),
  ),
  provider: Type.String(),
  status: Type.String(),
  images: Type.Integer({ description: "Images delivered." }),
  images_requested: Type.Integer(),
  size: Nullable(Type.String()),
  quality: Nullable(Type.String()),
  response_format: Type.String(),
  error_code: Nullable(Type.String()),
  cost: Type.Number({ description: "USD charged." }),
  latency_ms: Type.Integer(),
  upstream_latency_ms: Nullable(Type.Integer()),
  input_tokens: Nullable(Type.Integer()),
  output_tokens: Nullable(Type.Integer()),
  created_at: Type.Integer({ description: "Unix seconds" }),
});
type UsageRow = Static<typeof UsageRow>;

const Totals = Type.Object({
  by_day: Type.Array(
    Type.Object({
      date: Type.String({ description: "YYYY-MM-DD, UTC" }),
      requests: Type.Integer(),
      images: Type.Integer(),
      cost: Type.Number(),
    }),
  ),
  by_model: Type.Array(
    Type.Object({
      model: Type.String({ description: "The model that served the requests." }),
      requests: Type.Integer(),
      images: Type.Integer(),
      cost: Type.Number(),
    }),
  ),
});

const UsageList = Type.Object({
  object: Type.Literal("list"),
  data: Type.Array(UsageRow),
  totals: Totals,
});

/** The CSV columns, in order; the same names as the JSON fields. */
const CSV_COLUMNS = [
  "id",
  "key_id",
  "model",
  "requested_model",
  "app",
  "provider",
  "status",
  "images",
  "images_requested",
  "size",
  "quality",
  "response_format",
  "error_code",
  "cost",
  "latency_ms",
  "upstream_latency_ms",
  "input_tokens",
  "output_tokens",
  "created_at",
] as const;

const usageErrors = errorResponses([400, 401, 403, 429, 500], {
  400: "A filter is not valid (`param` names it).",
  403: "A client key asked for another key's usage.",
});

export function registerUsageRoutes(
  app: FastifyInstance,
  options: { db: Database; auth: AuthHooks; catalog?: Catalog; clock?: () => number },
): void {
  const { db } = options;
  const catalog = options.catalog ?? createCatalog();
  const clock = options.clock ?? Date.now;
  const schema = { tags: ["usage"], security: [{ bearerAuth: [] }], querystring: UsageQuery };

  app.get<{ Querystring: UsageQuery }>(
    "/api/usage",
    {
      onRequest: options.auth.requireKey,
      schema: {
        ...schema,
        summary: "List image requests with their cost, and totals per day and per model",
        response: { 200: UsageList, ...usageErrors },
      },
    },
    async (request) => {
      const filter = usageFilter(request, catalog);
      const [records, byDay, byModel] = await Promise.all([
        db.listUsage({ ...filter, limit: readLimit(request.query.limit), offset: filter.offset }),
        db.usageTotals(filter, "day"),
        db.usageTotals(filter, "model"),
      ]);
      return {
        object: "list" as const,
        data: records.map(toUsageRow),
        totals: {
          by_day: byDay.map((total) => ({ date: total.group, ...totalFigures(total) })),
          by_model: byModel.map((total) => ({ model: total.group, ...totalFigures(total) })),
        },
      };
    },
  );

  app.get<{ Querystring: UsageQuery }>(
    "/api/usage/export",
    {
      onRequest: options.auth.requireKey,
      schema: {
        ...schema,
        summary: "The same rows as CSV (every matching row unless `limit` is given)",
        produces: ["text/csv"],
        response: { 200: Type.String({ description: "text/csv" }), ...usageErrors },
      },
    },
    async (request, reply) => {
      const filter = usageFilter(request, catalog);
      // Newest first, paged: pin the end to now so rows written meanwhile do not shift pages.
      const pinned = { ...filter, to: Math.min(filter.to ?? Number.POSITIVE_INFINITY, clock()) };
      const limit =
        request.query.limit === undefined
          ? undefined
          : readLimit(request.query.limit, MAX_EXPORT_LIMIT);
      reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", 'attachment; filename="usage.csv"');
      return reply.send(Readable.from(csvLines(db, pinned, filter.offset ?? 0, limit)));
    },
  );
}

async function* csvLines(
  db: Database,
  filter: UsageFilter,
  offset: number,
  limit: number | undefined,
): AsyncGenerator<string> {
  yield `${CSV_COLUMNS.join(",")}\r\n`;
  let left = limit ?? Number.POSITIVE_INFINITY;
  let position = offset;
  while (left > 0) {
    const page = await db.listUsage({
      ...filter,
      limit: Math.min(EXPORT_PAGE, left),
      offset: position,
    });
    if (page.length === 0) return;
    yield page.map((record) => `${csvRow(record)}\r\n`).join("");
    position += page.length;
    left -= page.length;
    if (page.length < EXPORT_PAGE) return;
  }
}

/** One CSV line, RFC 4180: a field with a quote, comma or line break is quoted, quotes doubled. */
export function csvRow(record: UsageRecord): string {
  const row = toUsageRow(record);
  return CSV_COLUMNS.map((column) => {
    // From the integer, not the float, so the six decimals are exact.
    if (column === "cost") return formatUsd(record.costMicros);
    const value = row[column];
    return csvField(value === null ? "" : String(value));
  }).join(",");
}

export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toUsageRow(record: UsageRecord): UsageRow {
  return {
    id: record.id,
    key_id: record.keyId,
    model: record.model,
    requested_model: record.requestedModel,
    app: record.app ?? null,
    provider: record.provider,
    status: record.status,
    images: record.imagesDelivered,
    images_requested: record.imagesRequested,
    size: record.size,
    quality: record.quality,
    response_format: record.responseFormat,
    error_code: record.errorCode,
    cost: microsToUsd(record.costMicros),
    latency_ms: record.latencyMs,
    upstream_latency_ms: record.upstreamLatencyMs,
    input_tokens: record.inputTokens,
    output_tokens: record.outputTokens,
    created_at: Math.floor(record.createdAt / 1000),
  };
}

function totalFigures(total: UsageTotal) {
  return {
    requests: total.requests,
    images: total.imagesDelivered,
    cost: microsToUsd(total.costMicros),
  };
}

/** The filter a request may use: a client key is held to its own rows. */
function usageFilter(
  request: FastifyRequest<{ Querystring: UsageQuery }>,
  catalog: Catalog,
): UsageFilter & { offset?: number } {
  const principal: Principal = principalOf(request);
  const query = request.query;
  const filter: UsageFilter & { offset?: number } = {};
  if (principal.role === "admin") {
    if (query.key) filter.keyId = query.key;
  } else {
    if (query.key && query.key !== principal.keyId) {
      throw forbidden("A client key may only see its own usage.");
    }
    filter.keyId = principal.keyId;
  }
  if (query.app) filter.app = query.app;
  if (query.status) filter.status = query.status;
  if (query.model) filter.model = catalog.find(query.model)?.id ?? query.model.trim();
  if (query.from !== undefined) filter.from = readTime(query.from, "from", "start");
  if (query.to !== undefined) filter.to = readTime(query.to, "to", "end");
  if (filter.from !== undefined && filter.to !== undefined && filter.from >= filter.to) {
    throw invalidRequest("Invalid 'to': must be later than 'from'.", "to");
  }
  if (query.offset !== undefined) filter.offset = Number(query.offset);
  return filter;
}

function readLimit(text: string | undefined, max = MAX_LIMIT): number {
  if (text === undefined) return DEFAULT_LIMIT;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw invalidRequest(`Invalid 'limit': must be a whole number from 1 to ${max}.`, "limit");
  }
  return value;
}

/**
 * Unix seconds, an ISO 8601 time, or an ISO date. A date as the end of a range means through
 * that day, so `from=2025-01-01&to=2025-01-31` covers January.
 */
export function readTime(text: string, param: string, side: "start" | "end"): number {
  const trimmed = text.trim();
  if (/^\d{1,12}$/.test(trimmed)) return Number(trimmed) * 1000;
  if (/^\d{4}-\d{2}-\d{2}$/.test(trimmed)) {
    const day = Date.parse(`${trimmed}T00:00:00Z`);
    // Date.parse rolls 2025-02-30 over to March; a date must read back as itself.
    const real = !Number.isNaN(day) && new Date(day).toISOString().startsWith(trimmed);
    if (real) return side === "end" ? day + DAY_MS : day;
  } else if (/^\d{4}-\d{2}-\d{2}T/.test(trimmed)) {
    const at = Date.parse(trimmed);
    if (!Number.isNaN(at)) return at;
  }
  throw invalidRequest(
    `Invalid '${param}': use an ISO 8601 date (2025-01-31), a time (2025-01-31T12:00:00Z) or unix seconds.`,
    param,
  );
}
