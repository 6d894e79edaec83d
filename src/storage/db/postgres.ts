/**
 * The PostgreSQL backend (DATABASE_URL=postgres://…): the same interface and the same migrations
 * as SQLite, for hubs that share one database or outgrow one file.
 *
 * Money moves in single statements where it can: a data-modifying CTE is one transaction and one
 * round trip, and holds the key's row lock only for the statement, so concurrent requests on one
 * key queue for microseconds, not for network round trips. PostgreSQL re-checks an UPDATE's WHERE
 * on the row version it waited for (READ COMMITTED), which is what makes `reserve` unable to
 * overspend; the CHECK on `balance_micros` is the backstop.
 */
import { createHash } from "node:crypto";
import { Pool, type PoolClient } from "pg";
import { MIGRATIONS } from "./migrations.ts";
import {
  catalogModelFromRow,
  catalogModelValues,
  credentialFromRow,
  credentialValues,
  HOSTED_IMAGE_COLUMNS,
  hostedImageFromRow,
  hostedImageValues,
  hostedImageWhere,
  imagePriceFromRow,
  imagePriceValues,
  keyFromRow,
  keyValues,
  lostUsageRecord,
  modelRouteFromRow,
  modelRouteValues,
  modelsToText,
  type Row,
  reservationValues,
  type SqlValue,
  tokenPriceFromRow,
  tokenPriceValues,
  UPSTREAM_TASK_COLUMNS,
  USAGE_COLUMNS,
  upstreamTaskFromRow,
  upstreamTaskValues,
  usageFromRow,
  usageValues,
  usageWhere,
} from "./rows.ts";
import type { Database, KeyRole, UsageTotal } from "./types.ts";

export interface PostgresOptions {
  /**
   * Schema to keep the tables in, created when missing and put first on every connection's
   * search_path (tests use one per run). Lower-case letters, digits and `_`.
   */
  schema?: string;
}

/** Any 64-bit number, the same for every hub: only one of them migrates at a time. */
const LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock(7267348107615961)";

/**
 * The advisory lock every live hub holds shared, on a connection of its own, for its whole life.
 * It is per database and schema as the connection sees them (from the `schema` option or from
 * `search_path` in the URL), so hubs on other stores of one server are not counted. A hub that
 * can also take it exclusively is the only one alive. PostgreSQL drops a session's locks when
 * the session ends, so a hub killed with -9 stops counting once the server notices it is gone.
 */
function instanceLockKey(database: string, schema: string): string {
  const digest = createHash("sha256").update(`image-hub live hubs:${database}.${schema}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/**
 * The channel on which every write to catalog_models is announced, as SQL the server evaluates:
 * per database and schema as the connection sees them, like instanceLockKey, so hubs on another
 * store of the same server hear nothing. A channel is an identifier (63 bytes at most); this one
 * is lower-case letters, digits and `_`, so it needs no quoting.
 */
const CATALOG_CHANNEL = `'image_hub_catalog_' || left(encode(sha256(convert_to(
  'image-hub catalog:' || current_database() || '.' || current_schema(), 'UTF8')), 'hex'), 32)`;

/** The wait before opening a lost member connection again, doubled after each failure. */
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 30_000;

/**
 * Opens a pool on `url` and brings the schema up to date before returning.
 *
 * @example
 * const db = await openPostgresDatabase("postgres://hub@db.internal/hub");
 */
export async function openPostgresDatabase(
  url: string,
  options: PostgresOptions = {},
): Promise<Database> {
  const { schema } = options;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(
      `PostgreSQL schema name must match [a-z_][a-z0-9_]*: ${JSON.stringify(schema)}`,
    );
  }
  const pool = new Pool({
    connectionString: url,
    max: 10,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  // An idle client losing its server emits here; without a listener that would end the process.
  // The next query gets a fresh connection and its own error.
  pool.on("error", () => {});
  try {
    await migrate(pool, schema);
  } catch (error) {
    await pool.end();
    throw error;
  }

  let closed = false;
  /**
   * The connection this hub keeps for its life, opened on first need. It holds the live-hub lock
   * shared (once releaseReservationsIfAlone `registered` the hub) and LISTENs on the catalog
   * channel. Both are session state: a connection opened after a lost one takes both again.
   */
  let member: { client: PoolClient; drop: () => void } | undefined;
  let connecting: Promise<PoolClient> | undefined;
  let registered = false;
  let lockKey = "";
  let channel = "";
  const catalogListeners = new Set<() => void>();
  /** Set when catalog changes may have gone unheard (no connection): told once one is back. */
  let unheard = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let retryDelay = RECONNECT_FIRST_MS;
  const query = async (sql: string, values: unknown[] = []) => (await pool.query(sql, values)).rows;
  const first = async (sql: string, values: unknown[] = []) =>
    (await pool.query(sql, values)).rows[0] as Row | undefined;
  const changed = async (sql: string, values: unknown[]) =>
    ((await pool.query(sql, values)).rowCount ?? 0) > 0;
  /**
   * A write to catalog_models (without RETURNING) that notifies every hub on this store of each
   * row it changed, in the same statement and so in the same transaction: the notification goes
   * out on commit, or not at all. True when a row changed.
   */
  const catalogWrite = (sql: string, values: unknown[]) =>
    changed(
      `WITH written AS (${sql} RETURNING id)
        SELECT pg_notify(${CATALOG_CHANNEL}, id) FROM written`,
      values,
    );

  const tellCatalogListeners = () => {
    for (const listener of [...catalogListeners]) {
      try {
        listener();
      } catch {
        // The listener's own failure: the other listeners still hear.
      }
    }
  };

  const openMember = async (): Promise<PoolClient> => {
    const client = await pool.connect();
    let dropped = false;
    const drop = () => {
      if (dropped) return;
      dropped = true;
      // Destroyed, not handed back: its lock and LISTEN must not live on in the pool.
      client.release(true);
      if (member?.client !== client) return;
      member = undefined;
      unheard = true;
      reconnectLater();
    };
    // A lost connection has lost its lock and its LISTEN. Nothing is logged: the hub goes on, and
    // reconnectLater() opens another while the hub needs one.
    client.on("error", drop);
    client.on("notification", (message) => {
      if (!closed && message.channel === channel) tellCatalogListeners();
    });
    try {
      const { rows } = await client.query(
        `SELECT current_database() AS database, current_schema() AS schema,
          ${CATALOG_CHANNEL} AS channel`,
      );
      lockKey = instanceLockKey(String(rows[0]?.database), String(rows[0]?.schema));
      channel = String(rows[0]?.channel);
      if (registered) await client.query("SELECT pg_advisory_lock_shared($1::bigint)", [lockKey]);
      await client.query(`LISTEN ${channel}`);
    } catch (error) {
      drop();
      throw error;
    }
    if (closed) {
      drop();
      throw new Error("The database was closed.");
    }
    member = { client, drop };
    retryDelay = RECONNECT_FIRST_MS;
    if (unheard) {
      unheard = false;
      tellCatalogListeners();
    }
    return client;
  };

  const memberConnection = (): Promise<PoolClient> => {
    if (member) return Promise.resolve(member.client);
    connecting ??= openMember().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  /**
   * Opens the member connection again, backing off, while the hub needs it: it is registered as
   * live, or someone listens for catalog changes. Otherwise the next call that needs it opens it.
   */
  const reconnectLater = () => {
    if (closed || retry !== undefined) return;
    if (!registered && catalogListeners.size === 0) return;
    retry = setTimeout(() => {
      retry = undefined;
      memberConnection().catch(() => {
        retryDelay = Math.min(retryDelay * 2, RECONNECT_MAX_MS);
        reconnectLater();
      });
    }, retryDelay);
    // A hub is kept alive by its server; a CLI or a test must be free to exit.
    retry.unref();
  };

  const database: Database = {
    kind: "postgres",

    async createKey(record) {
      await pool.query(
        `INSERT INTO api_keys (id, name, role, secret_hash, models, rpm, ipm, balance_micros,
          created_at, revoked_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        keyValues(record),
      );
    },
    async findKey(id) {
      const row = await first("SELECT * FROM api_keys WHERE id = $1", [id]);
      return row ? keyFromRow(row) : undefined;
    },
    async listKeys() {
      return (await query('SELECT * FROM api_keys ORDER BY created_at, id COLLATE "C"')).map(
        keyFromRow,
      );
    },
    async countActiveKeys(role: KeyRole) {
      const row = await first(
        "SELECT COUNT(*) AS count FROM api_keys WHERE role = $1 AND revoked_at IS NULL",
        [role],
      );
      return Number(row?.count ?? 0);
    },
    async updateKey(id, changes) {
      const columns: Array<[string, unknown]> = [];
      if (changes.name !== undefined) columns.push(["name", changes.name]);
      if (changes.models !== undefined) columns.push(["models", modelsToText(changes.models)]);
      if (changes.rpm !== undefined) columns.push(["rpm", changes.rpm]);
      if (changes.ipm !== undefined) columns.push(["ipm", changes.ipm]);
      const row = await first(
        `UPDATE api_keys SET ${assignments(columns)} WHERE id = $1 RETURNING *`,
        [id, ...columns.map(([, value]) => value)],
      );
      return row ? keyFromRow(row) : undefined;
    },
    async replaceKeySecret(id, secretHash) {
      return changed("UPDATE api_keys SET secret_hash = $2 WHERE id = $1 AND revoked_at IS NULL", [
        id,
        secretHash,
      ]);
    },
    async revokeKey(id, at) {
      return changed("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", [
        id,
        at,
      ]);
    },
    async setBalance(id, balanceMicros) {
      const row = await first("UPDATE api_keys SET balance_micros = $2 WHERE id = $1 RETURNING *", [
        id,
        balanceMicros,
      ]);
      return row ? keyFromRow(row) : undefined;
    },
    async addCredit(id, amountMicros) {
      const row = await first(
        `UPDATE api_keys SET balance_micros = GREATEST(COALESCE(balance_micros, 0) + $2, 0)
          WHERE id = $1 RETURNING *`,
        [id, amountMicros],
      );
      return row ? keyFromRow(row) : undefined;
    },
    async touchKeys(lastUsed) {
      if (lastUsed.size === 0) return;
      await pool.query(
        // Never backwards: a batch flushed late must not undo a later one. GREATEST skips NULL.
        `UPDATE api_keys SET last_used_at = GREATEST(api_keys.last_used_at, touched.at)
          FROM unnest($1::text[], $2::bigint[]) AS touched (id, at)
          WHERE api_keys.id = touched.id`,
        [[...lastUsed.keys()], [...lastUsed.values()]],
      );
    },

    async reserve(reservation) {
      // Unlimited keys (NULL balance) match and keep NULL; a balance too small matches nothing,
      // so nothing is inserted and nothing changed.
      return changed(
        `WITH taken AS (
          UPDATE api_keys SET balance_micros = balance_micros - $3
            WHERE id = $2 AND (balance_micros IS NULL OR balance_micros >= $3)
            RETURNING id
        )
        INSERT INTO reservations (id, key_id, amount_micros, created_at, instance_id, request)
          SELECT $1, id, $3, $4, $5, $6 FROM taken`,
        reservationValues(reservation),
      );
    },
    async topUpReservation(reservationId, toMicros) {
      // The reservation's row is locked first, as settle and release lock it (by deleting it)
      // before the key's: a top-up racing either waits for it, and finds no row once it is gone,
      // so money is never taken for a reservation that will not give it back. The key's UPDATE
      // is re-checked as in `reserve`, so concurrent top-ups cannot overspend.
      return changed(
        `WITH held AS (
          SELECT key_id, GREATEST($2 - amount_micros, 0) AS extra
            FROM reservations WHERE id = $1 FOR UPDATE
        ), taken AS (
          UPDATE api_keys SET balance_micros = api_keys.balance_micros - held.extra
            FROM held
            WHERE api_keys.id = held.key_id
              AND (api_keys.balance_micros IS NULL OR api_keys.balance_micros >= held.extra)
            RETURNING api_keys.id
        )
        UPDATE reservations SET amount_micros = GREATEST(amount_micros, $2)
          FROM taken WHERE reservations.id = $1`,
        [reservationId, toMicros],
      );
    },
    async settle(reservationId, usage) {
      // The DELETE decides: a second settle (or one after releaseReservations) deletes nothing,
      // so it refunds nothing. What the usage cost beyond the reservation is not taken.
      await pool.query(
        `WITH released AS (
          DELETE FROM reservations WHERE id = $1 RETURNING key_id, amount_micros
        ), refunded AS (
          UPDATE api_keys SET balance_micros = api_keys.balance_micros + released.amount_micros - $2
            FROM released
            WHERE api_keys.id = released.key_id AND api_keys.balance_micros IS NOT NULL
              AND released.amount_micros > $2
        )
        ${insertUsage(2)} ${REPLACE_LOST_ROW}`,
        [reservationId, usage.costMicros, ...usageValues(usage)],
      );
    },
    async releaseReservations(before, now = Date.now()) {
      let released = 0;
      await transaction(pool, async (client) => {
        released = await release(client, "created_at < $1", [before], now);
      });
      return released;
    },
    async heartbeat(instanceId, startedAt, now) {
      await pool.query(
        `INSERT INTO hub_instances (id, started_at, heartbeat_at) VALUES ($1, $2, $3)
          ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at`,
        [instanceId, startedAt, now],
      );
    },
    async forgetInstance(instanceId) {
      await pool.query("DELETE FROM hub_instances WHERE id = $1", [instanceId]);
    },
    async releaseDeadInstances(deadBefore, now) {
      let instances: string[] = [];
      let released = 0;
      await transaction(pool, async (client) => {
        // The DELETE decides: of two hubs looking at once, one gets each dead instance.
        const dead = await client.query(
          "DELETE FROM hub_instances WHERE heartbeat_at < $1 RETURNING id",
          [deadBefore],
        );
        instances = dead.rows.map((row) => String(row.id));
        if (instances.length === 0) return;
        released = await release(client, "instance_id = ANY($1::text[])", [instances], now);
      });
      return { instances, released };
    },

    async recordUsage(record) {
      await pool.query(insertUsage(0), usageValues(record));
    },
    async listUsage(filter) {
      const { where, values } = numbered(usageWhere(filter));
      values.push(filter.limit, filter.offset ?? 0);
      const rows = await query(
        `SELECT * FROM usage_records ${where}
          ORDER BY created_at DESC, id COLLATE "C" DESC
          LIMIT $${values.length - 1} OFFSET $${values.length}`,
        values,
      );
      return rows.map(usageFromRow);
    },
    async usageTotals(filter, by) {
      const { where, values } = numbered(usageWhere(filter));
      const group =
        by === "day"
          ? `to_char(to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
          : "model";
      const rows = await query(
        `SELECT ${group} COLLATE "C" AS "group", COUNT(*) AS requests,
            SUM(images_requested) AS images_requested, SUM(images_delivered) AS images_delivered,
            SUM(cost_micros) AS cost_micros
          FROM usage_records ${where}
          GROUP BY 1 ORDER BY 1`,
        values,
      );
      return rows.map(
        (row): UsageTotal => ({
          group: String(row.group),
          requests: Number(row.requests),
          imagesRequested: Number(row.images_requested),
          imagesDelivered: Number(row.images_delivered),
          costMicros: Number(row.cost_micros),
        }),
      );
    },

    async listImagePrices() {
      const rows = await query(
        'SELECT * FROM image_prices ORDER BY model COLLATE "C", size COLLATE "C", quality COLLATE "C"',
      );
      return rows.map(imagePriceFromRow);
    },
    async listTokenPrices() {
      const rows = await query('SELECT * FROM token_prices ORDER BY model COLLATE "C"');
      return rows.map(tokenPriceFromRow);
    },
    async putImagePrice(price) {
      await pool.query(
        `INSERT INTO image_prices (model, size, quality, micros_per_image, source, updated_at)
          VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (model, size, quality) DO UPDATE SET micros_per_image = excluded.micros_per_image,
            source = excluded.source, updated_at = excluded.updated_at`,
        imagePriceValues(price),
      );
    },
    async putTokenPrice(price) {
      await pool.query(
        `INSERT INTO token_prices (model, text_input_per_million, image_input_per_million,
            output_per_million, source, updated_at)
          VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (model) DO UPDATE SET text_input_per_million = excluded.text_input_per_million,
            image_input_per_million = excluded.image_input_per_million,
            output_per_million = excluded.output_per_million,
            source = excluded.source, updated_at = excluded.updated_at`,
        tokenPriceValues(price),
      );
    },
    async deleteImagePrice(model, size, quality) {
      return changed("DELETE FROM image_prices WHERE model = $1 AND size = $2 AND quality = $3", [
        model,
        size,
        quality,
      ]);
    },
    async seedPrices(images, tokens) {
      // Columns as arrays: one statement per table whatever the number of prices.
      await transaction(pool, async (client) => {
        await client.query(
          `INSERT INTO image_prices (model, size, quality, micros_per_image, source, updated_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
              $6::bigint[])
            ON CONFLICT DO NOTHING`,
          columnsOf(images.map(imagePriceValues), 6),
        );
        await client.query(
          `INSERT INTO token_prices (model, text_input_per_million, image_input_per_million,
              output_per_million, source, updated_at)
            SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[],
              $5::text[], $6::bigint[])
            ON CONFLICT DO NOTHING`,
          columnsOf(tokens.map(tokenPriceValues), 6),
        );
      });
    },

    async createCredential(record) {
      await pool.query(
        `INSERT INTO provider_credentials (id, provider, name, encrypted_key, key_hint, base_url,
          weight, created_at, disabled_at, kind, options)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        credentialValues(record),
      );
    },
    async listCredentials() {
      const rows = await query(
        'SELECT * FROM provider_credentials ORDER BY created_at, id COLLATE "C"',
      );
      return rows.map(credentialFromRow);
    },
    async updateCredential(id, changes) {
      const columns: Array<[string, unknown]> = [];
      if (changes.name !== undefined) columns.push(["name", changes.name]);
      if (changes.weight !== undefined) columns.push(["weight", changes.weight]);
      if (changes.disabledAt !== undefined) columns.push(["disabled_at", changes.disabledAt]);
      const row = await first(
        `UPDATE provider_credentials SET ${assignments(columns)} WHERE id = $1 RETURNING *`,
        [id, ...columns.map(([, value]) => value)],
      );
      return row ? credentialFromRow(row) : undefined;
    },
    async deleteCredential(id) {
      return changed("DELETE FROM provider_credentials WHERE id = $1", [id]);
    },

    async listModelRoutes() {
      const rows = await query('SELECT * FROM model_routes ORDER BY model COLLATE "C"');
      return rows.map(modelRouteFromRow);
    },
    async putModelRoute(record) {
      await pool.query(
        `INSERT INTO model_routes (model, fallbacks, timeout_ms, retry_billable, updated_at)
          VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (model) DO UPDATE SET fallbacks = excluded.fallbacks,
            timeout_ms = excluded.timeout_ms, retry_billable = excluded.retry_billable,
            updated_at = excluded.updated_at`,
        modelRouteValues(record),
      );
    },
    async deleteModelRoute(model) {
      return changed("DELETE FROM model_routes WHERE model = $1", [model]);
    },

    async listCatalogModels() {
      const rows = await query('SELECT * FROM catalog_models ORDER BY id COLLATE "C"');
      return rows.map(catalogModelFromRow);
    },

    async addHostedImages(images) {
      if (images.length === 0) return;
      const width = 10;
      const placeholders = images
        .map(
          (_, row) =>
            `(${Array.from({ length: width }, (_, column) => `$${row * width + column + 1}`).join(", ")})`,
        )
        .join(", ");
      await pool.query(
        `INSERT INTO hosted_images (${HOSTED_IMAGE_COLUMNS}) VALUES ${placeholders}
          ON CONFLICT (name) DO NOTHING`,
        images.flatMap(hostedImageValues),
      );
    },
    async listHostedImages(filter) {
      const { where, values } = numbered(hostedImageWhere(filter));
      const rows = await query(
        `SELECT * FROM hosted_images ${where} ORDER BY created_at DESC, name COLLATE "C" LIMIT $${values.length + 1}`,
        [...values, filter.limit],
      );
      return rows.map(hostedImageFromRow);
    },
    async deleteExpiredHostedImages(now) {
      const result = await pool.query("DELETE FROM hosted_images WHERE expires_at <= $1", [now]);
      return result.rowCount ?? 0;
    },

    async putUpstreamTask(record) {
      await pool.query(
        `INSERT INTO upstream_tasks (${UPSTREAM_TASK_COLUMNS})
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
          ON CONFLICT (provider, task_id) DO UPDATE SET state = excluded.state`,
        upstreamTaskValues(record),
      );
    },
    async deleteUpstreamTask(provider, taskId) {
      return changed("DELETE FROM upstream_tasks WHERE provider = $1 AND task_id = $2", [
        provider,
        taskId,
      ]);
    },
    async listUpstreamTasks() {
      const rows = await query(
        'SELECT * FROM upstream_tasks ORDER BY created_at, task_id COLLATE "C"',
      );
      return rows.map(upstreamTaskFromRow);
    },
    async putCatalogModel(record) {
      await catalogWrite(
        `INSERT INTO catalog_models (id, definition, hidden, updated_at) VALUES ($1, $2, $3, $4)
          ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
            hidden = excluded.hidden, updated_at = excluded.updated_at`,
        catalogModelValues(record),
      );
    },
    async insertCatalogModel(record) {
      // One statement: against a visible row the upsert's WHERE is false and nothing changes; two
      // hubs inserting at once queue on the row, and the second sees the first's visible row.
      return catalogWrite(
        `INSERT INTO catalog_models (id, definition, hidden, updated_at) VALUES ($1, $2, $3, $4)
          ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
            hidden = excluded.hidden, updated_at = excluded.updated_at
            WHERE catalog_models.hidden = 1`,
        catalogModelValues(record),
      );
    },
    async deleteCatalogModel(id) {
      return catalogWrite("DELETE FROM catalog_models WHERE id = $1", [id]);
    },
    onCatalogChange(listener) {
      catalogListeners.add(listener);
      if (!closed && member === undefined) {
        memberConnection().catch(() => {
          unheard = true;
          reconnectLater();
        });
      }
      return () => {
        catalogListeners.delete(listener);
      };
    },

    async releaseReservationsIfAlone(before) {
      const client = await memberConnection();
      if (!registered) {
        await client.query("SELECT pg_advisory_lock_shared($1::bigint)", [lockKey]);
        registered = true;
      }
      const key = lockKey;
      const { rows } = await client.query("SELECT pg_try_advisory_lock($1::bigint) AS alone", [
        key,
      ]);
      if (rows[0]?.alone !== true) return undefined;
      try {
        // Held exclusively: a hub starting now waits here, so none of its reservations is taken.
        return await database.releaseReservations(before);
      } finally {
        await client.query("SELECT pg_advisory_unlock($1::bigint)", [key]);
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(retry);
      catalogListeners.clear();
      // A connection being opened sees `closed` when it is done, and drops itself.
      await connecting?.catch(() => {});
      member?.drop();
      await pool.end();
    },
  };
  return database;
}

/**
 * Applies the migrations not yet recorded, each in its own transaction. Every transaction takes
 * the same advisory lock first and re-reads what is applied under it, so hubs starting together
 * migrate one after the other and the later ones find nothing to do.
 */
async function migrate(pool: Pool, schema: string | undefined): Promise<void> {
  const client = await pool.connect();
  try {
    await inTransaction(client, async () => {
      await client.query(LOCK_MIGRATIONS);
      if (schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      );
    });
    for (const migration of MIGRATIONS) {
      await inTransaction(client, async () => {
        await client.query(LOCK_MIGRATIONS);
        const applied = await client.query("SELECT 1 FROM schema_migrations WHERE version = $1", [
          migration.version,
        ]);
        if (applied.rowCount) return;
        await client.query(migration.sql);
        await client.query(
          "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
          [migration.version, migration.name, Date.now()],
        );
      });
    }
  } finally {
    client.release();
  }
}

/**
 * Releases the reservations `condition` picks (none with a task in flight: task recovery settles
 * those), gives their amounts back and writes their lost requests' rows, within the caller's
 * transaction; returns how many.
 */
async function release(
  client: PoolClient,
  condition: string,
  values: unknown[],
  now: number,
): Promise<number> {
  const { rows } = await client.query(
    `DELETE FROM reservations WHERE ${condition}
      AND id NOT IN (SELECT reservation_id FROM upstream_tasks)
      RETURNING *`,
    values,
  );
  const owed = new Map<string, number>();
  for (const row of rows) {
    owed.set(String(row.key_id), (owed.get(String(row.key_id)) ?? 0) + Number(row.amount_micros));
  }
  for (const [keyId, amount] of owed) {
    await client.query(
      "UPDATE api_keys SET balance_micros = balance_micros + $1 WHERE id = $2 AND balance_micros IS NOT NULL",
      [amount, keyId],
    );
  }
  for (const row of rows) {
    const lost = lostUsageRecord(row, now);
    if (lost) {
      await client.query(`${insertUsage(0)} ON CONFLICT (id) DO NOTHING`, usageValues(lost));
    }
  }
  return rows.length;
}

async function transaction(pool: Pool, work: (client: PoolClient) => Promise<void>) {
  const client = await pool.connect();
  try {
    await inTransaction(client, () => work(client));
  } finally {
    client.release();
  }
}

async function inTransaction(client: PoolClient, work: () => Promise<void>): Promise<void> {
  await client.query("BEGIN");
  try {
    await work();
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

/**
 * A request whose reservation was released as lost (its hub thought dead) and that ended after
 * all replaces the lost row with what really happened.
 */
const REPLACE_LOST_ROW = `ON CONFLICT (id) DO UPDATE SET ${USAGE_COLUMNS.filter(
  (column) => column !== "id",
)
  .map((column) => `${column} = EXCLUDED.${column}`)
  .join(", ")}`;

/** Inserts the usageValues() given after the first `offset` parameters of the statement. */
function insertUsage(offset: number): string {
  const placeholders = USAGE_COLUMNS.map((_, index) => `$${offset + index + 1}`);
  return `INSERT INTO usage_records (${USAGE_COLUMNS.join(", ")}) VALUES (${placeholders.join(", ")})`;
}

/**
 * `column = $2, …` for an UPDATE whose `$1` is the id. With no changes, `id = id` still returns
 * the row as it is (or nothing for an unknown id).
 */
function assignments(columns: Array<[string, unknown]>): string {
  if (columns.length === 0) return "id = id";
  return columns.map(([column], index) => `${column} = $${index + 2}`).join(", ");
}

/** Rows of values → one array per column, for `unnest`. */
function columnsOf(rows: unknown[][], width: number): unknown[][] {
  return Array.from({ length: width }, (_, column) => rows.map((row) => row[column]));
}

/** A WHERE written with `?` placeholders (rows.ts, shared with SQLite) in PostgreSQL's `$n`. */
function numbered(clause: { where: string; values: SqlValue[] }): {
  where: string;
  values: unknown[];
} {
  let index = 0;
  return { where: clause.where.replaceAll("?", () => `$${++index}`), values: [...clause.values] };
}
