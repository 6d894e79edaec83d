/** Last-used times: many touches, one batch write; the timer flushes; stop flushes the rest. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { issueKey } from "../../src/auth/issue.ts";
import { createLastUsedTracker } from "../../src/auth/last-used.ts";
import { openSqliteDatabase } from "../../src/storage/db/sqlite.ts";

function recordingDb(options: { failFirst?: boolean } = {}) {
  const batches: Array<Map<string, number>> = [];
  let fail = options.failFirst ?? false;
  return {
    batches,
    db: {
      async touchKeys(lastUsed: ReadonlyMap<string, number>) {
        if (fail) {
          fail = false;
          throw new Error("database is locked");
        }
        batches.push(new Map(lastUsed));
      },
    },
  };
}

describe("last-used tracker", () => {
  it("writes many touches of many keys in one batch, with each key's latest time", async () => {
    let now = 1000;
    const { db, batches } = recordingDb();
    const tracker = createLastUsedTracker({ db, flushIntervalMs: 60_000, clock: () => now });
    for (let i = 0; i < 500; i += 1) {
      now += 1;
      tracker.touch(`key-${i % 5}`);
    }
    assert.equal(batches.length, 0, "no write per request");
    await tracker.flush();
    assert.equal(batches.length, 1);
    assert.deepEqual(
      batches[0],
      new Map([
        ["key-0", 1496],
        ["key-1", 1497],
        ["key-2", 1498],
        ["key-3", 1499],
        ["key-4", 1500],
      ]),
    );
    await tracker.flush();
    assert.equal(batches.length, 1, "nothing new, nothing written");
    await tracker.stop();
  });

  it("flushes on its timer", async () => {
    const { db, batches } = recordingDb();
    const tracker = createLastUsedTracker({ db, flushIntervalMs: 10 });
    tracker.touch("a");
    for (let waited = 0; batches.length === 0 && waited < 2000; waited += 10) await sleep(10);
    assert.equal(batches.length, 1);
    assert.ok(batches[0]?.has("a"));
    await tracker.stop();
  });

  it("stop flushes what is left and stops the timer", async () => {
    const { db, batches } = recordingDb();
    const tracker = createLastUsedTracker({ db, flushIntervalMs: 10 });
    tracker.touch("late");
    await tracker.stop();
    const count = batches.length;
    assert.ok(batches.some((batch) => batch.has("late")));
    await sleep(50);
    assert.equal(batches.length, count);
  });

  it("keeps a failed batch for the next flush, without losing newer touches", async () => {
    let now = 10;
    const { db, batches } = recordingDb({ failFirst: true });
    const errors: unknown[] = [];
    const tracker = createLastUsedTracker({
      db,
      flushIntervalMs: 60_000,
      clock: () => now,
      onError: (error) => errors.push(error),
    });
    tracker.touch("a");
    tracker.touch("b");
    await assert.rejects(tracker.flush(), /locked/);
    now = 20;
    tracker.touch("b");
    await tracker.flush();
    assert.equal(errors.length, 0, "a flush called directly rejects instead");
    assert.deepEqual(batches, [
      new Map([
        ["a", 10],
        ["b", 20],
      ]),
    ]);
    await tracker.stop();
  });

  it("writes last_used_at through the real database", async () => {
    const db = openSqliteDatabase(":memory:");
    const { id } = await issueKey(db, { name: "used", role: "client" });
    const tracker = createLastUsedTracker({ db, clock: () => 1_700_000_000_000 });
    tracker.touch(id);
    assert.equal((await db.findKey(id))?.lastUsedAt, null);
    await tracker.stop();
    assert.equal((await db.findKey(id))?.lastUsedAt, 1_700_000_000_000);
    await db.close();
  });
});
