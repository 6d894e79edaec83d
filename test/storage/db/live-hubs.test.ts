/**
 * Who may release every open reservation at start: a hub that finds no other live hub. On
 * SQLite that is always the case (one hub owns the file); on PostgreSQL each live hub holds an
 * advisory lock for its life, so a hub starting beside a live one must leave its reservations
 * alone, and one starting after the others died (a kill -9 drops their locks) releases them.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { openPostgresDatabase } from "../../../src/storage/db/postgres.ts";
import { openSqliteDatabase } from "../../../src/storage/db/sqlite.ts";
import type { ApiKeyRecord, Database } from "../../../src/storage/db/types.ts";
import { backends, createSchema, dropSchema, freshSchemaName, postgresUrl } from "./backends.ts";

const T0 = 1_700_000_000_000;
/** What a hub passes at start, before it has reserved anything of its own. */
const ALL = Number.MAX_SAFE_INTEGER;

const key: ApiKeyRecord = {
  id: "k1",
  name: "client",
  role: "client",
  secretHash: "0".repeat(64),
  createdAt: T0,
  revokedAt: null,
  models: null,
  rpm: null,
  ipm: null,
  balanceMicros: 1_000_000,
  lastUsedAt: null,
};

const balance = async (db: Database) => (await db.findKey("k1"))?.balanceMicros;

/**
 * `releaseReservationsIfAlone` once the hubs closed before it are gone: PostgreSQL lets a closed
 * session's locks go when its backend exits, a moment after `close()` returns (later still on a
 * loaded machine). A starting hub looks again the same way (LOOK_AGAIN in app.ts).
 */
async function releasedOnceAlone(db: Database, before: number): Promise<number | undefined> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const released = await db.releaseReservationsIfAlone(before);
    if (released !== undefined) return released;
    await sleep(50);
  }
  return undefined;
}

describe("releasing reservations at start: SQLite", () => {
  it("one hub owns the file: every open reservation is released, whatever its time", async () => {
    const directory = await mkdtemp(path.join(tmpdir(), "image-hub-live-"));
    after(() => rm(directory, { recursive: true, force: true }));
    const db = await openSqliteDatabase(path.join(directory, "hub.sqlite"));
    await db.createKey(key);
    await db.reserve({ id: "r1", keyId: "k1", amountMicros: 100_000, createdAt: T0 });
    // Stamped in the future: a clock stepped back since the crash must not keep it open.
    await db.reserve({ id: "r2", keyId: "k1", amountMicros: 50_000, createdAt: Date.now() + 1e9 });
    assert.equal(await db.releaseReservationsIfAlone(ALL), 2);
    assert.equal(await balance(db), 1_000_000);
    await db.close();
  });
});

const postgres = backends.find((backend) => backend.name === "postgres");

describe("releasing reservations at start: PostgreSQL", { skip: postgres?.skip }, () => {
  const schema = freshSchemaName();
  const open: Database[] = [];
  const start = async () => {
    const db = await openPostgresDatabase(postgresUrl, { schema });
    open.push(db);
    return db;
  };
  after(async () => {
    for (const db of open) await db.close();
    await dropSchema(schema);
  });

  it("a hub beside a live one leaves its reservations; the last one left releases them", async () => {
    const first = await start();
    await first.createKey(key);
    assert.equal(await first.releaseReservationsIfAlone(ALL), 0, "alone, and nothing was open");
    // The first hub is mid-request.
    await first.reserve({ id: "r1", keyId: "k1", amountMicros: 100_000, createdAt: Date.now() });

    const second = await start();
    assert.equal(await second.releaseReservationsIfAlone(ALL), undefined, "the first is live");
    assert.equal(await balance(second), 900_000, "its reservation is untouched");

    // The first dies (its session, and with it its lock, goes); the second lives on.
    await first.close();
    const third = await start();
    assert.equal(await third.releaseReservationsIfAlone(ALL), undefined, "the second is live");
    assert.equal(await balance(third), 900_000);

    await second.close();
    await third.close();
    const last = await start();
    assert.equal(await releasedOnceAlone(last, ALL), 1, "no other hub: r1 is a dead one's");
    assert.equal(await balance(last), 1_000_000);
    await last.close();
  });

  it("a hub that finds itself alone after it started releases only what predates it", async () => {
    const dying = await start();
    await dying.createKey({ ...key, id: "k2" });
    await dying.releaseReservationsIfAlone(ALL);
    await dying.reserve({ id: "old", keyId: "k2", amountMicros: 100_000, createdAt: Date.now() });

    // It starts while the other's session still lives (a kill -9 PostgreSQL has not noticed yet).
    const startedAt = Date.now() + 1;
    const survivor = await start();
    assert.equal(await survivor.releaseReservationsIfAlone(ALL), undefined);
    await survivor.reserve({
      id: "mine",
      keyId: "k2",
      amountMicros: 50_000,
      createdAt: startedAt + 5,
    });

    await dying.close();
    assert.equal(await releasedOnceAlone(survivor, startedAt), 1, "only the dead one's");
    assert.equal((await survivor.findKey("k2"))?.balanceMicros, 950_000, "its own still held");
    await survivor.close();
  });

  it("hubs on another schema of the same database do not count, however it is named", async () => {
    // The other store's schema comes from search_path in its URL, as operators may set it.
    const otherSchema = freshSchemaName();
    await createSchema(otherSchema);
    const url = new URL(postgresUrl);
    url.searchParams.set("options", `-c search_path=${otherSchema}`);
    const other = await openPostgresDatabase(url.toString());
    try {
      assert.equal(await other.releaseReservationsIfAlone(ALL), 0);
      const mine = await start();
      // The earlier tests' hubs on this schema have closed; the other schema's never counts.
      assert.notEqual(await releasedOnceAlone(mine, ALL), undefined);
      const sameStore = await openPostgresDatabase(url.toString());
      open.push(sameStore);
      assert.equal(await sameStore.releaseReservationsIfAlone(ALL), undefined, "same schema");
    } finally {
      await other.close();
      await dropSchema(otherSchema);
    }
  });
});
