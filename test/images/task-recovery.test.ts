/**
 * Task recovery (images/task-recovery.ts) on a real SQLite store with a scripted task API: what
 * a hub that died mid-task left is polled to its end and its reservation settled, charged for
 * the images made or released, exactly once.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { contentPolicy } from "../../src/errors.ts";
import { recoverTasks } from "../../src/images/task-recovery.ts";
import type { TaskApi, TaskStatus } from "../../src/providers/tasks.ts";
import { openSqliteDatabase } from "../../src/storage/db/sqlite.ts";
import type { Database, UpstreamTaskRecord } from "../../src/storage/db/types.ts";

const T0 = 1_800_000_000_000;
const PRICE = 40_000;
let db: Database;

beforeEach(async () => {
  db = openSqliteDatabase(":memory:");
  await db.createKey({
    id: "k1",
    name: "app",
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
});

afterEach(async () => {
  await db.close();
});

/** A request of `images` images with one task on `provider`, reserved and journaled. */
async function leftBehind(id: string, provider: string, images = 1, createdAt = T0) {
  assert.ok(await db.reserve({ id, keyId: "k1", amountMicros: 100_000, createdAt }));
  const task: UpstreamTaskRecord = {
    provider,
    taskId: `task-${id}`,
    reservationId: id,
    keyId: "k1",
    model: "flux-2-pro",
    size: "1024x1024",
    quality: null,
    images,
    state: { polling_url: `https://api.example/${id}` },
    createdAt,
  };
  await db.putUpstreamTask(task);
  return task;
}

function apiAnswering(statuses: Record<string, TaskStatus[]>) {
  const cancelled: string[] = [];
  const api: TaskApi = {
    name: "Sim",
    submit: async () => assert.fail("recovery never submits"),
    poll: async (task) => statuses[task.id]?.shift() ?? { kind: "pending" },
    cancel: async (task) => {
      cancelled.push(task.id);
    },
  };
  return { api, cancelled };
}

const made = (count: number): TaskStatus => ({
  kind: "done",
  result: {
    images: Array.from({ length: count }, () => ({
      kind: "url" as const,
      url: "https://x/y.png",
      revisedPrompt: undefined,
    })),
    usage: undefined,
    warnings: [],
  },
});

async function balance(): Promise<number | null | undefined> {
  return (await db.findKey("k1"))?.balanceMicros;
}

describe("recoverTasks", () => {
  it("charges the images a finished task made, releases the rest, and writes the record", async () => {
    await leftBehind("r1", "bfl", 2);
    await leftBehind("r2", "bfl", 1);
    const { api } = apiAnswering({
      "task-r1": [{ kind: "pending" }, made(2)],
      "task-r2": [{ kind: "failed", error: contentPolicy("moderated") }],
    });
    let now = T0 + 1000;
    const settled = await recoverTasks({
      db,
      taskApi: () => api,
      priceOf: () => PRICE,
      clock: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    });
    assert.equal(settled, 2);
    assert.equal(await balance(), 1_000_000 - 2 * PRICE, "charged for two images, once");
    const records = await db.listUsage({ limit: 10 });
    const byId = new Map(records.map((record) => [record.id, record]));
    assert.deepEqual(
      [byId.get("r1")?.status, byId.get("r1")?.errorCode, byId.get("r1")?.costMicros],
      ["succeeded", "delivered_to_nobody", 2 * PRICE],
    );
    assert.deepEqual(
      [byId.get("r2")?.status, byId.get("r2")?.errorCode, byId.get("r2")?.costMicros],
      ["failed", "hub_restarted", 0],
    );
    assert.deepEqual(await db.listUpstreamTasks(), []);
    assert.equal(await recoverTasks({ db, taskApi: () => api, priceOf: () => PRICE }), 0);
  });

  it("gives up a task that outlives its time, cancelling it upstream, at no cost", async () => {
    await leftBehind("r1", "bfl");
    const { api, cancelled } = apiAnswering({});
    let now = T0;
    await recoverTasks({
      db,
      taskApi: () => api,
      priceOf: () => PRICE,
      maxAgeMs: 60_000,
      clock: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    });
    assert.deepEqual(cancelled, ["task-r1"]);
    assert.equal(await balance(), 1_000_000);
  });

  it("releases a task whose provider the hub no longer has", async () => {
    await leftBehind("r1", "gone");
    await recoverTasks({ db, taskApi: () => undefined, priceOf: () => PRICE });
    assert.equal(await balance(), 1_000_000);
    assert.equal((await db.listUsage({ limit: 1 }))[0]?.errorCode, "hub_restarted");
  });

  it("leaves tasks submitted after the cut-off: they may be a live hub's", async () => {
    await leftBehind("r1", "bfl", 1, T0 + 5000);
    const { api } = apiAnswering({ "task-r1": [made(1)] });
    const settled = await recoverTasks({
      db,
      taskApi: () => api,
      priceOf: () => PRICE,
      submittedBefore: T0,
    });
    assert.equal(settled, 0);
    assert.equal((await db.listUpstreamTasks()).length, 1);
    assert.equal(await balance(), 900_000, "its reservation still held");
  });
});
