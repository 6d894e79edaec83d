/**
 * Rows to records and records to values, the same for both backends: the columns are the same
 * (one set of migrations), only the drivers' value types differ, and both are read as unknown.
 */
import type {
  ApiKeyRecord,
  CatalogModelRecord,
  FallbackTarget,
  HostedImageFilter,
  HostedImageRecord,
  ImagePrice,
  KeyRole,
  LostRequest,
  ModelRouteRecord,
  ProviderCredentialRecord,
  Reservation,
  TokenPrice,
  UpstreamTaskRecord,
  UsageFilter,
  UsageRecord,
} from "./types.ts";

export type Row = Record<string, unknown>;

// BIGINT and SUM() arrive as strings (pg will not guess at 64-bit precision); every figure here
// is far below 2^53, so Number is exact.
export const nullableNumber = (value: unknown) =>
  value === null || value === undefined ? null : Number(value);
export const nullableText = (value: unknown) =>
  value === null || value === undefined ? null : String(value);

export function keyFromRow(row: Row): ApiKeyRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    role: row.role as KeyRole,
    secretHash: String(row.secret_hash),
    models: row.models === null ? null : (JSON.parse(String(row.models)) as string[]),
    rpm: nullableNumber(row.rpm),
    ipm: nullableNumber(row.ipm),
    balanceMicros: nullableNumber(row.balance_micros),
    createdAt: Number(row.created_at),
    revokedAt: nullableNumber(row.revoked_at),
    lastUsedAt: nullableNumber(row.last_used_at),
  };
}

export function usageFromRow(row: Row): UsageRecord {
  return {
    id: String(row.id),
    keyId: String(row.key_id),
    model: String(row.model),
    requestedModel: nullableText(row.requested_model),
    app: nullableText(row.app),
    provider: String(row.provider),
    imagesRequested: Number(row.images_requested),
    imagesDelivered: Number(row.images_delivered),
    size: nullableText(row.size),
    quality: nullableText(row.quality),
    responseFormat: String(row.response_format),
    status: row.status as UsageRecord["status"],
    errorCode: nullableText(row.error_code),
    latencyMs: Number(row.latency_ms),
    upstreamLatencyMs: nullableNumber(row.upstream_latency_ms),
    costMicros: Number(row.cost_micros),
    inputTokens: nullableNumber(row.input_tokens),
    outputTokens: nullableNumber(row.output_tokens),
    createdAt: Number(row.created_at),
  };
}

export function imagePriceFromRow(row: Row): ImagePrice {
  return {
    model: String(row.model),
    size: String(row.size),
    quality: String(row.quality),
    microsPerImage: Number(row.micros_per_image),
    source: String(row.source),
    updatedAt: Number(row.updated_at),
  };
}

export function tokenPriceFromRow(row: Row): TokenPrice {
  return {
    model: String(row.model),
    textInputPerMillion: Number(row.text_input_per_million),
    imageInputPerMillion: Number(row.image_input_per_million),
    outputPerMillion: Number(row.output_per_million),
    source: String(row.source),
    updatedAt: Number(row.updated_at),
  };
}

export function credentialFromRow(row: Row): ProviderCredentialRecord {
  return {
    id: String(row.id),
    provider: String(row.provider),
    name: String(row.name),
    encryptedKey: String(row.encrypted_key),
    keyHint: String(row.key_hint),
    baseUrl: nullableText(row.base_url),
    weight: Number(row.weight),
    createdAt: Number(row.created_at),
    disabledAt: nullableNumber(row.disabled_at),
    kind: nullableText(row.kind),
    options:
      row.options == null ? null : (JSON.parse(String(row.options)) as Record<string, string>),
  };
}

export function hostedImageFromRow(row: Row): HostedImageRecord {
  return {
    name: String(row.name),
    keyId: String(row.key_id),
    recordId: String(row.record_id),
    model: String(row.model),
    size: String(row.size),
    prompt: String(row.prompt),
    costMicros: Number(row.cost_micros),
    mimeType: String(row.mime_type),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  };
}

export const HOSTED_IMAGE_COLUMNS =
  "name, key_id, record_id, model, size, prompt, cost_micros, mime_type, created_at, expires_at";

/** In the order of HOSTED_IMAGE_COLUMNS. */
export function hostedImageValues(image: HostedImageRecord): SqlValue[] {
  return [
    image.name,
    image.keyId,
    image.recordId,
    image.model,
    image.size,
    image.prompt,
    image.costMicros,
    image.mimeType,
    image.createdAt,
    image.expiresAt,
  ];
}

/** The WHERE of a usage listing or its totals, `?` placeholders in order of the values. */
export function usageWhere(filter: UsageFilter): { where: string; values: SqlValue[] } {
  const clauses: string[] = [];
  const values: SqlValue[] = [];
  const add = (clause: string, ...clauseValues: SqlValue[]) => {
    clauses.push(clause);
    values.push(...clauseValues);
  };
  if (filter.keyId !== undefined) add("key_id = ?", filter.keyId);
  if (filter.model !== undefined)
    add("(model = ? OR requested_model = ?)", filter.model, filter.model);
  if (filter.app !== undefined) add("app = ?", filter.app);
  if (filter.status !== undefined) add("status = ?", filter.status);
  if (filter.from !== undefined) add("created_at >= ?", filter.from);
  if (filter.to !== undefined) add("created_at < ?", filter.to);
  return { where: clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : "", values };
}

/** The WHERE of a gallery listing, `?` placeholders in order of the values. */
export function hostedImageWhere(filter: HostedImageFilter): { where: string; values: SqlValue[] } {
  const clauses = ["expires_at > ?"];
  const values: SqlValue[] = [filter.liveAt];
  if (filter.keyId !== undefined) {
    clauses.push("key_id = ?");
    values.push(filter.keyId);
  }
  if (filter.model !== undefined) {
    clauses.push("model = ?");
    values.push(filter.model);
  }
  if (filter.before !== undefined) {
    clauses.push("created_at < ?");
    values.push(filter.before);
  }
  return { where: `WHERE ${clauses.join(" AND ")}`, values };
}

export function upstreamTaskFromRow(row: Row): UpstreamTaskRecord {
  return {
    provider: String(row.provider),
    taskId: String(row.task_id),
    reservationId: String(row.reservation_id),
    keyId: String(row.key_id),
    model: String(row.model),
    size: nullableText(row.size),
    quality: nullableText(row.quality),
    images: Number(row.images),
    state: JSON.parse(String(row.state)) as Record<string, string>,
    createdAt: Number(row.created_at),
  };
}

/** In the order of the upstream_tasks columns as UPSTREAM_TASK_INSERT names them. */
export function upstreamTaskValues(record: UpstreamTaskRecord): SqlValue[] {
  return [
    record.provider,
    record.taskId,
    record.reservationId,
    record.keyId,
    record.model,
    record.size,
    record.quality,
    record.images,
    JSON.stringify(record.state),
    record.createdAt,
  ];
}

export const UPSTREAM_TASK_COLUMNS =
  "provider, task_id, reservation_id, key_id, model, size, quality, images, state, created_at";

export function modelRouteFromRow(row: Row): ModelRouteRecord {
  return {
    model: String(row.model),
    fallbacks: fallbacksFromText(row.fallbacks),
    timeoutMs: nullableNumber(row.timeout_ms),
    retryBillable: Number(row.retry_billable) === 1,
    updatedAt: Number(row.updated_at),
  };
}

export function catalogModelFromRow(row: Row): CatalogModelRecord {
  return {
    id: String(row.id),
    definition: String(row.definition),
    hidden: Number(row.hidden) === 1,
    updatedAt: Number(row.updated_at),
  };
}

/**
 * The `fallbacks` column. Every image request routes through what this returns and the hub
 * reads it at start, so a value it cannot make sense of (edited by hand, or written by a later
 * version) must not throw: text that is not a JSON array reads as no fallbacks, and an entry
 * without a model id is skipped, leaving the others in their order. At worst a route loses a
 * fallback, which GET /api/admin/routes shows.
 */
export function fallbacksFromText(value: unknown): FallbackTarget[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(value));
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed.flatMap((entry: unknown): FallbackTarget[] => {
    if (typeof entry !== "object" || entry === null) return [];
    const { model, credentialId } = entry as Record<string, unknown>;
    if (typeof model !== "string" || model === "") return [];
    // Missing reads as the provider's pool; anything but text as a bad entry.
    if (credentialId !== undefined && credentialId !== null && typeof credentialId !== "string") {
      return [];
    }
    return [{ model, credentialId: credentialId ?? null }];
  });
}

/** A value as both drivers take it. */
export type SqlValue = string | number | null;

/** The `models` column: JSON text, or null for all models. */
export function modelsToText(models: string[] | null): string | null {
  return models === null ? null : JSON.stringify(models);
}

/** In the column order of the INSERT statements of both backends. */
export function keyValues(record: ApiKeyRecord): SqlValue[] {
  return [
    record.id,
    record.name,
    record.role,
    record.secretHash,
    modelsToText(record.models),
    record.rpm,
    record.ipm,
    record.balanceMicros,
    record.createdAt,
    record.revokedAt,
    record.lastUsedAt,
  ];
}

/** The columns of a usage record, in the order of usageValues(): every INSERT names them all. */
export const USAGE_COLUMNS = [
  "id",
  "key_id",
  "model",
  "requested_model",
  "app",
  "provider",
  "images_requested",
  "images_delivered",
  "size",
  "quality",
  "response_format",
  "status",
  "error_code",
  "latency_ms",
  "upstream_latency_ms",
  "cost_micros",
  "input_tokens",
  "output_tokens",
  "created_at",
] as const;

/** In the order of USAGE_COLUMNS. */
export function usageValues(record: UsageRecord): SqlValue[] {
  return [
    record.id,
    record.keyId,
    record.model,
    // A record built without the field (before it existed) reads as "the model named served".
    record.requestedModel ?? null,
    record.app ?? null,
    record.provider,
    record.imagesRequested,
    record.imagesDelivered,
    record.size,
    record.quality,
    record.responseFormat,
    record.status,
    record.errorCode,
    record.latencyMs,
    record.upstreamLatencyMs,
    record.costMicros,
    record.inputTokens,
    record.outputTokens,
    record.createdAt,
  ];
}

export function credentialValues(record: ProviderCredentialRecord): SqlValue[] {
  return [
    record.id,
    record.provider,
    record.name,
    record.encryptedKey,
    record.keyHint,
    record.baseUrl,
    record.weight,
    record.createdAt,
    record.disabledAt,
    record.kind,
    record.options === null ? null : JSON.stringify(record.options),
  ];
}

export function modelRouteValues(record: ModelRouteRecord): SqlValue[] {
  return [
    record.model,
    // Named fields only: whatever else a caller's objects carry stays out of the column.
    JSON.stringify(record.fallbacks.map(({ model, credentialId }) => ({ model, credentialId }))),
    record.timeoutMs,
    record.retryBillable ? 1 : 0,
    record.updatedAt,
  ];
}

export function catalogModelValues(record: CatalogModelRecord): SqlValue[] {
  return [record.id, record.definition, record.hidden ? 1 : 0, record.updatedAt];
}

export function imagePriceValues(price: ImagePrice): Array<string | number> {
  return [
    price.model,
    price.size,
    price.quality,
    price.microsPerImage,
    price.source,
    price.updatedAt,
  ];
}

export function tokenPriceValues(price: TokenPrice): Array<string | number> {
  return [
    price.model,
    price.textInputPerMillion,
    price.imageInputPerMillion,
    price.outputPerMillion,
    price.source,
    price.updatedAt,
  ];
}

/**
 * The usage row a released reservation leaves: its request, lost with the hub that ran it
 * (killed, crashed), failed at no cost. Undefined for a reservation that kept no request (made
 * before migration 9).
 */
export function lostUsageRecord(row: Row, now: number): UsageRecord | undefined {
  if (row.request === null || row.request === undefined) return undefined;
  let request: LostRequest;
  try {
    request = JSON.parse(String(row.request)) as LostRequest;
  } catch {
    return undefined;
  }
  const createdAt = Number(row.created_at);
  return {
    ...request,
    id: String(row.id),
    keyId: String(row.key_id),
    imagesDelivered: 0,
    status: "failed",
    errorCode: "hub_instance_lost",
    latencyMs: Math.max(0, now - createdAt),
    upstreamLatencyMs: null,
    costMicros: 0,
    inputTokens: null,
    outputTokens: null,
    createdAt,
  };
}

/** In the order id, key_id, amount_micros, created_at, instance_id, request. */
export function reservationValues(reservation: Reservation): SqlValue[] {
  return [
    reservation.id,
    reservation.keyId,
    reservation.amountMicros,
    reservation.createdAt,
    reservation.instanceId ?? null,
    // What the usage row says should the request be lost; null when none is kept.
    reservation.request === undefined ? null : JSON.stringify(reservation.request),
  ];
}
