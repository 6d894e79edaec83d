/**
 * The Database contract (src/storage/db/types.ts), run against every backend: the same calls
 * must leave the same rows and the same money, to the micro-dollar.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { MIGRATIONS } from "../../../src/storage/db/migrations.ts";
import { openDatabase } from "../../../src/storage/db/open.ts";
import { openPostgresDatabase } from "../../../src/storage/db/postgres.ts";
import type {
  ApiKeyRecord,
  CatalogModelRecord,
  Database,
  FallbackTarget,
  ImagePrice,
  ModelRouteRecord,
  ProviderCredentialRecord,
  TokenPrice,
  UsageFilter,
  UsageRecord,
} from "../../../src/storage/db/types.ts";
import {
  backends,
  createSchema,
  dropSchema,
  freshSchemaName,
  type OpenedDatabase,
  postgresUrl,
} from "./backends.ts";

const DAY = 86_400_000;
/** 2025-01-30T00:00:00.000Z */
const T0 = Date.UTC(2025, 0, 30);
/** What one image costs in these tests: $0.04. */
const PRICE = 40_000;

const postgres = backends.find((backend) => backend.name === "postgres");

const TABLES = [
  "api_keys",
  "catalog_models",
  "hosted_images",
  "hub_instances",
  "image_prices",
  "model_routes",
  "provider_credentials",
  "reservations",
  "schema_migrations",
  "token_prices",
  "upstream_tasks",
  "usage_records",
];

function key(overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id: "k1",
    name: "first",
    role: "client",
    secretHash: "a".repeat(64),
    models: null,
    rpm: null,
    ipm: null,
    balanceMicros: null,
    createdAt: T0,
    revokedAt: null,
    lastUsedAt: null,
    ...overrides,
  };
}

function usage(id: string, overrides: Partial<UsageRecord> = {}): UsageRecord {
  return {
    id,
    keyId: "k1",
    model: "dall-e-3",
    requestedModel: null,
    app: null,
    provider: "openai",
    imagesRequested: 1,
    imagesDelivered: 1,
    size: "1024x1024",
    quality: "standard",
    responseFormat: "url",
    status: "succeeded",
    errorCode: null,
    latencyMs: 1200,
    upstreamLatencyMs: 1100,
    costMicros: 0,
    inputTokens: null,
    outputTokens: null,
    createdAt: T0,
    ...overrides,
  };
}

function imagePrice(overrides: Partial<ImagePrice> = {}): ImagePrice {
  return {
    model: "dall-e-3",
    size: "1024x1024",
    quality: "standard",
    microsPerImage: PRICE,
    source: "https://openai.com/api/pricing/",
    updatedAt: T0,
    ...overrides,
  };
}

function tokenPrice(overrides: Partial<TokenPrice> = {}): TokenPrice {
  return {
    model: "gpt-image-1",
    textInputPerMillion: 5,
    imageInputPerMillion: 10,
    outputPerMillion: 40,
    source: "https://openai.com/api/pricing/",
    updatedAt: T0,
    ...overrides,
  };
}

function credential(overrides: Partial<ProviderCredentialRecord> = {}): ProviderCredentialRecord {
  return {
    id: "c1",
    provider: "openai",
    name: "main",
    encryptedKey: "v1.iv.tag.ciphertext",
    keyHint: "…x9Qa",
    baseUrl: null,
    weight: 1,
    createdAt: T0,
    disabledAt: null,
    kind: null,
    options: null,
    ...overrides,
  };
}

function catalogModel(overrides: Partial<CatalogModelRecord> = {}): CatalogModelRecord {
  return {
    id: "acme-image-2",
    definition: JSON.stringify({ provider: "openai", sizes: ["1024x1024"], label: "Acme ✓" }),
    hidden: false,
    updatedAt: T0,
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `done()` holds, checking every 10 ms; fails after `ms`. */
async function eventually(done: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
}

/** A listener that counts its calls. */
function ear() {
  const counted = {
    calls: 0,
    listener: () => {
      counted.calls += 1;
    },
  };
  return counted;
}

/**
 * PostgreSQL starts listening within a round trip of onCatalogChange, not before it returns:
 * writes until every ear has heard one, lets late notifications arrive, then zeroes the counts.
 */
async function untilListening(write: () => Promise<unknown>, ...ears: Array<{ calls: number }>) {
  const deadline = Date.now() + 5000;
  while (!ears.every((counted) => counted.calls > 0)) {
    if (Date.now() > deadline) assert.fail("no listener heard a write within 5000 ms");
    await write();
    const patience = Date.now() + 300;
    while (!ears.every((counted) => counted.calls > 0) && Date.now() < patience) await sleep(10);
  }
  await sleep(200);
  for (const counted of ears) counted.calls = 0;
}

function route(overrides: Partial<ModelRouteRecord> = {}): ModelRouteRecord {
  return {
    model: "dall-e-3",
    fallbacks: [
      { model: "gpt-image-1", credentialId: null },
      { model: "dall-e-3", credentialId: "cred_backup" },
    ],
    timeoutMs: 90_000,
    retryBillable: false,
    updatedAt: T0,
    ...overrides,
  };
}

for (const backend of backends) {
  describe(`database: ${backend.name}`, { skip: backend.skip }, () => {
    let opened: OpenedDatabase | undefined;
    const db = (): Database => {
      assert.ok(opened, "the database did not open");
      return opened.db;
    };
    const query = (sql: string) => {
      assert.ok(opened, "the database did not open");
      return opened.query(sql);
    };
    const count = async (table: string) =>
      Number((await query(`SELECT COUNT(*) AS count FROM ${table}`))[0]?.count);
    const balance = async (id = "k1") => (await db().findKey(id))?.balanceMicros;

    beforeEach(async () => {
      opened = await backend.open();
    });
    afterEach(async () => {
      await opened?.drop();
      opened = undefined;
    });

    describe("migrations", () => {
      const tablesSql =
        backend.name === "sqlite"
          ? "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
          : "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1";
      const versionsSql =
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version";

      it("creates every table on an empty store", async () => {
        const names = (await query(tablesSql)).map((row) => String(row.name)).sort();
        assert.deepEqual(names, TABLES);
      });

      it("lists every migration in the version table", async () => {
        const rows = await query(versionsSql);
        assert.deepEqual(
          rows.map((row) => ({ version: Number(row.version), name: String(row.name) })),
          MIGRATIONS.map(({ version, name }) => ({ version, name })),
        );
      });

      it("migrating again is a no-op that keeps the data", async () => {
        await db().createKey(key({ balanceMicros: 5 }));
        const before = await query(versionsSql);
        await opened?.reopen();
        await opened?.reopen();
        assert.deepEqual(await query(versionsSql), before);
        assert.equal(await balance(), 5);
      });

      it("hubs starting together on an empty schema migrate once", {
        skip: backend.name === "postgres" ? false : "PostgreSQL only: one SQLite file, one hub",
      }, async () => {
        const schema = freshSchemaName();
        try {
          const hubs = await Promise.all(
            Array.from({ length: 4 }, () => openPostgresDatabase(postgresUrl, { schema })),
          );
          await hubs[0]?.createKey(key());
          assert.equal((await hubs[3]?.findKey("k1"))?.id, "k1");
          await Promise.all(hubs.map((hub) => hub.close()));
        } finally {
          await dropSchema(schema);
        }
      });
    });

    describe("keys", () => {
      it("creates, finds and lists keys, oldest first", async () => {
        const limited = key({
          id: "k2",
          name: "limited",
          models: ["dall-e-3", "imagen-4"],
          rpm: 60,
          ipm: 120,
          balanceMicros: 5_000_000,
          createdAt: T0 + 1000,
          lastUsedAt: T0 + 2000,
        });
        const admin = key({ id: "k1", role: "admin", createdAt: T0 });
        await db().createKey(limited);
        await db().createKey(admin);
        assert.deepEqual(await db().findKey("k2"), limited);
        assert.deepEqual(await db().findKey("k1"), admin);
        assert.equal(await db().findKey("nope"), undefined);
        assert.deepEqual(await db().listKeys(), [admin, limited]);
      });

      it("updates name, models and limits, leaving the rest alone", async () => {
        await db().createKey(key({ models: ["dall-e-3"], rpm: 10, balanceMicros: 7 }));
        const updated = await db().updateKey("k1", { name: "renamed", models: ["a", "b"], ipm: 5 });
        assert.deepEqual(
          updated,
          key({ name: "renamed", models: ["a", "b"], rpm: 10, ipm: 5, balanceMicros: 7 }),
        );
        assert.deepEqual(await db().findKey("k1"), updated);

        const cleared = await db().updateKey("k1", { models: null, rpm: null });
        assert.equal(cleared?.models, null);
        assert.equal(cleared?.rpm, null);
        assert.equal(cleared?.ipm, 5);
        assert.deepEqual(await db().updateKey("k1", {}), cleared);
        assert.equal(await db().updateKey("nope", { name: "x" }), undefined);
        assert.equal(await db().updateKey("nope", {}), undefined);
      });

      it("replaces the secret of a live key only", async () => {
        await db().createKey(key());
        assert.equal(await db().replaceKeySecret("k1", "b".repeat(64)), true);
        assert.equal((await db().findKey("k1"))?.secretHash, "b".repeat(64));
        assert.equal(await db().replaceKeySecret("nope", "c".repeat(64)), false);
        await db().revokeKey("k1", T0 + 5);
        assert.equal(await db().replaceKeySecret("k1", "c".repeat(64)), false);
        assert.equal((await db().findKey("k1"))?.secretHash, "b".repeat(64));
      });

      it("revokes once and counts active keys by role", async () => {
        await db().createKey(key({ id: "a1", role: "admin" }));
        await db().createKey(key({ id: "c1" }));
        await db().createKey(key({ id: "c2" }));
        assert.equal(await db().countActiveKeys("admin"), 1);
        assert.equal(await db().countActiveKeys("client"), 2);

        assert.equal(await db().revokeKey("c1", T0 + 10), true);
        assert.equal(await db().revokeKey("c1", T0 + 20), false);
        assert.equal(await db().revokeKey("nope", T0 + 20), false);
        assert.equal((await db().findKey("c1"))?.revokedAt, T0 + 10);
        assert.equal(await db().countActiveKeys("client"), 1);
        assert.equal(await db().countActiveKeys("admin"), 1);
      });

      it("sets balances, and adds credit never below zero", async () => {
        await db().createKey(key());
        assert.equal(await db().setBalance("nope", 5), undefined);
        assert.equal(await db().addCredit("nope", 5), undefined);

        // Unlimited starts from zero.
        assert.equal((await db().addCredit("k1", 2_500_000))?.balanceMicros, 2_500_000);
        assert.equal((await db().addCredit("k1", -1_000_000))?.balanceMicros, 1_500_000);
        assert.equal((await db().addCredit("k1", -9_000_000))?.balanceMicros, 0);
        assert.equal(
          (await db().setBalance("k1", 123_456_789_012))?.balanceMicros,
          123_456_789_012,
        );
        assert.equal(await balance(), 123_456_789_012);
        assert.equal((await db().setBalance("k1", null))?.balanceMicros, null);
        assert.equal((await db().setBalance("k1", 0))?.balanceMicros, 0);
      });

      it("touches last-used times in one batch, never backwards", async () => {
        await db().createKey(key({ id: "k1" }));
        await db().createKey(key({ id: "k2" }));
        await db().createKey(key({ id: "k3", lastUsedAt: T0 + 50 }));
        await db().touchKeys(new Map());
        await db().touchKeys(
          new Map([
            ["k1", T0 + 100],
            ["k2", T0 + 200],
            ["nope", T0 + 300],
          ]),
        );
        await db().touchKeys(new Map([["k2", T0 + 150]]));
        const lastUsed = (await db().listKeys()).map((record) => [record.id, record.lastUsedAt]);
        assert.deepEqual(lastUsed, [
          ["k1", T0 + 100],
          ["k2", T0 + 200],
          ["k3", T0 + 50],
        ]);
      });
    });

    describe("reservations", () => {
      it("refuses a reservation beyond the balance and changes nothing", async () => {
        await db().createKey(key({ balanceMicros: PRICE - 1 }));
        const reservation = { id: "r1", keyId: "k1", amountMicros: PRICE, createdAt: T0 };
        assert.equal(await db().reserve(reservation), false);
        assert.equal(await db().reserve({ ...reservation, keyId: "nope" }), false);
        assert.equal(await balance(), PRICE - 1);
        assert.equal(await count("reservations"), 0);
      });

      it("always reserves for an unlimited key and leaves it unlimited", async () => {
        await db().createKey(key({ balanceMicros: null }));
        assert.equal(
          await db().reserve({ id: "r1", keyId: "k1", amountMicros: 1e12, createdAt: T0 }),
          true,
        );
        assert.equal(await balance(), null);
        await db().settle("r1", usage("u1", { costMicros: PRICE }));
        assert.equal(await balance(), null);
        assert.equal((await db().listUsage({ limit: 10 }))[0]?.costMicros, PRICE);
      });

      it("settles: refunds exactly reserved − cost and writes the usage record", async () => {
        await db().createKey(key({ balanceMicros: 1_000_000 }));
        assert.equal(
          await db().reserve({ id: "r1", keyId: "k1", amountMicros: 300_000, createdAt: T0 }),
          true,
        );
        assert.equal(await balance(), 700_000);
        const record = usage("u1", {
          imagesRequested: 3,
          imagesDelivered: 1,
          status: "partial",
          costMicros: 120_000,
          inputTokens: 17,
          outputTokens: 4160,
        });
        await db().settle("r1", record);
        assert.equal(await balance(), 880_000);
        assert.deepEqual(await db().listUsage({ limit: 10 }), [record]);
        assert.equal(await count("reservations"), 0);
      });

      it("settling twice cannot refund twice, and still records", async () => {
        await db().createKey(key({ balanceMicros: 1_000_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 400_000, createdAt: T0 });
        await db().settle("r1", usage("u1", { costMicros: 0, status: "failed" }));
        assert.equal(await balance(), 1_000_000);
        await db().settle("r1", usage("u2", { costMicros: 0, status: "failed" }));
        assert.equal(await balance(), 1_000_000);
        assert.equal(await count("usage_records"), 2);
      });

      it("settling one reservation twice at once refunds once", async () => {
        await db().createKey(key({ balanceMicros: 1_000_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 400_000, createdAt: T0 });
        await Promise.all([
          db().settle("r1", usage("u1", { costMicros: 100_000 })),
          db().settle("r1", usage("u2", { costMicros: 100_000 })),
        ]);
        assert.equal(await balance(), 900_000);
      });

      it("a cost above the reservation takes nothing more", async () => {
        await db().createKey(key({ balanceMicros: 1_000_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 100_000, createdAt: T0 });
        await db().settle("r1", usage("u1", { costMicros: 150_000 }));
        assert.equal(await balance(), 900_000);
      });

      it("keeps hosted images for the gallery, lists them newest first and forgets the expired", async () => {
        const image = (name: string, keyId: string, createdAt: number, expiresAt: number) => ({
          name,
          keyId,
          recordId: `r-${name}`,
          model: "gpt-image-2",
          size: "1024x1024",
          prompt: `prompt of ${name}`,
          costMicros: 21_000,
          mimeType: "image/png",
          createdAt,
          expiresAt,
        });
        const early = image("a.png", "k1", T0, T0 + 3_600_000);
        const late = image("b.png", "k1", T0 + 10, T0 + 3_600_010);
        const other = image("c.png", "k2", T0 + 5, T0 + 100);
        await db().addHostedImages([early, late, other]);
        const names = async (filter: Partial<Parameters<Database["listHostedImages"]>[0]>) =>
          (await db().listHostedImages({ liveAt: T0, limit: 10, ...filter })).map(
            (row) => row.name,
          );
        assert.deepEqual(await names({}), ["b.png", "c.png", "a.png"]);
        assert.deepEqual(await names({ keyId: "k1" }), ["b.png", "a.png"]);
        assert.deepEqual(await names({ keyId: "k1", before: T0 + 10 }), ["a.png"]);
        assert.deepEqual(await names({ liveAt: T0 + 100 }), ["b.png", "a.png"], "c has expired");
        assert.deepEqual(await names({ model: "dall-e-3" }), []);
        assert.equal(await db().deleteExpiredHostedImages(T0 + 100), 1);
        await opened?.reopen();
        assert.deepEqual(await db().listHostedImages({ liveAt: 0, limit: 10 }), [late, early]);
      });

      it("tops a reservation up only when the balance covers the difference; settling gives back the new amount", async () => {
        const held = async (id: string) =>
          Number(
            (await query(`SELECT amount_micros FROM reservations WHERE id = '${id}'`))[0]
              ?.amount_micros,
          );
        await db().createKey(key({ balanceMicros: 100_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 20_000, createdAt: T0 });
        assert.equal(await db().topUpReservation("r1", 120_001), false, "needs 100,001 of 80,000");
        assert.equal(await balance(), 80_000);
        assert.equal(await held("r1"), 20_000);
        assert.equal(await db().topUpReservation("r1", 100_000), true, "needs all 80,000");
        assert.equal(await balance(), 0);
        assert.equal(await held("r1"), 100_000);
        assert.equal(await db().topUpReservation("r1", 60_000), true, "holds that much already");
        assert.equal(await held("r1"), 100_000);
        assert.equal(await db().topUpReservation("nope", 1), false, "no such reservation");
        await db().settle("r1", usage("u1", { costMicros: 53_000 }));
        assert.equal(await balance(), 47_000);
        assert.equal(await db().topUpReservation("r1", 40_000), false, "settled: nothing to raise");
        assert.equal(await balance(), 47_000);
      });

      it("tops up an unlimited key's reservation, and a release gives a topped-up one back whole", async () => {
        await db().createKey(key({ id: "k1", balanceMicros: 100_000 }));
        await db().createKey(key({ id: "k2", balanceMicros: null }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 20_000, createdAt: T0 });
        await db().reserve({ id: "r2", keyId: "k2", amountMicros: 20_000, createdAt: T0 });
        assert.equal(await db().topUpReservation("r1", 70_000), true);
        assert.equal(await db().topUpReservation("r2", 1e12), true);
        assert.equal(await balance("k1"), 30_000);
        assert.equal(await balance("k2"), null);
        assert.equal(await db().releaseReservations(T0 + 1), 2);
        assert.equal(await balance("k1"), 100_000);
        assert.equal(await balance("k2"), null);
      });

      it("keeps a reservation with a task in flight for task recovery, and lists the task", async () => {
        await db().createKey(key({ id: "k1", balanceMicros: 1_000_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 100_000, createdAt: T0 });
        await db().reserve({ id: "r2", keyId: "k1", amountMicros: 200_000, createdAt: T0 });
        const task = {
          provider: "bfl",
          taskId: "t-1",
          reservationId: "r2",
          keyId: "k1",
          model: "flux-2-pro",
          size: "1024x1024",
          quality: null,
          images: 1,
          state: { polling_url: "https://api.bfl.ai/v1/get_result?id=t-1" },
          createdAt: T0,
        };
        await db().putUpstreamTask(task);
        assert.equal(await db().releaseReservations(T0 + 1), 1, "r1 only");
        assert.equal(await balance("k1"), 800_000);
        await opened?.reopen();
        assert.deepEqual(await db().listUpstreamTasks(), [task]);
        assert.equal(await db().deleteUpstreamTask("bfl", "t-1"), true);
        assert.equal(await db().deleteUpstreamTask("bfl", "t-1"), false);
        assert.equal(await db().releaseReservations(T0 + 1), 1, "r2, once its task is gone");
        assert.equal(await balance("k1"), 1_000_000);
      });

      it("releases only reservations older than the cut-off, and counts them", async () => {
        await db().createKey(key({ id: "k1", balanceMicros: 1_000_000 }));
        await db().createKey(key({ id: "k2", balanceMicros: null }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 100_000, createdAt: T0 + 1000 });
        await db().reserve({ id: "r2", keyId: "k2", amountMicros: 100_000, createdAt: T0 + 1500 });
        await db().reserve({ id: "r3", keyId: "k1", amountMicros: 200_000, createdAt: T0 + 2000 });
        await db().reserve({ id: "r4", keyId: "k1", amountMicros: 300_000, createdAt: T0 + 3000 });
        assert.equal(await balance("k1"), 400_000);

        assert.equal(await db().releaseReservations(T0 + 2000), 2);
        assert.equal(await balance("k1"), 500_000);
        assert.equal(await balance("k2"), null);
        assert.equal(await db().releaseReservations(T0 + 2500), 1);
        assert.equal(await balance("k1"), 700_000);
        assert.equal(await db().releaseReservations(T0 + 2500), 0);

        // A released reservation settles without a refund; the one still open refunds.
        await db().settle("r1", usage("u1", { costMicros: 0 }));
        assert.equal(await balance("k1"), 700_000);
        await db().settle("r4", usage("u4", { costMicros: 100_000 }));
        assert.equal(await balance("k1"), 900_000);
      });
    });

    describe("money under concurrency", () => {
      it("50 concurrent reservations on a balance of 10 prices: exactly 10 succeed", async () => {
        const initial = 10 * PRICE;
        await db().createKey(key({ balanceMicros: initial }));
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, index) =>
            db().reserve({ id: `r${index}`, keyId: "k1", amountMicros: PRICE, createdAt: T0 }),
          ),
        );
        const reserved = results.flatMap((ok, index) => (ok ? [`r${index}`] : []));
        assert.equal(reserved.length, 10);
        assert.equal(await balance(), 0);
        assert.equal(await count("reservations"), 10);

        // The database itself refuses a negative balance, whatever the code above it does.
        await assert.rejects(query("UPDATE api_keys SET balance_micros = -1 WHERE id = 'k1'"));
        await assert.rejects(db().setBalance("k1", -1));
        assert.equal(await balance(), 0);

        await Promise.all(
          reserved.map((id, index) =>
            db().settle(id, usage(`u${index}`, { costMicros: PRICE, createdAt: T0 + index })),
          ),
        );
        assert.equal(await balance(), 0);
        const records = await db().listUsage({ keyId: "k1", limit: 100 });
        assert.equal(records.length, 10);
        assert.equal(
          records.reduce((sum, record) => sum + record.costMicros, 0),
          initial,
        );
      });

      it("20 concurrent top-ups on a balance that covers 5: exactly 5 succeed", async () => {
        await db().createKey(key({ balanceMicros: 25 * PRICE }));
        for (let index = 0; index < 20; index++) {
          await db().reserve({ id: `r${index}`, keyId: "k1", amountMicros: PRICE, createdAt: T0 });
        }
        assert.equal(await balance(), 5 * PRICE);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, index) => db().topUpReservation(`r${index}`, 2 * PRICE)),
        );
        assert.equal(results.filter(Boolean).length, 5);
        assert.equal(await balance(), 0);
        const [held] = await query("SELECT SUM(amount_micros) AS total FROM reservations");
        assert.equal(Number(held?.total), 25 * PRICE, "what was taken is all held");
        await Promise.all(
          results.map((_, index) =>
            db().settle(`r${index}`, usage(`u${index}`, { costMicros: 0 })),
          ),
        );
        assert.equal(await balance(), 25 * PRICE, "and all given back");
      });

      it("one reservation topped up twice at once takes the difference once", async () => {
        await db().createKey(key({ balanceMicros: 1_000_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: PRICE, createdAt: T0 });
        const results = await Promise.all([
          db().topUpReservation("r1", 3 * PRICE),
          db().topUpReservation("r1", 3 * PRICE),
        ]);
        assert.deepEqual(results, [true, true]);
        assert.equal(await balance(), 1_000_000 - 3 * PRICE);
      });

      it("a top-up racing the settle of its reservation loses no money", async () => {
        await db().createKey(key({ balanceMicros: 1_000_000 }));
        for (let round = 0; round < 10; round++) {
          const id = `r${round}`;
          await db().reserve({ id, keyId: "k1", amountMicros: PRICE, createdAt: T0 });
          await Promise.all([
            db().topUpReservation(id, 5 * PRICE),
            db().settle(id, usage(`u${round}`, { costMicros: 0, status: "failed" })),
          ]);
          assert.equal(await balance(), 1_000_000, `round ${round}`);
        }
        assert.equal(await count("reservations"), 0);
      });

      it("a mixed ledger adds up exactly: Σ cost = initial − final", async () => {
        const initial = 1_234_567;
        await db().createKey(key({ balanceMicros: initial }));
        // Outcomes in a fixed rotation: delivered all, some, none.
        const runs = Array.from({ length: 20 }, async (_, index) => {
          const images = (index % 4) + 1;
          const each = 33_333 + index * 1_001;
          const amount = images * each;
          const reserved = await db().reserve({
            id: `r${index}`,
            keyId: "k1",
            amountMicros: amount,
            createdAt: T0 + index,
          });
          if (!reserved) {
            await db().recordUsage(
              usage(`u${index}`, { status: "failed", errorCode: "insufficient_quota" }),
            );
            return;
          }
          const outcome = index % 3;
          const delivered = outcome === 0 ? images : outcome === 1 ? images - 1 : 0;
          await db().settle(
            `r${index}`,
            usage(`u${index}`, {
              imagesRequested: images,
              imagesDelivered: delivered,
              status: delivered === images ? "succeeded" : delivered > 0 ? "partial" : "failed",
              costMicros: delivered * each,
              createdAt: T0 + index,
            }),
          );
        });
        await Promise.all(runs);

        const final = await balance();
        assert.ok(final !== null && final !== undefined && final >= 0);
        const records = await db().listUsage({ limit: 100 });
        assert.equal(records.length, 20);
        const spent = records.reduce((sum, record) => sum + record.costMicros, 0);
        assert.ok(spent > 0);
        assert.equal(spent, initial - final);
        const [total] = await db().usageTotals({}, "model");
        assert.equal(total?.costMicros, spent);
        assert.equal(await count("reservations"), 0);
      });
    });

    describe("restart", () => {
      it("keeps keys, balances, open reservations and the ledger", async () => {
        await db().createKey(key({ models: ["dall-e-3"], balanceMicros: 1_000_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 200_000, createdAt: T0 });
        await db().reserve({ id: "r2", keyId: "k1", amountMicros: 300_000, createdAt: T0 + 1 });
        await db().settle("r1", usage("u1", { costMicros: 150_000 }));
        await db().putImagePrice(imagePrice());
        await db().createCredential(credential());
        const keys = await db().listKeys();
        const ledger = await db().listUsage({ limit: 10 });

        await opened?.reopen();
        assert.deepEqual(await db().listKeys(), keys);
        assert.equal(await balance(), 550_000);
        assert.deepEqual(await db().listUsage({ limit: 10 }), ledger);
        assert.deepEqual(await db().listImagePrices(), [imagePrice()]);
        assert.deepEqual(await db().listCredentials(), [credential()]);
        // The open reservation survived: releasing it gives its amount back.
        assert.equal(await db().releaseReservations(T0 + 10), 1);
        assert.equal(await balance(), 850_000);
      });
    });

    describe("usage ledger", () => {
      // Three UTC days, with records on both edges of a day.
      const records = [
        usage("u01", { createdAt: T0, keyId: "k1", model: "dall-e-3", costMicros: 40_000 }),
        usage("u02", {
          createdAt: T0 + DAY - 1,
          keyId: "k2",
          model: "imagen-4",
          imagesRequested: 4,
          imagesDelivered: 3,
          costMicros: 90_000,
        }),
        usage("u03", { createdAt: T0 + DAY, keyId: "k1", model: "imagen-4", costMicros: 30_000 }),
        usage("u04", {
          createdAt: T0 + DAY + 5000,
          keyId: "k1",
          model: "dall-e-3",
          imagesRequested: 2,
          imagesDelivered: 0,
          status: "failed",
          costMicros: 0,
        }),
        usage("u05", { createdAt: T0 + 2 * DAY + 7, keyId: "k2", model: "Z-model", costMicros: 1 }),
        // Same instant as u05: the id breaks the tie.
        usage("u06", {
          createdAt: T0 + 2 * DAY + 7,
          keyId: "k1",
          model: "dall-e-3",
          costMicros: 2,
        }),
      ];
      const ids = (list: UsageRecord[]) => list.map((record) => record.id);

      beforeEach(async () => {
        for (const record of records) await db().recordUsage(record);
      });

      it("lists newest first, ties by id, with limit and offset", async () => {
        assert.deepEqual(ids(await db().listUsage({ limit: 100 })), [
          "u06",
          "u05",
          "u04",
          "u03",
          "u02",
          "u01",
        ]);
        assert.deepEqual(ids(await db().listUsage({ limit: 2 })), ["u06", "u05"]);
        assert.deepEqual(ids(await db().listUsage({ limit: 2, offset: 2 })), ["u04", "u03"]);
        assert.deepEqual(ids(await db().listUsage({ limit: 2, offset: 6 })), []);
        assert.deepEqual(await db().listUsage({ limit: 1, offset: 4 }), [records[1]]);
      });

      it("filters by key, model and time (from inclusive, to exclusive)", async () => {
        assert.deepEqual(ids(await db().listUsage({ keyId: "k2", limit: 10 })), ["u05", "u02"]);
        assert.deepEqual(ids(await db().listUsage({ model: "imagen-4", limit: 10 })), [
          "u03",
          "u02",
        ]);
        assert.deepEqual(
          ids(await db().listUsage({ from: T0 + DAY, to: T0 + 2 * DAY, limit: 10 })),
          ["u04", "u03"],
        );
        assert.deepEqual(
          ids(await db().listUsage({ keyId: "k1", model: "dall-e-3", from: T0 + 1, limit: 10 })),
          ["u06", "u04"],
        );
        assert.deepEqual(ids(await db().listUsage({ keyId: "nope", limit: 10 })), []);
      });

      it("totals by UTC day", async () => {
        assert.deepEqual(await db().usageTotals({}, "day"), [
          {
            group: "2025-01-30",
            requests: 2,
            imagesRequested: 5,
            imagesDelivered: 4,
            costMicros: 130_000,
          },
          {
            group: "2025-01-31",
            requests: 2,
            imagesRequested: 3,
            imagesDelivered: 1,
            costMicros: 30_000,
          },
          {
            group: "2025-02-01",
            requests: 2,
            imagesRequested: 2,
            imagesDelivered: 2,
            costMicros: 3,
          },
        ]);
        assert.deepEqual(await db().usageTotals({ keyId: "k2", from: T0 + 1 }, "day"), [
          {
            group: "2025-01-30",
            requests: 1,
            imagesRequested: 4,
            imagesDelivered: 3,
            costMicros: 90_000,
          },
          {
            group: "2025-02-01",
            requests: 1,
            imagesRequested: 1,
            imagesDelivered: 1,
            costMicros: 1,
          },
        ]);
        assert.deepEqual(await db().usageTotals({ keyId: "nope" }, "day"), []);
      });

      it("totals by model, in byte order of the model id", async () => {
        assert.deepEqual(await db().usageTotals({}, "model"), [
          { group: "Z-model", requests: 1, imagesRequested: 1, imagesDelivered: 1, costMicros: 1 },
          {
            group: "dall-e-3",
            requests: 3,
            imagesRequested: 4,
            imagesDelivered: 2,
            costMicros: 40_002,
          },
          {
            group: "imagen-4",
            requests: 2,
            imagesRequested: 5,
            imagesDelivered: 4,
            costMicros: 120_000,
          },
        ]);
        assert.deepEqual(await db().usageTotals({ to: T0 + DAY }, "model"), [
          {
            group: "dall-e-3",
            requests: 1,
            imagesRequested: 1,
            imagesDelivered: 1,
            costMicros: 40_000,
          },
          {
            group: "imagen-4",
            requests: 1,
            imagesRequested: 4,
            imagesDelivered: 3,
            costMicros: 90_000,
          },
        ]);
      });
    });

    describe("the model a client named", () => {
      // dall-e-3 is retired; gpt-image-1 serves its requests.
      const served = (id: string, overrides: Partial<UsageRecord> = {}) =>
        usage(id, { model: "gpt-image-1", requestedModel: "dall-e-3", ...overrides });

      it("round-trips through settle and recordUsage, and survives a restart", async () => {
        await db().createKey(key({ balanceMicros: 1_000_000 }));
        await db().reserve({ id: "r1", keyId: "k1", amountMicros: 100_000, createdAt: T0 });
        const settled = served("u1", { costMicros: PRICE, createdAt: T0 + 2 });
        await db().settle("r1", settled);
        const recorded = served("u2", { status: "failed", imagesDelivered: 0, createdAt: T0 + 1 });
        const direct = usage("u3", { createdAt: T0 });
        await db().recordUsage(recorded);
        await db().recordUsage(direct);
        assert.deepEqual(await db().listUsage({ limit: 10 }), [settled, recorded, direct]);
        await opened?.reopen();
        assert.deepEqual(await db().listUsage({ limit: 10 }), [settled, recorded, direct]);
      });

      it("a record built without the field reads as named-and-served", async () => {
        const { requestedModel: _, ...legacy } = usage("u1");
        await db().recordUsage(legacy as UsageRecord);
        assert.deepEqual(await db().listUsage({ limit: 10 }), [usage("u1")]);
      });

      it("the model filter matches the model named as well as the one that served", async () => {
        await db().recordUsage(usage("u1", { createdAt: T0, costMicros: 1 }));
        await db().recordUsage(served("u2", { createdAt: T0 + 1, costMicros: 10 }));
        await db().recordUsage(usage("u3", { createdAt: T0 + 2, model: "gpt-image-1" }));
        await db().recordUsage(usage("u4", { createdAt: T0 + 3, model: "imagen-4", keyId: "k2" }));
        const ids = async (filter: UsageFilter) =>
          (await db().listUsage({ ...filter, limit: 10 })).map((record) => record.id);
        assert.deepEqual(await ids({ model: "dall-e-3" }), ["u2", "u1"]);
        assert.deepEqual(await ids({ model: "gpt-image-1" }), ["u3", "u2"]);
        assert.deepEqual(await ids({ model: "dall-e-3", from: T0 + 1 }), ["u2"]);
        assert.deepEqual(await ids({ model: "dall-e-3", keyId: "k2" }), []);
        assert.deepEqual(await ids({ model: "imagen-4" }), ["u4"]);

        // Totals follow the same filter, grouped by the model that served.
        const byModel = await db().usageTotals({ model: "dall-e-3" }, "model");
        assert.deepEqual(
          byModel.map((total) => [total.group, total.requests, total.costMicros]),
          [
            ["dall-e-3", 1, 1],
            ["gpt-image-1", 1, 10],
          ],
        );
        const byDay = await db().usageTotals({ model: "dall-e-3" }, "day");
        assert.deepEqual(
          byDay.map((total) => [total.group, total.requests, total.costMicros]),
          [["2025-01-30", 2, 11]],
        );
      });

      it("a store of version 3 migrates: catalog models, and old records named what served", async () => {
        await db().recordUsage(served("u1"));
        // Back to what version 3 left: no catalog table, no requested_model, no version 4.
        await query("DROP TABLE catalog_models");
        await query("DROP INDEX usage_records_requested_model_time");
        await query("ALTER TABLE usage_records DROP COLUMN requested_model");
        await query("DELETE FROM schema_migrations WHERE version = 4");

        await opened?.reopen();
        assert.deepEqual(await db().listUsage({ limit: 10 }), [
          served("u1", { requestedModel: null }),
        ]);
        assert.deepEqual(await db().listCatalogModels(), []);
        await db().recordUsage(served("u2", { createdAt: T0 + 1 }));
        assert.equal((await db().listUsage({ model: "dall-e-3", limit: 10 }))[0]?.id, "u2");
      });

      it("keeps the calling app, filters by it, and a store of version 4 migrates with none", async () => {
        await db().recordUsage(usage("u1", { app: "zAppDid", createdAt: T0 }));
        await db().recordUsage(usage("u2", { createdAt: T0 + 1 }));
        const ids = async (filter: UsageFilter) =>
          (await db().listUsage({ ...filter, limit: 10 })).map((record) => record.id);
        assert.deepEqual(await ids({ app: "zAppDid" }), ["u1"]);
        assert.deepEqual(await ids({ app: "zOther" }), []);
        const totals = await db().usageTotals({ app: "zAppDid" }, "model");
        assert.deepEqual(
          totals.map((total) => total.requests),
          [1],
        );

        // Back to what version 4 left: no app column, no version 5.
        await query("DROP INDEX usage_records_app_time");
        await query("ALTER TABLE usage_records DROP COLUMN app");
        await query("DELETE FROM schema_migrations WHERE version = 5");
        await opened?.reopen();
        assert.deepEqual(await db().listUsage({ limit: 10 }), [
          usage("u2", { createdAt: T0 + 1 }),
          usage("u1", { createdAt: T0 }),
        ]);
      });
    });

    describe("prices", () => {
      it("seeds only the prices that are missing: admin edits survive a re-seed", async () => {
        const standard = imagePrice();
        const hd = imagePrice({ quality: "hd", microsPerImage: 80_000 });
        await db().seedPrices([standard, hd], [tokenPrice()]);
        const edited = imagePrice({ microsPerImage: 35_000, source: "admin", updatedAt: T0 + 9 });
        const editedTokens = tokenPrice({ outputPerMillion: 32.5, source: "admin" });
        await db().putImagePrice(edited);
        await db().putTokenPrice(editedTokens);

        const wide = imagePrice({
          model: "Imagen-4",
          size: "*",
          quality: "*",
          microsPerImage: 20_000,
        });
        const otherTokens = tokenPrice({ model: "gpt-image-1-mini", textInputPerMillion: 2.5 });
        await db().seedPrices([standard, hd, wide], [tokenPrice(), otherTokens]);
        assert.deepEqual(await db().listImagePrices(), [wide, hd, edited]);
        assert.deepEqual(await db().listTokenPrices(), [editedTokens, otherTokens]);
        await db().seedPrices([], []);
        assert.equal((await db().listImagePrices()).length, 3);
      });

      it("puts (insert or replace) and deletes image prices", async () => {
        await db().putImagePrice(imagePrice());
        const replaced = imagePrice({ microsPerImage: 41_000, source: "admin", updatedAt: T0 + 1 });
        await db().putImagePrice(replaced);
        const other = imagePrice({ size: "1792x1024", microsPerImage: 80_000 });
        await db().putImagePrice(other);
        assert.deepEqual(await db().listImagePrices(), [replaced, other]);

        assert.equal(await db().deleteImagePrice("dall-e-3", "1024x1024", "standard"), true);
        assert.equal(await db().deleteImagePrice("dall-e-3", "1024x1024", "standard"), false);
        assert.deepEqual(await db().listImagePrices(), [other]);
      });

      it("keeps fractional token prices exactly", async () => {
        const price = tokenPrice({
          textInputPerMillion: 1.25,
          imageInputPerMillion: 0.1,
          outputPerMillion: 39.99,
        });
        await db().putTokenPrice(price);
        assert.deepEqual(await db().listTokenPrices(), [price]);
      });
    });

    describe("provider credentials", () => {
      it("creates, lists, updates and deletes", async () => {
        const first = credential();
        const second = credential({
          id: "c2",
          provider: "google",
          name: "backup",
          baseUrl: "https://generativelanguage.googleapis.com",
          weight: 3,
          createdAt: T0 + 1,
        });
        await db().createCredential(second);
        await db().createCredential(first);
        assert.deepEqual(await db().listCredentials(), [first, second]);

        const disabled = await db().updateCredential("c2", { weight: 0, disabledAt: T0 + 50 });
        assert.deepEqual(disabled, { ...second, weight: 0, disabledAt: T0 + 50 });
        const enabled = await db().updateCredential("c2", { disabledAt: null, name: "spare" });
        assert.deepEqual(enabled, { ...second, weight: 0, name: "spare" });
        assert.deepEqual(await db().updateCredential("c2", {}), enabled);
        assert.equal(await db().updateCredential("nope", { weight: 2 }), undefined);
        assert.equal(await db().updateCredential("nope", {}), undefined);

        assert.equal(await db().deleteCredential("c1"), true);
        assert.equal(await db().deleteCredential("c1"), false);
        assert.deepEqual(await db().listCredentials(), [enabled]);
      });

      it("keeps an admin-defined instance's kind and options, through a restart", async () => {
        const own = credential({
          id: "c3",
          provider: "localai",
          kind: "openai-compatible",
          options: { preset: "localai" },
          baseUrl: "http://127.0.0.1:8081/v1",
        });
        await db().createCredential(own);
        await opened?.reopen();
        assert.deepEqual(await db().listCredentials(), [own]);
      });
    });

    describe("model routes", () => {
      it("puts, replaces, lists by model and deletes", async () => {
        const dalle = route();
        const imagen = route({
          model: "imagen-4.0-generate-001",
          fallbacks: [],
          timeoutMs: null,
          retryBillable: true,
          updatedAt: T0 + 1,
        });
        const gemini = route({ model: "gemini-2.5-flash-image", fallbacks: [], updatedAt: T0 + 2 });
        for (const record of [imagen, dalle, gemini]) await db().putModelRoute(record);
        assert.deepEqual(await db().listModelRoutes(), [dalle, gemini, imagen]);

        const replaced = route({
          fallbacks: [{ model: "imagen-4.0-generate-001", credentialId: "env:google" }],
          timeoutMs: null,
          retryBillable: true,
          updatedAt: T0 + 5,
        });
        await db().putModelRoute(replaced);
        assert.deepEqual(await db().listModelRoutes(), [replaced, gemini, imagen]);
        assert.equal(await count("model_routes"), 3);

        assert.equal(await db().deleteModelRoute("dall-e-3"), true);
        assert.equal(await db().deleteModelRoute("dall-e-3"), false);
        assert.equal(await db().deleteModelRoute("no-such-model"), false);
        assert.deepEqual(await db().listModelRoutes(), [gemini, imagen]);
      });

      it("orders by model id bytewise, whatever the collation", async () => {
        const models = ["local/placeholder", "dall-e-2", "gpt-image-1", "Z-model", "a_model"];
        for (const model of models) await db().putModelRoute(route({ model }));
        assert.deepEqual(
          (await db().listModelRoutes()).map((record) => record.model),
          ["Z-model", "a_model", "dall-e-2", "gpt-image-1", "local/placeholder"],
        );
      });

      it("keeps the fallback list exactly, in order, through JSON and a restart", async () => {
        const record = route({
          fallbacks: [
            { model: "gpt-image-1", credentialId: 'cred_"quoted" ünïcode \\ ✓' },
            { model: "gpt-image-1", credentialId: null },
            { model: "local/placeholder", credentialId: null },
            { model: "dall-e-3", credentialId: "env:openai" },
            { model: "gemini-2.5-flash-image", credentialId: "cred_g" },
          ],
          timeoutMs: 3_600_000,
          retryBillable: true,
        });
        // Fields beyond the record's own are not stored.
        const extra = { ...record.fallbacks[0], provider: "openai" } as FallbackTarget;
        await db().putModelRoute({ ...record, fallbacks: [extra, ...record.fallbacks.slice(1)] });
        assert.deepEqual(await db().listModelRoutes(), [record]);
        await opened?.reopen();
        assert.deepEqual(await db().listModelRoutes(), [record]);
      });

      it("lists a route whose stored fallbacks are unreadable, dropping what it cannot read", async () => {
        for (const model of ["m1", "m2", "m3", "m4"]) await db().putModelRoute(route({ model }));
        const set = (model: string, text: string) =>
          query(`UPDATE model_routes SET fallbacks = '${text}' WHERE model = '${model}'`);
        await set("m1", "not json [");
        await set("m2", '{"model":"gpt-image-1","credentialId":null}');
        await set(
          "m3",
          '[{"model":"a","credentialId":null}, 5, null, "b", {"model":3}, {"model":""}, {"credentialId":"c"}, {"model":"d","credentialId":7}, {"model":"e"}, {"model":"f","credentialId":"cred_f","extra":1}]',
        );
        await set("m4", "null");
        const routes = await db().listModelRoutes();
        assert.deepEqual(
          routes.map((record) => [record.model, record.fallbacks]),
          [
            ["m1", []],
            ["m2", []],
            [
              "m3",
              [
                { model: "a", credentialId: null },
                { model: "e", credentialId: null },
                { model: "f", credentialId: "cred_f" },
              ],
            ],
            ["m4", []],
          ],
        );
        // The rest of each row is intact.
        assert.ok(routes.every((record) => record.timeoutMs === 90_000 && !record.retryBillable));
      });

      it("refuses a timeout of zero or less and a retry flag other than 0 or 1", async () => {
        await assert.rejects(db().putModelRoute(route({ timeoutMs: 0 })));
        await db().putModelRoute(route());
        await assert.rejects(query("UPDATE model_routes SET retry_billable = 2"));
        assert.deepEqual(await db().listModelRoutes(), [route()]);
      });

      it("a store of version 2 migrates to routes and keeps its data", async () => {
        await db().createKey(key({ balanceMicros: 5 }));
        await db().createCredential(credential());
        await db().putModelRoute(route());
        // Back to what version 2 left: no routes table, no version 3.
        await query("DROP TABLE model_routes");
        await query("DELETE FROM schema_migrations WHERE version = 3");

        await opened?.reopen();
        assert.deepEqual(
          (await query("SELECT version FROM schema_migrations ORDER BY version")).map((row) =>
            Number(row.version),
          ),
          MIGRATIONS.map((migration) => migration.version),
        );
        assert.deepEqual(await db().listModelRoutes(), []);
        assert.equal(await balance(), 5);
        assert.deepEqual(await db().listCredentials(), [credential()]);
        await db().putModelRoute(route());
        assert.deepEqual(await db().listModelRoutes(), [route()]);
      });
    });

    describe("catalog models", () => {
      it("puts, replaces, lists by id bytewise and deletes", async () => {
        const acme = catalogModel();
        const hiddenBuiltIn = catalogModel({ id: "dall-e-2", definition: "{}", hidden: true });
        const upper = catalogModel({ id: "Z-model", updatedAt: T0 + 1 });
        const local = catalogModel({ id: "local/sketch", definition: '{"n":[1,2]}' });
        for (const record of [acme, local, upper, hiddenBuiltIn])
          await db().putCatalogModel(record);
        assert.deepEqual(await db().listCatalogModels(), [upper, acme, hiddenBuiltIn, local]);

        const replaced = catalogModel({ definition: '{"label":"v2"}', updatedAt: T0 + 5 });
        await db().putCatalogModel(replaced);
        // A put may also hide a model, or show a hidden one again.
        const shown = { ...hiddenBuiltIn, hidden: false, updatedAt: T0 + 6 };
        await db().putCatalogModel(shown);
        assert.deepEqual(await db().listCatalogModels(), [upper, replaced, shown, local]);
        assert.equal(await count("catalog_models"), 4);

        assert.equal(await db().deleteCatalogModel("acme-image-2"), true);
        assert.equal(await db().deleteCatalogModel("acme-image-2"), false);
        assert.equal(await db().deleteCatalogModel("no-such-model"), false);
        assert.deepEqual(await db().listCatalogModels(), [upper, shown, local]);
      });

      it("inserts only over no row or a hidden one: a visible row stays (409)", async () => {
        const first = catalogModel();
        assert.equal(await db().insertCatalogModel(first), true);
        assert.equal(
          await db().insertCatalogModel(catalogModel({ definition: "{}", updatedAt: T0 + 1 })),
          false,
        );
        assert.deepEqual(await db().listCatalogModels(), [first]);

        // A deleted built-in: hidden until defined anew.
        await db().putCatalogModel(
          catalogModel({ id: "dall-e-3", definition: "{}", hidden: true }),
        );
        const anew = catalogModel({
          id: "dall-e-3",
          definition: '{"label":"mine"}',
          updatedAt: T0 + 2,
        });
        assert.equal(await db().insertCatalogModel(anew), true);
        assert.equal(await db().insertCatalogModel({ ...anew, updatedAt: T0 + 3 }), false);
        assert.deepEqual(await db().listCatalogModels(), [first, anew]);
      });

      it("of many inserts of one id at once, exactly one succeeds", async () => {
        const attempts = Array.from({ length: 8 }, (_, index) =>
          catalogModel({ definition: JSON.stringify({ attempt: index }), updatedAt: T0 + index }),
        );
        const results = await Promise.all(
          attempts.map((record) => db().insertCatalogModel(record)),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = attempts[results.indexOf(true)];
        assert.deepEqual(await db().listCatalogModels(), [winner]);
      });

      it("keeps the definition text exactly, through a restart", async () => {
        const record = catalogModel({
          definition: '{"label":"ünïcode \\"quoted\\" ✓","sizes":["1024x1024"],"price":0.04}\n',
          hidden: false,
          updatedAt: 123_456_789_012,
        });
        await db().putCatalogModel(record);
        await opened?.reopen();
        assert.deepEqual(await db().listCatalogModels(), [record]);
      });

      it("refuses a hidden flag other than 0 or 1", async () => {
        await db().putCatalogModel(catalogModel());
        await assert.rejects(query("UPDATE catalog_models SET hidden = 2"));
        assert.deepEqual(await db().listCatalogModels(), [catalogModel()]);
      });

      it("tells listeners of each write that changed a row, and of nothing else", async () => {
        const heard = ear();
        const other = ear();
        const stop = db().onCatalogChange(heard.listener);
        db().onCatalogChange(() => {
          throw new Error("a listener's own bug");
        });
        db().onCatalogChange(other.listener);
        await untilListening(
          () => db().putCatalogModel(catalogModel({ id: "ready" })),
          heard,
          other,
        );

        await db().putCatalogModel(catalogModel());
        await eventually(() => heard.calls === 1, "a put");
        assert.equal(await db().insertCatalogModel(catalogModel()), false);
        assert.equal(await db().deleteCatalogModel("no-such-model"), false);
        assert.equal(await db().insertCatalogModel(catalogModel({ id: "m2" })), true);
        assert.equal(await db().deleteCatalogModel("m2"), true);
        // Notifications arrive in commit order: once this one is heard, every earlier one was.
        await db().putCatalogModel(catalogModel({ updatedAt: T0 + 1 }));
        await eventually(() => heard.calls >= 4, "four writes that changed a row");
        await sleep(100);
        assert.equal(heard.calls, 4, "the refused insert and the delete of nothing are silent");
        assert.equal(other.calls, 4, "a listener that throws stops no other");

        stop();
        await db().putCatalogModel(catalogModel({ updatedAt: T0 + 2 }));
        await eventually(() => other.calls === 5, "the remaining listener hears");
        assert.equal(heard.calls, 4, "a stopped listener hears nothing");
      });

      describe("across hubs", {
        skip: backend.name === "postgres" ? false : "PostgreSQL only: one SQLite file, one hub",
      }, () => {
        const schemaOf = async () =>
          String((await query("SELECT current_schema() AS name"))[0]?.name);
        const others: Database[] = [];
        const otherSchemas: string[] = [];
        afterEach(async () => {
          for (const other of others.splice(0)) await other.close();
          for (const schema of otherSchemas.splice(0)) await dropSchema(schema);
        });

        it("a write on one hub reaches the listeners of another on the same store, not on others", async () => {
          const schema = await schemaOf();
          const writer = await openPostgresDatabase(postgresUrl, { schema });
          others.push(writer);
          const elsewhereSchema = freshSchemaName();
          otherSchemas.push(elsewhereSchema);
          const elsewhere = await openPostgresDatabase(postgresUrl, { schema: elsewhereSchema });
          others.push(elsewhere);

          const heard = ear();
          const heardElsewhere = ear();
          db().onCatalogChange(heard.listener);
          elsewhere.onCatalogChange(heardElsewhere.listener);
          await untilListening(
            async () => {
              await db().putCatalogModel(catalogModel({ id: "ready" }));
              await elsewhere.putCatalogModel(catalogModel({ id: "ready" }));
            },
            heard,
            heardElsewhere,
          );

          await writer.putCatalogModel(catalogModel());
          await eventually(() => heard.calls === 1, "a put on another hub");
          assert.equal(await writer.insertCatalogModel(catalogModel({ id: "m2" })), true);
          assert.equal(await writer.deleteCatalogModel("ready"), true);
          await eventually(() => heard.calls === 3, "an insert and a delete on another hub");
          assert.deepEqual(
            (await db().listCatalogModels()).map((record) => record.id),
            ["acme-image-2", "m2"],
          );
          await sleep(200);
          assert.equal(heard.calls, 3);
          assert.equal(heardElsewhere.calls, 0, "a hub on another schema hears nothing");
        });

        it("after close: no listener is called and nothing fails", async () => {
          const schema = await schemaOf();
          const listening = await openPostgresDatabase(postgresUrl, { schema });
          const heard = ear();
          listening.onCatalogChange(heard.listener);
          await untilListening(() => db().putCatalogModel(catalogModel()), heard);
          await listening.close();
          await listening.close();
          await db().putCatalogModel(catalogModel({ updatedAt: T0 + 1 }));
          await sleep(200);
          assert.equal(heard.calls, 0);

          // Closed while its connection is still being opened.
          const hasty = await openPostgresDatabase(postgresUrl, { schema });
          hasty.onCatalogChange(heard.listener);
          await hasty.close();
          await db().putCatalogModel(catalogModel({ updatedAt: T0 + 2 }));
          await sleep(200);
          assert.equal(heard.calls, 0);
        });

        it("a lost connection is opened again, and its listeners told they may have missed a change", async () => {
          const schema = await schemaOf();
          const name = `hub_${freshSchemaName()}`;
          const url = new URL(postgresUrl);
          url.searchParams.set("application_name", name);
          const hub = await openPostgresDatabase(url.href, { schema });
          others.push(hub);
          const heard = ear();
          hub.onCatalogChange(heard.listener);
          await untilListening(() => db().putCatalogModel(catalogModel()), heard);

          // What a server restart or a failover does to the hub's sessions.
          const ended = await query(
            `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = '${name}'`,
          );
          assert.ok(ended.length >= 1);
          await eventually(() => heard.calls === 1, "told once the connection is back");
          await db().putCatalogModel(catalogModel({ updatedAt: T0 + 1 }));
          await eventually(() => heard.calls === 2, "hearing again");
          assert.equal((await hub.listCatalogModels())[0]?.updatedAt, T0 + 1);
        });
      });
    });
  });
}

describe("openDatabase", () => {
  it("opens SQLite in DATA_DIR when DATABASE_URL is unset", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "image-hub-open-"));
    try {
      const db = await openDatabase({ dataDir, databaseUrl: undefined });
      assert.equal(db.kind, "sqlite");
      await db.close();
      assert.ok((await stat(path.join(dataDir, "image-hub.sqlite"))).isFile());
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("opens PostgreSQL for a postgres:// or postgresql:// URL", {
    skip: postgres?.skip,
  }, async () => {
    const schema = freshSchemaName();
    await createSchema(schema);
    try {
      // The URL alone chooses the schema, as an operator's DATABASE_URL may.
      const url = new URL(postgresUrl);
      url.searchParams.set("options", `-c search_path=${schema}`);
      for (const scheme of ["postgres:", "postgresql:"]) {
        url.protocol = scheme;
        const db = await openDatabase({ dataDir: "/nonexistent", databaseUrl: url.href });
        assert.equal(db.kind, "postgres");
        assert.deepEqual(await db.listKeys(), []);
        await db.close();
      }
    } finally {
      await dropSchema(schema);
    }
  });

  it("refuses any other DATABASE_URL, naming the setting and hiding the rest", async () => {
    for (const databaseUrl of ["mysql://root:hunter2@db/hub", "hub.sqlite", ""]) {
      await assert.rejects(openDatabase({ dataDir: "/nonexistent", databaseUrl }), (error) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, /DATABASE_URL/);
        assert.doesNotMatch(error.message, /hunter2/);
        return true;
      });
    }
  });
});
