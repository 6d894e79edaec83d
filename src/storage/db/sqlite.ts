/**
 * The embedded backend: one SQLite file in DATA_DIR through node:sqlite, in WAL mode so readers
 * never wait for the writer. node:sqlite is synchronous: each method runs to completion before
 * any other JavaScript, so a read-check-write inside one method is atomic within this process,
 * and `BEGIN IMMEDIATE` takes the write lock first so it stays atomic across processes (the
 * CLI next to a running hub).
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { groupCommit } from "./group-commit.ts";
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
  reservationValues,
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
import type { Database, KeyRole, UsageRecord, UsageTotal } from "./types.ts";

export function openSqliteDatabase(file: string): Database {
  if (file !== ":memory:") mkdirSync(path.dirname(file), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
  migrate(db);

  const transaction = <T>(work: () => T): T => {
    db.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      db.exec("COMMIT");
      return result;
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  };

  const statements = {
    insertKey: db.prepare(`INSERT INTO api_keys (id, name, role, secret_hash, models, rpm, ipm,
      balance_micros, created_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    selectKey: db.prepare("SELECT * FROM api_keys WHERE id = ?"),
    selectKeys: db.prepare("SELECT * FROM api_keys ORDER BY created_at, id"),
    countKeys: db.prepare(
      "SELECT COUNT(*) AS count FROM api_keys WHERE role = ? AND revoked_at IS NULL",
    ),
    replaceSecret: db.prepare(
      "UPDATE api_keys SET secret_hash = ? WHERE id = ? AND revoked_at IS NULL",
    ),
    revokeKey: db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
    setBalance: db.prepare("UPDATE api_keys SET balance_micros = ? WHERE id = ?"),
    addCredit: db.prepare(
      "UPDATE api_keys SET balance_micros = MAX(0, COALESCE(balance_micros, 0) + ?) WHERE id = ?",
    ),
    touchKey: db.prepare(
      "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
    ),
    takeBalance: db.prepare(
      "UPDATE api_keys SET balance_micros = balance_micros - ? WHERE id = ? AND balance_micros >= ?",
    ),
    selectBalance: db.prepare("SELECT balance_micros FROM api_keys WHERE id = ?"),
    insertReservation: db.prepare(
      "INSERT INTO reservations (id, key_id, amount_micros, created_at, instance_id, request) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    selectReservation: db.prepare("SELECT key_id, amount_micros FROM reservations WHERE id = ?"),
    raiseReservation: db.prepare("UPDATE reservations SET amount_micros = ? WHERE id = ?"),
    deleteReservation: db.prepare(
      "DELETE FROM reservations WHERE id = ? RETURNING key_id, amount_micros",
    ),
    refund: db.prepare(
      "UPDATE api_keys SET balance_micros = balance_micros + ? WHERE id = ? AND balance_micros IS NOT NULL",
    ),
    // A reservation with a task in flight is task-recovery's to settle, not released here.
    oldReservations: db.prepare(`SELECT * FROM reservations
      WHERE created_at < ? AND id NOT IN (SELECT reservation_id FROM upstream_tasks)`),
    instanceReservations: db.prepare(`SELECT * FROM reservations
      WHERE instance_id = ? AND id NOT IN (SELECT reservation_id FROM upstream_tasks)`),
    heartbeat: db.prepare(`INSERT INTO hub_instances (id, started_at, heartbeat_at) VALUES (?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`),
    forgetInstance: db.prepare("DELETE FROM hub_instances WHERE id = ?"),
    deadInstances: db.prepare("DELETE FROM hub_instances WHERE heartbeat_at < ? RETURNING id"),
    insertLostUsage: db.prepare(
      `INSERT OR IGNORE INTO usage_records (${USAGE_COLUMNS.join(", ")})
        VALUES (${USAGE_COLUMNS.map(() => "?").join(", ")})`,
    ),
    putUpstreamTask: db.prepare(
      `INSERT OR REPLACE INTO upstream_tasks (${UPSTREAM_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteUpstreamTask: db.prepare("DELETE FROM upstream_tasks WHERE provider = ? AND task_id = ?"),
    insertHostedImage: db.prepare(
      `INSERT OR REPLACE INTO hosted_images (${HOSTED_IMAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteExpiredHostedImages: db.prepare("DELETE FROM hosted_images WHERE expires_at <= ?"),
    selectUpstreamTasks: db.prepare("SELECT * FROM upstream_tasks ORDER BY created_at, task_id"),
    // A request whose reservation was released as lost (its hub thought dead) and that ended
    // after all replaces the lost row with what really happened.
    insertUsage: db.prepare(
      `INSERT OR REPLACE INTO usage_records (${USAGE_COLUMNS.join(", ")})
        VALUES (${USAGE_COLUMNS.map(() => "?").join(", ")})`,
    ),
    selectImagePrices: db.prepare("SELECT * FROM image_prices ORDER BY model, size, quality"),
    selectTokenPrices: db.prepare("SELECT * FROM token_prices ORDER BY model"),
    putImagePrice: db.prepare(`INSERT INTO image_prices (model, size, quality, micros_per_image,
      source, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model, size, quality) DO UPDATE SET
      micros_per_image = excluded.micros_per_image, source = excluded.source,
      updated_at = excluded.updated_at`),
    seedImagePrice: db.prepare(`INSERT INTO image_prices (model, size, quality, micros_per_image,
      source, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model, size, quality) DO NOTHING`),
    deleteImagePrice: db.prepare(
      "DELETE FROM image_prices WHERE model = ? AND size = ? AND quality = ?",
    ),
    putTokenPrice: db.prepare(`INSERT INTO token_prices (model, text_input_per_million,
      image_input_per_million, output_per_million, source, updated_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (model) DO UPDATE SET text_input_per_million = excluded.text_input_per_million,
      image_input_per_million = excluded.image_input_per_million,
      output_per_million = excluded.output_per_million, source = excluded.source,
      updated_at = excluded.updated_at`),
    seedTokenPrice: db.prepare(`INSERT INTO token_prices (model, text_input_per_million,
      image_input_per_million, output_per_million, source, updated_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (model) DO NOTHING`),
    insertCredential: db.prepare(`INSERT INTO provider_credentials (id, provider, name,
      encrypted_key, key_hint, base_url, weight, created_at, disabled_at, kind, options)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    selectCredentials: db.prepare("SELECT * FROM provider_credentials ORDER BY created_at, id"),
    selectCredential: db.prepare("SELECT * FROM provider_credentials WHERE id = ?"),
    deleteCredential: db.prepare("DELETE FROM provider_credentials WHERE id = ?"),
    selectModelRoutes: db.prepare("SELECT * FROM model_routes ORDER BY model"),
    putModelRoute: db.prepare(`INSERT INTO model_routes (model, fallbacks, timeout_ms,
      retry_billable, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (model) DO UPDATE SET
      fallbacks = excluded.fallbacks, timeout_ms = excluded.timeout_ms,
      retry_billable = excluded.retry_billable, updated_at = excluded.updated_at`),
    deleteModelRoute: db.prepare("DELETE FROM model_routes WHERE model = ?"),
    selectCatalogModels: db.prepare("SELECT * FROM catalog_models ORDER BY id"),
    putCatalogModel: db.prepare(`INSERT INTO catalog_models (id, definition, hidden, updated_at)
      VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
      hidden = excluded.hidden, updated_at = excluded.updated_at`),
    // One statement: a visible row makes the upsert's WHERE false, so nothing changes.
    insertCatalogModel: db.prepare(`INSERT INTO catalog_models (id, definition, hidden, updated_at)
      VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
      hidden = excluded.hidden, updated_at = excluded.updated_at
      WHERE catalog_models.hidden = 1`),
    deleteCatalogModel: db.prepare("DELETE FROM catalog_models WHERE id = ?"),
  };

  const catalogListeners = new Set<() => void>();
  /** After a write that changed catalog_models, once it is committed. */
  const catalogChanged = () => {
    for (const listener of [...catalogListeners]) {
      try {
        listener();
      } catch {
        // The listener's own failure: the write stands, and the other listeners still hear.
      }
    }
  };

  /**
   * Takes `micros` from the key's balance if it covers them (a key without a balance always
   * covers them); false, and nothing taken, when it does not or the key is gone. Inside a
   * transaction.
   */
  const takeCredit = (keyId: string, micros: number): boolean => {
    const row = statements.selectBalance.get(keyId);
    if (!row) return false;
    if (row.balance_micros === null) return true;
    return Number(statements.takeBalance.run(micros, keyId, micros).changes) === 1;
  };

  const findKey = (id: string) => {
    const row = statements.selectKey.get(id);
    return row ? keyFromRow(row) : undefined;
  };

  const insertUsage = (record: UsageRecord) => {
    statements.insertUsage.run(...usageValues(record));
  };

  // The rows every request writes at its end (its usage row when it reserved nothing, as keys
  // without a balance do; its hosted images for the gallery), one commit per turn of the event
  // loop for all of them (group-commit.ts).
  const writeRows = groupCommit<() => void>(
    (writes) =>
      transaction(() => {
        for (const write of writes) write();
      }),
    (write) => transaction(write),
  );

  /** Gives reservations back and writes their lost requests' rows; inside a transaction. */
  const release = (rows: Record<string, unknown>[], now: number): number => {
    for (const row of rows) {
      statements.deleteReservation.get(String(row.id));
      statements.refund.run(Number(row.amount_micros), String(row.key_id));
      const lost = lostUsageRecord(row, now);
      if (lost) statements.insertLostUsage.run(...usageValues(lost));
    }
    return rows.length;
  };

  return {
    kind: "sqlite",

    async createKey(record) {
      statements.insertKey.run(...keyValues(record));
    },
    async findKey(id) {
      return findKey(id);
    },
    async listKeys() {
      return statements.selectKeys.all().map(keyFromRow);
    },
    async countActiveKeys(role: KeyRole) {
      return Number((statements.countKeys.get(role) as { count: number }).count);
    },
    async updateKey(id, changes) {
      const columns: Record<string, SQLInputValue> = {};
      if (changes.name !== undefined) columns.name = changes.name;
      if (changes.models !== undefined) {
        columns.models = modelsToText(changes.models);
      }
      if (changes.rpm !== undefined) columns.rpm = changes.rpm;
      if (changes.ipm !== undefined) columns.ipm = changes.ipm;
      const names = Object.keys(columns);
      if (names.length > 0) {
        db.prepare(
          `UPDATE api_keys SET ${names.map((name) => `${name} = ?`).join(", ")} WHERE id = ?`,
        ).run(...Object.values(columns), id);
      }
      return findKey(id);
    },
    async replaceKeySecret(id, secretHash) {
      return Number(statements.replaceSecret.run(secretHash, id).changes) === 1;
    },
    async revokeKey(id, at) {
      return Number(statements.revokeKey.run(at, id).changes) === 1;
    },
    async setBalance(id, balanceMicros) {
      statements.setBalance.run(balanceMicros, id);
      return findKey(id);
    },
    async addCredit(id, amountMicros) {
      statements.addCredit.run(amountMicros, id);
      return findKey(id);
    },
    async touchKeys(lastUsed) {
      if (lastUsed.size === 0) return;
      transaction(() => {
        for (const [id, at] of lastUsed) statements.touchKey.run(at, id);
      });
    },

    async reserve(reservation) {
      return transaction(() => {
        if (!takeCredit(reservation.keyId, reservation.amountMicros)) return false;
        statements.insertReservation.run(...reservationValues(reservation));
        return true;
      });
    },
    async topUpReservation(reservationId, toMicros) {
      return transaction(() => {
        const held = statements.selectReservation.get(reservationId);
        if (!held) return false;
        const extra = toMicros - Number(held.amount_micros);
        if (extra <= 0) return true;
        if (!takeCredit(String(held.key_id), extra)) return false;
        statements.raiseReservation.run(toMicros, reservationId);
        return true;
      });
    },
    async settle(reservationId, usage) {
      transaction(() => {
        const held = statements.deleteReservation.get(reservationId);
        if (held) {
          const refund = Number(held.amount_micros) - usage.costMicros;
          if (refund > 0) statements.refund.run(refund, String(held.key_id));
        }
        insertUsage(usage);
      });
    },
    // One hub owns the file (it is local to one machine): at start, every open one is dead.
    async releaseReservationsIfAlone(before) {
      return this.releaseReservations(before);
    },
    async releaseReservations(before, now = Date.now()) {
      return transaction(() => release(statements.oldReservations.all(before), now));
    },
    async heartbeat(instanceId, startedAt, now) {
      statements.heartbeat.run(instanceId, startedAt, now);
    },
    async forgetInstance(instanceId) {
      statements.forgetInstance.run(instanceId);
    },
    async releaseDeadInstances(deadBefore, now) {
      return transaction(() => {
        const instances = statements.deadInstances.all(deadBefore).map((row) => String(row.id));
        let released = 0;
        for (const id of instances) {
          released += release(statements.instanceReservations.all(id), now);
        }
        return { instances, released };
      });
    },

    recordUsage: (record) => writeRows(() => insertUsage(record)),
    async listUsage(filter) {
      const { where, values } = usageWhere(filter);
      return db
        .prepare(
          `SELECT * FROM usage_records ${where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`,
        )
        .all(...values, filter.limit, filter.offset ?? 0)
        .map(usageFromRow);
    },
    async usageTotals(filter, by) {
      const { where, values } = usageWhere(filter);
      const group = by === "day" ? "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')" : "model";
      return db
        .prepare(`SELECT ${group} AS grp, COUNT(*) AS requests,
          SUM(images_requested) AS requested, SUM(images_delivered) AS delivered,
          SUM(cost_micros) AS cost FROM usage_records ${where} GROUP BY grp ORDER BY grp`)
        .all(...values)
        .map(
          (row): UsageTotal => ({
            group: String(row.grp),
            requests: Number(row.requests),
            imagesRequested: Number(row.requested),
            imagesDelivered: Number(row.delivered),
            costMicros: Number(row.cost),
          }),
        );
    },

    async listImagePrices() {
      return statements.selectImagePrices.all().map(imagePriceFromRow);
    },
    async listTokenPrices() {
      return statements.selectTokenPrices.all().map(tokenPriceFromRow);
    },
    async putImagePrice(price) {
      statements.putImagePrice.run(...imagePriceValues(price));
    },
    async putTokenPrice(price) {
      statements.putTokenPrice.run(...tokenPriceValues(price));
    },
    async deleteImagePrice(model, size, quality) {
      return Number(statements.deleteImagePrice.run(model, size, quality).changes) === 1;
    },
    async seedPrices(images, tokens) {
      transaction(() => {
        for (const price of images) statements.seedImagePrice.run(...imagePriceValues(price));
        for (const price of tokens) statements.seedTokenPrice.run(...tokenPriceValues(price));
      });
    },

    async createCredential(record) {
      statements.insertCredential.run(...credentialValues(record));
    },
    async listCredentials() {
      return statements.selectCredentials.all().map(credentialFromRow);
    },
    async updateCredential(id, changes) {
      const columns: Record<string, SQLInputValue> = {};
      if (changes.name !== undefined) columns.name = changes.name;
      if (changes.weight !== undefined) columns.weight = changes.weight;
      if (changes.disabledAt !== undefined) columns.disabled_at = changes.disabledAt;
      const names = Object.keys(columns);
      if (names.length > 0) {
        db.prepare(
          `UPDATE provider_credentials SET ${names.map((name) => `${name} = ?`).join(", ")} WHERE id = ?`,
        ).run(...Object.values(columns), id);
      }
      const row = statements.selectCredential.get(id);
      return row ? credentialFromRow(row) : undefined;
    },
    async deleteCredential(id) {
      return Number(statements.deleteCredential.run(id).changes) === 1;
    },

    async listModelRoutes() {
      return statements.selectModelRoutes.all().map(modelRouteFromRow);
    },
    async putModelRoute(record) {
      statements.putModelRoute.run(...modelRouteValues(record));
    },
    async deleteModelRoute(model) {
      return Number(statements.deleteModelRoute.run(model).changes) === 1;
    },

    async listCatalogModels() {
      return statements.selectCatalogModels.all().map(catalogModelFromRow);
    },

    addHostedImages: (images) =>
      writeRows(() => {
        for (const image of images) statements.insertHostedImage.run(...hostedImageValues(image));
      }),
    async listHostedImages(filter) {
      const { where, values } = hostedImageWhere(filter);
      return db
        .prepare(`SELECT * FROM hosted_images ${where} ORDER BY created_at DESC, name LIMIT ?`)
        .all(...(values as SQLInputValue[]), filter.limit)
        .map(hostedImageFromRow);
    },
    async deleteExpiredHostedImages(now) {
      return Number(statements.deleteExpiredHostedImages.run(now).changes);
    },

    async putUpstreamTask(record) {
      statements.putUpstreamTask.run(...upstreamTaskValues(record));
    },
    async deleteUpstreamTask(provider, taskId) {
      return Number(statements.deleteUpstreamTask.run(provider, taskId).changes) === 1;
    },
    async listUpstreamTasks() {
      return statements.selectUpstreamTasks.all().map(upstreamTaskFromRow);
    },
    async putCatalogModel(record) {
      statements.putCatalogModel.run(...catalogModelValues(record));
      catalogChanged();
    },
    async insertCatalogModel(record) {
      const inserted =
        Number(statements.insertCatalogModel.run(...catalogModelValues(record)).changes) === 1;
      if (inserted) catalogChanged();
      return inserted;
    },
    async deleteCatalogModel(id) {
      const deleted = Number(statements.deleteCatalogModel.run(id).changes) === 1;
      if (deleted) catalogChanged();
      return deleted;
    },
    // One hub owns the file: its own writes are the ones to hear.
    onCatalogChange(listener) {
      catalogListeners.add(listener);
      return () => {
        catalogListeners.delete(listener);
      };
    },

    async close() {
      catalogListeners.clear();
      if (db.isOpen) db.close();
    },
  };
}

function migrate(db: DatabaseSync): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
  );
  db.exec("BEGIN IMMEDIATE");
  try {
    const applied = new Set(
      db
        .prepare("SELECT version FROM schema_migrations")
        .all()
        .map((row) => Number(row.version)),
    );
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      db.exec(migration.sql);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
        migration.version,
        migration.name,
        Date.now(),
      );
    }
    db.exec("COMMIT");
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}
