/**
 * The embedded backend: one SQLite file in DATA_DIR through node:sqlite, in WAL mode so readers
 * never wait for the writer. node:sqlite is synchronous; statements here are small and indexed,
 * so they run in microseconds and the async interface costs nothing.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { MIGRATIONS } from "./migrations.ts";
import type { ApiKeyRecord, Database, KeyRole, UsageRecord } from "./types.ts";

export function openSqliteDatabase(file: string): Database {
  if (file !== ":memory:") mkdirSync(path.dirname(file), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
  migrate(db);

  const insertKey = db.prepare(
    "INSERT INTO api_keys (id, name, role, secret_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
  );
  const selectKey = db.prepare("SELECT * FROM api_keys WHERE id = ?");
  const countKeys = db.prepare(
    "SELECT COUNT(*) AS count FROM api_keys WHERE role = ? AND revoked_at IS NULL",
  );
  const insertUsage = db.prepare(`INSERT INTO usage_records (id, key_id, model, provider,
    images_requested, images_delivered, size, quality, response_format, status, error_code,
    latency_ms, upstream_latency_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const selectUsageOfKey = db.prepare(
    "SELECT * FROM usage_records WHERE key_id = ? ORDER BY created_at DESC LIMIT ?",
  );
  const selectUsage = db.prepare("SELECT * FROM usage_records ORDER BY created_at DESC LIMIT ?");

  return {
    kind: "sqlite",
    async createKey(record) {
      insertKey.run(
        record.id,
        record.name,
        record.role,
        record.secretHash,
        record.createdAt,
        record.revokedAt,
      );
    },
    async findKey(id) {
      const row = selectKey.get(id);
      return row ? keyFromRow(row) : undefined;
    },
    async countActiveKeys(role: KeyRole) {
      return Number((countKeys.get(role) as { count: number }).count);
    },
    async recordUsage(record) {
      const values: SQLInputValue[] = [
        record.id,
        record.keyId,
        record.model,
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
        record.createdAt,
      ];
      insertUsage.run(...values);
    },
    async listUsage({ keyId, limit }) {
      const rows = keyId ? selectUsageOfKey.all(keyId, limit) : selectUsage.all(limit);
      return rows.map(usageFromRow);
    },
    async close() {
      if (db.isOpen) db.close();
    },
  };
}

function migrate(db: DatabaseSync): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
  );
  const applied = new Set(
    db
      .prepare("SELECT version FROM schema_migrations")
      .all()
      .map((row) => Number(row.version)),
  );
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue;
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(migration.sql);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
        migration.version,
        migration.name,
        Date.now(),
      );
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
}

type Row = Record<string, SQLInputValue>;

function keyFromRow(row: Row): ApiKeyRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    role: row.role as KeyRole,
    secretHash: String(row.secret_hash),
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

function usageFromRow(row: Row): UsageRecord {
  const nullableText = (value: SQLInputValue | undefined) =>
    value === null || value === undefined ? null : String(value);
  return {
    id: String(row.id),
    keyId: String(row.key_id),
    model: String(row.model),
    provider: String(row.provider),
    imagesRequested: Number(row.images_requested),
    imagesDelivered: Number(row.images_delivered),
    size: nullableText(row.size),
    quality: nullableText(row.quality),
    responseFormat: String(row.response_format),
    status: row.status as UsageRecord["status"],
    errorCode: nullableText(row.error_code),
    latencyMs: Number(row.latency_ms),
    upstreamLatencyMs: row.upstream_latency_ms === null ? null : Number(row.upstream_latency_ms),
    createdAt: Number(row.created_at),
  };
}
