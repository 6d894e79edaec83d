/**
 * Credential health shared through a real Redis, as two hubs (two connections): what one sees
 * the other sees at its next sync, the back-off grows with both hubs' refusals, one probe at a
 * time across hubs, and each hub's own view, at once, when Redis is gone.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Redis } from "ioredis";
import { MAX_QUARANTINE_MS } from "../../src/credentials/health.ts";
import { createSharedCredentialHealth } from "../../src/credentials/health-shared.ts";
import type { RedisLink } from "../../src/storage/redis.ts";
import {
  cleanUp,
  connectTest,
  deadPort,
  openLink,
  REDIS_URL,
  startProxy,
  testPrefix,
} from "../helpers/redis.ts";

const prefix = testPrefix();
let now = 1_700_000_000_000;
const clock = () => now;
let namespaces = 0;
after(async () => {
  await cleanUp(prefix);
});

/** Two hubs sharing a Redis namespace no other test uses. */
async function hubs() {
  namespaces += 1;
  const scope = `${prefix}${namespaces}:`;
  const [a, b] = [await connectTest(scope), await connectTest(scope)].map((link) =>
    createSharedCredentialHealth({ link, clock }),
  ) as [Health, Health];
  return { a, b, scope };
}
type Health = ReturnType<typeof createSharedCredentialHealth>;

async function ttlOf(key: string): Promise<number> {
  const raw = new Redis(REDIS_URL);
  try {
    return await raw.pttl(key);
  } finally {
    raw.disconnect();
  }
}

describe("shared credential health", () => {
  it("shows a 429 one hub saw on the other at its next sync, until the same moment", async () => {
    const { a, b, scope } = await hubs();
    await a.coolDown("cred", 20);
    assert.equal(b.usability("cred"), "healthy", "not before it syncs");
    await b.sync(["cred", "other"]);
    assert.deepEqual(b.get("cred"), a.get("cred"));
    assert.equal(b.get("cred")?.state, "cooling_down");
    assert.equal(b.get("cred")?.until, now + 20_000);
    assert.equal(b.usability("other"), "healthy");
    const ttl = await ttlOf(`${scope}credential-health:cred`);
    assert.ok(ttl > 20_000 && ttl <= 25_000, `kept ${ttl} ms: the wait and a margin`);
    now += 20_000;
    assert.equal(b.usability("cred"), "healthy", "the cool-down ended");
  });

  it("grows the back-off with both hubs' refusals: 30 s, 60 s, then 120 s", async () => {
    const { a, b, scope } = await hubs();
    const since = now;
    assert.equal(await a.refused("cred", 401, "Incorrect API key provided"), 30_000);
    assert.equal(await a.refused("cred", 401, null), 60_000);
    now += 1_000;
    // B has not synced: its own count says 30 s, the shared one says the third step.
    assert.equal(await b.refused("cred", 403, "Forbidden"), 120_000);
    assert.equal(b.get("cred")?.until, now + 120_000);
    await a.sync(["cred"]);
    assert.deepEqual(a.get("cred"), b.get("cred"));
    assert.equal(a.get("cred")?.since, since, "in trouble since the first refusal");
    assert.equal(a.get("cred")?.lastError, "Forbidden");
    assert.match(a.get("cred")?.detail ?? "", /403 \(refused the key\) 3 time\(s\)/);
    assert.equal(a.usability("cred"), "blocked");
    const ttl = await ttlOf(`${scope}credential-health:cred`);
    assert.ok(ttl > MAX_QUARANTINE_MS * 2, "the count outlives the quarantine");
  });

  it("clears a quarantine for every hub when one hub's call succeeds", async () => {
    const { a, b } = await hubs();
    await a.refused("cred", 401, null);
    await a.refused("cred", 401, null);
    now += 60_000;
    await b.sync(["cred"]);
    assert.equal(b.usability("cred"), "probe");
    await b.succeeded("cred");
    assert.equal(a.usability("cred"), "probe", "A has not synced yet");
    await a.sync(["cred"]);
    assert.equal(a.usability("cred"), "healthy");
    assert.equal(await a.refused("cred", 401, null), 30_000, "the back-off starts afresh");
  });

  it("keeps a cool-down through a success and the refusal count through a cool-down", async () => {
    const { a, b } = await hubs();
    await a.refused("cred", 401, null);
    await b.coolDown("cred", 5);
    await a.sync(["cred"]);
    assert.equal(a.get("cred")?.state, "cooling_down");
    now += 5_000;
    assert.equal(a.usability("cred"), "healthy");
    assert.equal(await a.refused("cred", 401, null), 60_000, "the refusals were remembered");
    await b.coolDown("cred", 10);
    await b.succeeded("cred");
    await a.sync(["cred"]);
    assert.equal(a.get("cred")?.state, "cooling_down", "a success ends a refusal, not a 429");
  });

  it("lets one hub take the probe after a quarantine, and the other once it is over", async () => {
    const { a, b, scope } = await hubs();
    await a.refused("cred", 401, null);
    now += 30_000;
    await b.sync(["cred"]);
    const [endA, endB] = await Promise.all([a.tryBeginProbe("cred"), b.tryBeginProbe("cred")]);
    assert.equal([endA, endB].filter(Boolean).length, 1, "exactly one probe");
    const [winner, loser, end] = endA ? [a, b, endA] : [b, a, endB as () => void];
    assert.equal(await winner.tryBeginProbe("cred"), undefined, "one at a time on a hub too");
    assert.equal(winner.usability("cred"), "blocked");
    assert.equal(loser.usability("cred"), "probe", "the loser's own view is free again");
    const ttl = await ttlOf(`${scope}credential-probe:cred`);
    assert.ok(ttl > 0 && ttl <= 120_000, `a crashed prober's lock lapses (${ttl} ms)`);
    end();
    await winner.sync(["cred"]); // the release went first on the same connection
    const next = await loser.tryBeginProbe("cred");
    assert.ok(next, "free after the release");
    next();
  });

  it("forgets everything on every hub after an admin's reset, the probe lock included", async () => {
    const { a, b } = await hubs();
    await a.refused("cred", 401, null);
    now += 30_000;
    await b.sync(["cred"]);
    assert.ok(await b.tryBeginProbe("cred"));
    await a.reset("cred");
    await b.sync(["cred"]);
    assert.equal(b.get("cred"), undefined);
    assert.equal(await a.refused("cred", 401, null), 30_000);
    now += 30_000;
    assert.ok(await a.tryBeginProbe("cred"), "the old lock went with the reset");
  });

  it("sees its own unawaited write in a sync that follows it", async () => {
    const { a } = await hubs();
    void a.coolDown("cred", 30);
    await a.sync(["cred"]);
    assert.equal(a.get("cred")?.state, "cooling_down");
  });
});

describe("shared credential health without Redis", () => {
  /** Every method answers at once, on the hub's own view. */
  async function worksAlone(link: RedisLink) {
    const health = createSharedCredentialHealth({ link, clock });
    const started = performance.now();
    await health.coolDown("hot", 10);
    assert.equal(await health.refused("cred", 401, null), 30_000);
    await health.sync(["cred", "hot"]);
    assert.equal(health.usability("cred"), "blocked", "the sync kept the local view");
    assert.equal(health.get("hot")?.state, "cooling_down");
    now += 30_000;
    const end = await health.tryBeginProbe("cred");
    assert.ok(end, "the probe is this hub's alone");
    assert.equal(await health.tryBeginProbe("cred"), undefined);
    end();
    await health.succeeded("cred");
    await health.reset("hot");
    assert.equal(health.usability("cred"), "healthy");
    assert.ok(performance.now() - started < 1_000, "answered at once");
  }

  it("works on each hub's own view when Redis is down from the start", async () => {
    await worksAlone(openLink({ url: `redis://127.0.0.1:${await deadPort()}`, keyPrefix: prefix }));
  });

  it("works on it when the connection is closed mid-run", async () => {
    const link = await connectTest(prefix);
    link.redis.disconnect();
    await worksAlone(link);
  });

  it("shares again once Redis is back", async () => {
    const proxy = await startProxy();
    const scope = `${prefix}proxied:`;
    const link = openLink({ url: proxy.url, keyPrefix: scope });
    assert.equal(await link.whenReady(2_000), true);
    const a = createSharedCredentialHealth({ link, clock });
    const b = createSharedCredentialHealth({ link: await connectTest(scope), clock });
    await proxy.down();
    await a.coolDown("cred", 60);
    assert.equal(a.get("cred")?.state, "cooling_down", "applied here at once");
    await proxy.up();
    assert.equal(await link.whenReady(5_000), true);
    await a.coolDown("cred", 60);
    await b.sync(["cred"]);
    assert.equal(b.get("cred")?.state, "cooling_down");
  });
});
