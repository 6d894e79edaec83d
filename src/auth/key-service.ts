/**
 * The lifecycle of API keys, shared by the admin API (src/http/admin.ts) and the CLI
 * (src/cli.ts): create, list, show, update, credit, revoke, rotate. Values are checked here, once,
 * so both doors refuse the same things with the same messages; money crosses this boundary in
 * USD and is kept in micro-dollars below it.
 */
import { microsToUsd, usdToMicros } from "../billing/money.ts";
import { HubError, invalidRequest } from "../errors.ts";
import { type Catalog, createCatalog } from "../images/catalog.ts";
import type { ApiKeyRecord, Database, KeyChanges, KeyRole } from "../storage/db/types.ts";
import { issueKey } from "./issue.ts";
import { generateApiKey } from "./keys.ts";

/** What the admin API and the CLI show of a key. Never the secret or its hash. */
export interface KeyView {
  id: string;
  object: "api_key";
  name: string;
  role: KeyRole;
  /** Catalog model ids the key may use; null for all. */
  models: string[] | null;
  rpm: number | null;
  ipm: number | null;
  /** Credit left in USD; null for unlimited. */
  balance: number | null;
  /** Unix seconds. */
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface CreateKeyInput {
  name: string;
  role?: KeyRole;
  /** Starting credit in USD; omitted or null for unlimited. */
  balanceUsd?: number | null;
  /** Model names (ids or aliases); omitted or null for all models. */
  models?: string[] | null;
  rpm?: number | null;
  ipm?: number | null;
}

/** Fields left out stay as they are; null clears a limit (or makes the balance unlimited). */
export interface UpdateKeyInput {
  name?: string;
  models?: string[] | null;
  rpm?: number | null;
  ipm?: number | null;
  balanceUsd?: number | null;
}

/** A key with its secret, in clear: the only moment it exists outside the client. */
export interface KeyWithSecret {
  view: KeyView;
  key: string;
}

export interface KeyService {
  create(input: CreateKeyInput): Promise<KeyWithSecret>;
  /** Every key, revoked ones included, oldest first. */
  list(): Promise<KeyView[]>;
  show(id: string): Promise<KeyView>;
  update(id: string, changes: UpdateKeyInput): Promise<KeyView>;
  /**
   * Adds `amountUsd` to the balance (negative to take credit back; the balance stops at zero).
   * A key without a limit is refused (409 `key_unlimited`): crediting it would silently turn it
   * into a key limited to the credit. Give it a limit with `update(id, { balanceUsd })`.
   */
  credit(id: string, amountUsd: number): Promise<KeyView>;
  /** Revokes the key at once; revoking a revoked key changes nothing. */
  revoke(id: string): Promise<KeyView>;
  /** A new secret for the same id and settings; the old secret stops working at once. */
  rotate(id: string): Promise<KeyWithSecret>;
}

const MAX_NAME_LENGTH = 100;
/** A ceiling on any one balance or credit: large enough for anyone, far from float trouble. */
const MAX_USD = 1_000_000_000;

/**
 * @example
 * const keys = createKeyService(db);
 * const { view, key } = await keys.create({ name: "my-app", balanceUsd: 10, rpm: 60 });
 */
export function createKeyService(
  db: Database,
  options: { clock?: () => number; catalog?: Catalog } = {},
): KeyService {
  const clock = options.clock ?? Date.now;
  const catalog = options.catalog ?? createCatalog();

  const find = async (id: string): Promise<ApiKeyRecord> => {
    const record = await db.findKey(id);
    if (!record) throw keyNotFound(id);
    return record;
  };

  return {
    async create(input) {
      const name = checkName(input.name);
      const role = checkRole(input.role ?? "client");
      const models = input.models === undefined ? null : checkModels(catalog, input.models);
      const rpm = input.rpm === undefined ? null : checkLimit(input.rpm, "rpm");
      const ipm = input.ipm === undefined ? null : checkLimit(input.ipm, "ipm");
      const balanceMicros =
        input.balanceUsd === undefined || input.balanceUsd === null
          ? null
          : usdToMicrosChecked(input.balanceUsd, "balance", { min: 0 });
      const issued = await issueKey(db, {
        name,
        role,
        models,
        rpm,
        ipm,
        balanceMicros,
        now: clock(),
      });
      return { view: toKeyView(issued.record), key: issued.key };
    },

    async list() {
      const records = await db.listKeys();
      return records.map(toKeyView);
    },

    async show(id) {
      return toKeyView(await find(id));
    },

    async update(id, input) {
      // Check every value before changing anything, so a bad field leaves the key as it was.
      const changes: KeyChanges = {};
      if (input.name !== undefined) changes.name = checkName(input.name);
      if (input.models !== undefined) changes.models = checkModels(catalog, input.models);
      if (input.rpm !== undefined) changes.rpm = checkLimit(input.rpm, "rpm");
      if (input.ipm !== undefined) changes.ipm = checkLimit(input.ipm, "ipm");
      const balanceMicros =
        input.balanceUsd === undefined || input.balanceUsd === null
          ? input.balanceUsd
          : usdToMicrosChecked(input.balanceUsd, "balance", { min: 0 });
      let record = await find(id);
      if (Object.keys(changes).length > 0) {
        record = (await db.updateKey(id, changes)) ?? throwNotFound(id);
      }
      if (balanceMicros !== undefined) {
        record = (await db.setBalance(id, balanceMicros)) ?? throwNotFound(id);
      }
      return toKeyView(record);
    },

    async credit(id, amountUsd) {
      const micros = usdToMicrosChecked(amountUsd, "amount", { min: -MAX_USD });
      if (micros === 0) throw invalidRequest("Invalid 'amount': must not be zero.", "amount");
      // Database.addCredit starts an unlimited key from zero. An admin crediting such a key
      // means "more", and would get "at most this much": refuse, and say how to set a limit.
      // (A PATCH to unlimited landing between this read and the write can still slip past;
      // both are admin actions on one key at the same instant.)
      if ((await find(id)).balanceMicros === null) throw keyUnlimited(id);
      const record = await db.addCredit(id, micros);
      if (!record) throw keyNotFound(id);
      return toKeyView(record);
    },

    async revoke(id) {
      const record = await find(id);
      if (record.revokedAt !== null) return toKeyView(record);
      await db.revokeKey(id, clock());
      return toKeyView(await find(id));
    },

    async rotate(id) {
      const record = await find(id);
      if (record.revokedAt !== null) throw keyRevoked(id);
      // The id stays, so usage stays with the key; only the secret is new.
      const fresh = generateApiKey(id);
      if (!(await db.replaceKeySecret(id, fresh.secretHash))) throw keyRevoked(id);
      return { view: toKeyView(record), key: fresh.key };
    },
  };
}

/** The public shape of a key record: USD instead of micros, unix seconds instead of ms. */
export function toKeyView(record: ApiKeyRecord): KeyView {
  return {
    id: record.id,
    object: "api_key",
    name: record.name,
    role: record.role,
    models: record.models,
    rpm: record.rpm,
    ipm: record.ipm,
    balance: record.balanceMicros === null ? null : microsToUsd(record.balanceMicros),
    created_at: unixSeconds(record.createdAt),
    last_used_at: record.lastUsedAt === null ? null : unixSeconds(record.lastUsedAt),
    revoked_at: record.revokedAt === null ? null : unixSeconds(record.revokedAt),
  };
}

/** 404 for a key id the hub does not know. */
export function keyNotFound(id: string): HubError {
  return new HubError(`No API key with id '${id}'.`, {
    status: 404,
    type: "not_found_error",
    code: "key_not_found",
    param: "id",
  });
}

function throwNotFound(id: string): never {
  throw keyNotFound(id);
}

function keyRevoked(id: string): HubError {
  return new HubError(`The API key '${id}' is revoked; create a new key instead.`, {
    status: 409,
    type: "invalid_request_error",
    code: "key_revoked",
    param: "id",
  });
}

function keyUnlimited(id: string): HubError {
  return new HubError(
    `The API key '${id}' has no credit limit, so there is no balance to add to. To limit it, ` +
      `set its balance: PATCH /api/admin/keys/${id} with {"balance": <USD>} ` +
      `(CLI: keys update ${id} --balance <USD>).`,
    { status: 409, type: "invalid_request_error", code: "key_unlimited", param: "id" },
  );
}

function checkName(name: unknown): string {
  const trimmed = typeof name === "string" ? name.trim() : "";
  if (trimmed.length === 0 || trimmed.length > MAX_NAME_LENGTH) {
    throw invalidRequest(
      `Invalid 'name': must be 1 to ${MAX_NAME_LENGTH} characters.`,
      "name",
      "invalid_value",
    );
  }
  return trimmed;
}

function checkRole(role: unknown): KeyRole {
  if (role !== "client" && role !== "admin") {
    throw invalidRequest("Invalid 'role': must be client or admin.", "role");
  }
  return role;
}

/** Model names to canonical catalog ids, without repeats; null means every model. */
function checkModels(catalog: Catalog, models: readonly string[] | null): string[] | null {
  if (models === null) return null;
  if (!Array.isArray(models) || models.length === 0) {
    throw invalidRequest(
      "Invalid 'models': must be a non-empty list of model ids, or null for every model.",
      "models",
    );
  }
  const ids: string[] = [];
  for (const name of models) {
    const spec = typeof name === "string" ? catalog.find(name) : undefined;
    if (!spec) {
      throw invalidRequest(
        `Invalid 'models': '${String(name)}' is not a model of this hub. GET /api/models lists them.`,
        "models",
        "model_not_found",
      );
    }
    if (!ids.includes(spec.id)) ids.push(spec.id);
  }
  return ids;
}

function checkLimit(value: number | null, param: "rpm" | "ipm"): number | null {
  if (value === null) return null;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw invalidRequest(
      `Invalid '${param}': must be a whole number of at least 1, or null for no limit.`,
      param,
    );
  }
  return value;
}

function usdToMicrosChecked(usd: number, param: string, bounds: { min: number }): number {
  if (typeof usd !== "number" || !Number.isFinite(usd) || usd < bounds.min || usd > MAX_USD) {
    const floor = bounds.min === 0 ? "from 0" : `from ${bounds.min}`;
    throw invalidRequest(`Invalid '${param}': must be a USD amount ${floor} to ${MAX_USD}.`, param);
  }
  return usd < 0 ? -usdToMicros(-usd) : usdToMicros(usd);
}

function unixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}
