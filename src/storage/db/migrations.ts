/**
 * Forward-only schema migrations, shared by every backend: plain SQL that SQLite and PostgreSQL
 * both read. A migration is never edited once released; a change is a new entry.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "api keys and usage records",
    sql: `
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'client')),
        secret_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
      CREATE TABLE usage_records (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        images_requested INTEGER NOT NULL,
        images_delivered INTEGER NOT NULL,
        size TEXT,
        quality TEXT,
        response_format TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        latency_ms INTEGER NOT NULL,
        upstream_latency_ms INTEGER,
        created_at BIGINT NOT NULL
      );
      CREATE INDEX usage_records_key_time ON usage_records (key_id, created_at);
    `,
  },
];
