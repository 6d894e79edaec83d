/**
 * Hub instances and their reservations, on both backends: a hub whose heartbeat stopped is
 * dead, its reservations are given back and its lost requests written as failed rows at no
 * cost, once, whoever looks; a live hub's are never touched; a request that ends after all
 * replaces its lost row. Then the heartbeat loop itself (billing/live-instances.ts).
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { startHeartbeat } from "../../../src/billing/live-instances.ts";
import type { Database, LostRequest, UsageRecord } from "../../../src/storage/db/types.ts";
import { backends, type OpenedDatabase } from "./backends.ts";

const T0 = Date.UTC(2026, 11, 3, 12);
const DEAD_AFTER = 45_000;

const request: LostRequest = {
  model: "gpt-image-2",
  requestedModel: "dall-e-3",
  app: null,
  provider: "openai",
  imagesRequested: 2,
  size: "1024x1024",
  quality: "high",
  responseFormat: "url",
};

for (const backend of backends) {
  describe(`hub instances on ${backend.name}`, { skip: backend.skip }, () => {
    let opened: OpenedDatabase;
    const db = (): Database => opened.db;
    const balance = async (id = "k1") => (await db().findKey(id))?.balanceMicros;

    beforeEach(async () => {
      opened = await backend.open();
      for (const id of ["k1", "k2"]) {
        await db().createKey({
          id,
          name: id,
          role: "client",
          secretHash: "a".repeat(64),
          models: null,
          rpm: null,
          ipm: null,
          balanceMicros: 1_000_000,
          createdAt: T0,
          revokedAt: null,
          lastUsedAt: null,
        });
      }
    });
    afterEach(() => opened.drop());

    it("releases a dead instance's reservations once, and never a live one's", async () => {
      await db().heartbeat("dead", T0, T0);
      await db().heartbeat("live", T0, T0);
      const reserve = (id: string, keyId: string, instanceId: string) =>
        db().reserve({ id, keyId, amountMicros: 100_000, createdAt: T0, instanceId, request });
      assert.ok(await reserve("r-dead-1", "k1", "dead"));
      assert.ok(await reserve("r-dead-2", "k2", "dead"));
      assert.ok(await reserve("r-live", "k1", "live"));
      assert.equal(await balance("k1"), 800_000);

      // Both beat; nobody is dead yet.
      const early = await db().releaseDeadInstances(T0 + 1 - DEAD_AFTER, T0 + 1);
      assert.deepEqual(early, { instances: [], released: 0 });
      // The live one beats on (a slow request: its reservation is old, its hub is not).
      await db().heartbeat("live", T0, T0 + 40_000);
      const now = T0 + 50_000;
      const [first, second] = await Promise.all([
        db().releaseDeadInstances(now - DEAD_AFTER, now),
        db().releaseDeadInstances(now - DEAD_AFTER, now),
      ]);
      assert.equal((first?.released ?? 0) + (second?.released ?? 0), 2, "released once");
      assert.deepEqual([...(first?.instances ?? []), ...(second?.instances ?? [])], ["dead"]);
      assert.equal(await balance("k1"), 900_000, "r-dead-1 given back, r-live still held");
      assert.equal(await balance("k2"), 1_000_000);

      const rows = await db().listUsage({ limit: 10 });
      assert.deepEqual(rows.map((row) => row.id).sort(), ["r-dead-1", "r-dead-2"]);
      for (const row of rows) {
        assert.equal(row.status, "failed");
        assert.equal(row.errorCode, "hub_instance_lost");
        assert.equal(row.costMicros, 0);
        assert.equal(row.imagesDelivered, 0);
        assert.equal(row.model, "gpt-image-2");
        assert.equal(row.requestedModel, "dall-e-3");
        assert.equal(row.imagesRequested, 2);
        assert.equal(row.latencyMs, 50_000);
      }
    });

    it("lets a request that ends after all replace its lost row", async () => {
      await db().heartbeat("slow", T0, T0);
      await db().reserve({
        id: "r1",
        keyId: "k1",
        amountMicros: 100_000,
        createdAt: T0,
        instanceId: "slow",
        request,
      });
      await db().releaseDeadInstances(T0 + 60_000 - DEAD_AFTER, T0 + 60_000);
      const ended: UsageRecord = {
        ...request,
        id: "r1",
        keyId: "k1",
        imagesDelivered: 2,
        status: "succeeded",
        errorCode: null,
        latencyMs: 61_000,
        upstreamLatencyMs: 60_000,
        costMicros: 80_000,
        inputTokens: null,
        outputTokens: null,
        createdAt: T0,
      };
      await db().settle("r1", ended);
      const rows = await db().listUsage({ limit: 10 });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.status, "succeeded");
      assert.equal(rows[0]?.imagesDelivered, 2);
      // Released already: its amount went back, and nothing is taken twice.
      assert.equal(await balance("k1"), 1_000_000);
    });

    it("writes lost rows for reservations released at a start too", async () => {
      await db().reserve({
        id: "r1",
        keyId: "k1",
        amountMicros: 100_000,
        createdAt: T0,
        instanceId: "gone",
        request,
      });
      await db().reserve({ id: "r-old", keyId: "k1", amountMicros: 50_000, createdAt: T0 });
      assert.equal(await db().releaseReservations(T0 + 1, T0 + 5_000), 2);
      const rows = await db().listUsage({ limit: 10 });
      assert.deepEqual(
        rows.map((row) => [row.id, row.errorCode, row.latencyMs]),
        [["r1", "hub_instance_lost", 5_000]],
        "a reservation from before migration 9 kept no request, so it leaves no row",
      );
      assert.equal(await balance("k1"), 1_000_000);
    });

    it("beats, forgets itself on stop, and is released by another when it stops beating", async () => {
      let now = T0;
      const warnings: string[] = [];
      const log = { warn: (_details: object, message: string) => warnings.push(message) };
      const one = await startHeartbeat({ db: db(), instanceId: "one", clock: () => now, log });
      await db().reserve({
        id: "r1",
        keyId: "k1",
        amountMicros: 100_000,
        createdAt: now,
        instanceId: "one",
        request,
      });
      // "one" dies without a word: its timer stops with it, and its row stays.
      now += 60_000;
      const two = await startHeartbeat({ db: db(), instanceId: "two", clock: () => now, log });
      assert.equal(await balance("k1"), 1_000_000, "the first beat of another hub released it");
      assert.deepEqual(warnings, [
        "released the reservations of hub instances that stopped beating",
      ]);
      await two.stop();
      await one.stop();
      assert.deepEqual(await db().releaseDeadInstances(now + 1e9, now), {
        instances: [],
        released: 0,
      });
    });
  });
}
