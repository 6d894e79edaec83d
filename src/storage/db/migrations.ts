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
  {
    version: 2,
    name: "key limits and credit, reservations, costs, prices, provider credentials",
    sql: `
      ALTER TABLE api_keys ADD COLUMN models TEXT;
      ALTER TABLE api_keys ADD COLUMN rpm INTEGER;
      ALTER TABLE api_keys ADD COLUMN ipm INTEGER;
      ALTER TABLE api_keys ADD COLUMN balance_micros BIGINT CHECK (balance_micros >= 0);
      ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
      ALTER TABLE usage_records ADD COLUMN cost_micros BIGINT NOT NULL DEFAULT 0;
      ALTER TABLE usage_records ADD COLUMN input_tokens INTEGER;
      ALTER TABLE usage_records ADD COLUMN output_tokens INTEGER;
      CREATE INDEX usage_records_time ON usage_records (created_at);
      CREATE INDEX usage_records_model_time ON usage_records (model, created_at);
      CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0),
        created_at BIGINT NOT NULL
      );
      CREATE INDEX reservations_time ON reservations (created_at);
      CREATE TABLE image_prices (
        model TEXT NOT NULL,
        size TEXT NOT NULL,
        quality TEXT NOT NULL,
        micros_per_image BIGINT NOT NULL CHECK (micros_per_image >= 0),
        source TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (model, size, quality)
      );
      CREATE TABLE token_prices (
        model TEXT PRIMARY KEY,
        text_input_per_million DOUBLE PRECISION NOT NULL,
        image_input_per_million DOUBLE PRECISION NOT NULL,
        output_per_million DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE TABLE provider_credentials (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        name TEXT NOT NULL,
        encrypted_key TEXT NOT NULL,
        key_hint TEXT NOT NULL,
        base_url TEXT,
        weight INTEGER NOT NULL CHECK (weight >= 0),
        created_at BIGINT NOT NULL,
        disabled_at BIGINT
      );
    `,
  },
  {
    version: 3,
    name: "model routes: fallbacks, timeouts, retry policy",
    // `fallbacks` is a JSON array of {model, credentialId}: always read and written whole, and
    // never queried into, so a child table would only add joins. `retry_billable` is 0 or 1, an
    // INTEGER that both backends hand back as a number.
    sql: `
      CREATE TABLE model_routes (
        model TEXT PRIMARY KEY,
        fallbacks TEXT NOT NULL,
        timeout_ms INTEGER CHECK (timeout_ms > 0),
        retry_billable INTEGER NOT NULL DEFAULT 0 CHECK (retry_billable IN (0, 1)),
        updated_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: "catalog models from the admin API; the model a client named",
    // `definition` is JSON the catalog alone reads, whole, like `fallbacks` above. `hidden` 1
    // marks a built-in model the admin deleted. `requested_model` is null unless a model other
    // than the one named served the request; the partial index keeps the usage filter, which
    // matches either column, off a full scan while costing nothing for the usual row.
    sql: `
      CREATE TABLE catalog_models (
        id TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        hidden INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
        updated_at BIGINT NOT NULL
      );
      ALTER TABLE usage_records ADD COLUMN requested_model TEXT;
      CREATE INDEX usage_records_requested_model_time ON usage_records (requested_model, created_at)
        WHERE requested_model IS NOT NULL;
    `,
  },
  {
    version: 5,
    name: "the application that called",
    // Null for every request whose client did not name itself, so the partial index costs
    // nothing for them and keeps the usage filter by app off a full scan.
    sql: `
      ALTER TABLE usage_records ADD COLUMN app TEXT;
      CREATE INDEX usage_records_app_time ON usage_records (app, created_at) WHERE app IS NOT NULL;
    `,
  },
  {
    version: 6,
    name: "provider instances defined through the admin API",
    // A credential of a provider id the environment does not configure says which kind of API
    // it speaks and how (`options`: JSON, read whole, like `fallbacks`); null for the others.
    sql: `
      ALTER TABLE provider_credentials ADD COLUMN kind TEXT;
      ALTER TABLE provider_credentials ADD COLUMN options TEXT;
    `,
  },
  {
    version: 7,
    name: "upstream tasks in flight",
    // A task-based provider's task, written before it is polled and deleted when it ends: a hub
    // that dies meanwhile finds it at its next start and settles its reservation
    // (images/task-recovery.ts), which the start's release of dead reservations leaves alone.
    sql: `
      CREATE TABLE upstream_tasks (
        provider TEXT NOT NULL,
        task_id TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        size TEXT,
        quality TEXT,
        images INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (provider, task_id)
      );
      CREATE INDEX upstream_tasks_reservation ON upstream_tasks (reservation_id);
    `,
  },
  {
    version: 8,
    name: "hosted images for the gallery",
    // What the console's gallery shows of each image the hub hosts, until its URL expires. The
    // prompt is kept here only that long: rows are deleted with the image.
    sql: `
      CREATE TABLE hosted_images (
        name TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        record_id TEXT NOT NULL,
        model TEXT NOT NULL,
        size TEXT NOT NULL,
        prompt TEXT NOT NULL,
        cost_micros BIGINT NOT NULL,
        mime_type TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      CREATE INDEX hosted_images_key_time ON hosted_images (key_id, created_at);
      CREATE INDEX hosted_images_time ON hosted_images (created_at);
    `,
  },
  {
    version: 9,
    name: "live hub instances, and what a reservation's request was",
    // Several hubs on one database: each writes a heartbeat, and a hub whose heartbeat stopped
    // is dead, so the reservations it made (marked with its id) are released by another within
    // a minute and its lost requests written to the ledger as failed, at no cost (their
    // `request` holds what the usage row says).
    sql: `
      CREATE TABLE hub_instances (
        id TEXT PRIMARY KEY,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL
      );
      ALTER TABLE reservations ADD COLUMN instance_id TEXT;
      ALTER TABLE reservations ADD COLUMN request TEXT;
      CREATE INDEX reservations_instance ON reservations (instance_id);
    `,
  },
];
