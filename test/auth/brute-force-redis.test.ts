/**
 * The Redis wrong-key throttle against a real Redis, as two hubs (two connections): the
 * in-process throttle's answers, counts that add up across hubs, and the in-process fallback
 * at once when Redis is gone.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { Redis } from "ioredis";
import { createWrongKeyThrottle } from "../../src/auth/brute-force.ts";
import { createRedisWrongKeyThrottle } from "../../src/auth/brute-force-redis.ts";
import type { RedisLink } from "../../src/storage/redis.ts";
import {
  cleanUp,
  connectTest,
  deadPort,
  openLink,
  REDIS_URL,
  testPrefix,
} from "../helpers/redis.ts";

const prefix = testPrefix();
let now = 1_700_000_000_000;
const clock = () => now;
let namespaces = 0;
after(async () => {
  await cleanUp(prefix);
});

const settings = { maxFailures: 3, windowMs: 60_000, clock };

/** A throttle on `link` with its own in-process fallback. */
const throttleOn = (link: RedisLink, maxFailures = 3) =>
  createRedisWrongKeyThrottle({
    ...settings,
    maxFailures,
    link,
    fallback: createWrongKeyThrottle({ ...settings, maxFailures }),
  });

/** Two hubs sharing a Redis namespace no other test uses. */
async function hubs(maxFailures = 3) {
  namespaces += 1;
  const scope = `${prefix}${namespaces}:`;
  const links = [await connectTest(scope), await connectTest(scope)];
  const [a, b] = links.map((link) => throttleOn(link, maxFailures)) as [
    ReturnType<typeof throttleOn>,
    ReturnType<typeof throttleOn>,
  ];
  return { a, b, scope };
}

describe("Redis wrong-key throttle", () => {
  it("answers as the in-process throttle does, whichever hub gets each wrong key", async () => {
    const { a, b } = await hubs();
    let run = 0;
    const step = fc.record({
      // Bursts, pauses around the window and the throttles, and quiet spells right at the
      // forgetting point (2 min here) on either side.
      gap: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 70_000 }),
        fc.constantFrom(119_999, 120_000, 200_000),
      ),
      address: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5 })),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        run += 1;
        // Addresses of their own per run; 2 and 3 share a /64, 5 is 0 mapped into IPv6.
        const net = `${run >> 8}.${run & 255}`;
        const v6 = `2001:db8:${run.toString(16)}`;
        const addresses = [`10.${net}.1`, `10.${net}.2`, `${v6}:1::1`, `${v6}:1::ff`, `${v6}:2::1`];
        addresses.push(`::ffff:10.${net}.1`);
        const local = createWrongKeyThrottle(settings);
        for (const [index, { gap, address }] of steps.entries()) {
          now += gap;
          const hub = index % 2 === 0 ? a : b;
          const at = addresses[address];
          assert.deepEqual(await hub.recordWrongKey(at), local.recordWrongKey(at));
        }
      }),
      { numRuns: 150 },
    );
  });

  it("adds two hubs' wrong keys up to one throttle, which both answer", async () => {
    const { a, b } = await hubs();
    assert.equal((await a.recordWrongKey("203.0.113.1")).throttle, undefined);
    assert.equal((await b.recordWrongKey("203.0.113.1")).throttle, undefined);
    const third = await a.recordWrongKey("203.0.113.1");
    assert.deepEqual(third, {
      throttle: { retryAfterSeconds: 2 },
      started: true,
      client: "203.0.113.1",
    });
    const fourth = await b.recordWrongKey("203.0.113.1");
    assert.deepEqual(fourth.throttle, { retryAfterSeconds: 2 }, "the other hub throttles it too");
    assert.equal(fourth.started, false, "started once, on one hub");
    assert.equal((await b.recordWrongKey("203.0.113.2")).throttle, undefined);
  });

  it("doubles the throttle across hubs while the flood goes on, capped at a minute", async () => {
    const { a, b } = await hubs();
    const waits: number[] = [];
    for (let round = 0; round < 8; round += 1) {
      const results = [];
      for (const hub of [a, b, a]) results.push(await hub.recordWrongKey("203.0.113.1"));
      const started = results.find((result) => result.started)?.throttle;
      assert.ok(started, `round ${round} started a throttle`);
      waits.push(started.retryAfterSeconds);
      now += started.retryAfterSeconds * 1000;
    }
    assert.deepEqual(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
  });

  it("counts an IPv6 /64 as one client on both hubs", async () => {
    const { a, b } = await hubs(2);
    await a.recordWrongKey("2001:db8:1:2::1");
    const other = await b.recordWrongKey("2001:db8:1:2:ffff:1234:5678:9abc");
    assert.equal(other.client, "2001:db8:1:2::/64");
    assert.ok(other.throttle, "another address of the same /64, on the other hub");
    assert.equal((await a.recordWrongKey("2001:db8:1:3::1")).throttle, undefined);
  });

  it("forgets a quiet address: in its answers, and in Redis soon after", async () => {
    const { a, b, scope } = await hubs();
    for (const hub of [a, b, a]) await hub.recordWrongKey("203.0.113.1");
    now += 2_000 + 60_000;
    assert.equal((await b.recordWrongKey("203.0.113.1")).throttle, undefined, "left the window");
    now += 5 * 60_000;
    for (const hub of [a, b])
      assert.equal((await hub.recordWrongKey("203.0.113.1")).throttle, undefined);
    assert.deepEqual(
      (await a.recordWrongKey("203.0.113.1")).throttle,
      { retryAfterSeconds: 2 },
      "the first again",
    );
    const raw = new Redis(REDIS_URL);
    const ttl = await raw.pttl(`${scope}wrong-key:203.0.113.1`);
    raw.disconnect();
    assert.ok(ttl > 0 && ttl <= 120_000, `forgotten by Redis in ${ttl} ms`);
  });

  it("counts parallel wrong keys exactly: one throttle starts, maxFailures - 1 plain 401s", async () => {
    const { a, b } = await hubs(10);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, index) => (index % 2 ? a : b).recordWrongKey("198.51.100.7")),
    );
    assert.equal(results.filter((result) => result.started).length, 1);
    assert.equal(results.filter((result) => !result.throttle).length, 9);
  });
});

describe("Redis wrong-key throttle without Redis", () => {
  async function answersFromFallback(link: RedisLink) {
    const throttle = throttleOn(link, 2);
    const started = performance.now();
    const first = await throttle.recordWrongKey("192.0.2.50");
    const second = await throttle.recordWrongKey("192.0.2.50");
    assert.ok(performance.now() - started < 1_000, "answered at once");
    assert.equal(first.throttle, undefined);
    assert.ok(second.throttle, "the fallback counts: the throttle holds per instance");
  }

  it("uses the in-process throttle when Redis is down from the start", async () => {
    await answersFromFallback(
      openLink({ url: `redis://127.0.0.1:${await deadPort()}`, keyPrefix: prefix }),
    );
  });

  it("uses it when the connection is closed mid-run", async () => {
    const link = await connectTest(prefix);
    link.redis.disconnect();
    await answersFromFallback(link);
  });
});
