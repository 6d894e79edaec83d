/**
 * The Redis rate limiter against a real Redis, as two hubs (two connections): the same answers
 * as the in-process limiter, one window for both, atomic under parallel checks, and the
 * in-process fallback, at once, when Redis is gone.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { Redis } from "ioredis";
import {
  createRateLimiter,
  type RateLimitResult,
  type RateLimits,
} from "../../src/auth/rate-limit.ts";
import { createRedisRateLimiter } from "../../src/auth/rate-limit-redis.ts";
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
let links: RedisLink[] = [];
let serial = 0;
/** A key id no earlier test used. */
function freshKey(): string {
  serial += 1;
  return `key-${serial}`;
}

before(async () => {
  links = [await connectTest(prefix), await connectTest(prefix)];
});
after(async () => {
  await cleanUp(prefix);
});

/** Two hubs sharing Redis, each with its own in-process fallback. */
function hubs() {
  return links.map((link) =>
    createRedisRateLimiter({ link, clock, fallback: createRateLimiter({ clock }) }),
  );
}

type Step = { advance: number; key: string; limits: RateLimits; images: number };

/** Runs the steps through the in-process limiter and through both hubs in turn. */
async function bothWays(steps: readonly Step[]) {
  const keys = new Map<string, string>();
  const local = createRateLimiter({ clock });
  const shared = hubs();
  const expected: RateLimitResult[] = [];
  const actual: RateLimitResult[] = [];
  for (const [index, step] of steps.entries()) {
    now += step.advance;
    if (!keys.has(step.key)) keys.set(step.key, freshKey());
    const key = keys.get(step.key) as string;
    expected.push(local.check(key, step.limits, step.images));
    actual.push(
      await (shared[index % 2] as (typeof shared)[0]).check(key, step.limits, step.images),
    );
  }
  assert.deepEqual(actual, expected);
  return actual;
}

const step = (advance: number, limits: RateLimits, images = 1, key = "k"): Step => ({
  advance,
  key,
  limits,
  images,
});

describe("Redis rate limiter", () => {
  it("answers the in-process limiter's cases exactly as it does", async () => {
    const rpm3 = { rpm: 3, ipm: null };
    const ipm5 = { rpm: 100, ipm: 5 };
    const rpm1 = { rpm: 1, ipm: null };
    // From test/auth/rate-limit.test.ts: rpm with Retry-After 35, then 34.999 s and 1 ms on.
    const rpm = await bothWays([
      step(0, rpm3),
      step(10_000, rpm3),
      step(10_000, rpm3),
      step(5_000, rpm3),
      step(34_999, rpm3),
      step(1, rpm3),
    ]);
    assert.deepEqual(rpm[3], { allowed: false, limit: "rpm", max: 3, retryAfterSeconds: 35 });
    assert.deepEqual(rpm.at(-1), { allowed: true });
    const ipm = await bothWays([
      step(0, ipm5, 2),
      step(20_000, ipm5, 2),
      step(1_000, ipm5, 2),
      step(0, ipm5, 1),
    ]);
    assert.deepEqual(ipm[2], { allowed: false, limit: "ipm", max: 5, retryAfterSeconds: 39 });
    // A denied request consumes nothing: allowed again 60 s after the one allowed request.
    const denied = await bothWays([
      step(0, rpm1),
      ...Array.from({ length: 50 }, () => step(1_000, rpm1)),
      step(10_000, rpm1),
    ]);
    assert.deepEqual(denied.at(-1), { allowed: true });
    await bothWays([step(0, rpm1, 1, "a"), step(0, rpm1, 1, "a"), step(0, rpm1, 1, "b")]);
    await bothWays([step(0, { rpm: null, ipm: 4 }, 10)]);
    await bothWays([
      ...Array.from({ length: 5 }, () => step(0, { rpm: 10, ipm: null })),
      step(0, { rpm: 3, ipm: null }),
    ]);
    await bothWays([step(0, { rpm: 0, ipm: null }), step(0, { rpm: null, ipm: 0 })]);
  });

  it("agrees with the in-process limiter on any sequence of requests", async () => {
    const limit = (max: number) => fc.option(fc.integer({ min: 1, max }), { nil: null });
    const arbitraryStep = fc.record({
      advance: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 0, max: 70_000 }),
      ),
      key: fc.constantFrom("a", "b"),
      limits: fc.record({ rpm: limit(5), ipm: limit(8) }),
      images: fc.integer({ min: 1, max: 4 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(arbitraryStep, { maxLength: 40 }), async (steps) => {
        await bothWays(steps);
      }),
      {
        numRuns: 150,
      },
    );
  });

  it("allows a key its rpm once across two hubs, denies on both alike, and frees it after the window", async () => {
    const [a, b] = hubs() as [ReturnType<typeof hubs>[0], ReturnType<typeof hubs>[0]];
    const key = freshKey();
    const limits = { rpm: 4, ipm: null };
    for (const hub of [a, b, a, b])
      assert.deepEqual(await hub.check(key, limits, 1), { allowed: true });
    now += 15_000;
    const expected = { allowed: false, limit: "rpm", max: 4, retryAfterSeconds: 45 };
    assert.deepEqual(await a.check(key, limits, 1), expected);
    assert.deepEqual(await b.check(key, limits, 1), expected, "the denial consumed nothing");
    now += 45_000;
    assert.deepEqual(await b.check(key, limits, 1), { allowed: true });
  });

  it("allows exactly rpm of 50 parallel checks from two connections", async () => {
    const shared = hubs();
    const key = freshKey();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        (shared[index % 2] as (typeof shared)[0]).check(key, { rpm: 20, ipm: null }, 1),
      ),
    );
    assert.equal(results.filter((result) => result.allowed).length, 20);
    const imageKey = freshKey();
    const images = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        (shared[index % 2] as (typeof shared)[0]).check(imageKey, { rpm: null, ipm: 30 }, 2),
      ),
    );
    assert.equal(images.filter((result) => result.allowed).length, 15, "30 images at 2 each");
  });

  it("keeps a window no longer than a minute, and nothing for a key without limits", async () => {
    const key = freshKey();
    const [hub] = hubs();
    await hub?.check(key, { rpm: 5, ipm: null }, 1);
    await hub?.check(`${key}-free`, { rpm: null, ipm: null }, 1);
    const raw = new Redis(REDIS_URL);
    const ttl = await raw.pttl(`${prefix}rate:${key}`);
    assert.ok(ttl > 0 && ttl <= 60_000, `expires in ${ttl} ms`);
    assert.equal(await raw.exists(`${prefix}rate:${key}-free`), 0);
    raw.disconnect();
  });
});

describe("Redis rate limiter without Redis", () => {
  async function answersFromFallback(link: RedisLink) {
    const fallback = createRateLimiter({ clock });
    const limiter = createRedisRateLimiter({ link, clock, fallback });
    const key = freshKey();
    const started = performance.now();
    const first = await limiter.check(key, { rpm: 1, ipm: null }, 1);
    const second = await limiter.check(key, { rpm: 1, ipm: null }, 1);
    assert.ok(performance.now() - started < 1_000, "answered at once");
    assert.deepEqual(first, { allowed: true });
    assert.equal(second.allowed, false, "the fallback counts: per instance, not no limit");
  }

  it("uses the in-process limiter when Redis is down from the start", async () => {
    const link = openLink({ url: `redis://127.0.0.1:${await deadPort()}`, keyPrefix: prefix });
    await answersFromFallback(link);
  });

  it("uses it when the connection is closed mid-run", async () => {
    const link = await connectTest(prefix);
    link.redis.disconnect();
    await answersFromFallback(link);
  });

  it("uses it while Redis is unreachable, and shares again once it is back", async () => {
    const proxy = await startProxy();
    const link = openLink({ url: proxy.url, keyPrefix: prefix });
    assert.equal(await link.whenReady(2_000), true);
    const limiter = createRedisRateLimiter({ link, clock, fallback: createRateLimiter({ clock }) });
    const key = freshKey();
    assert.equal((await limiter.check(key, { rpm: 1, ipm: null }, 1)).allowed, true);
    await proxy.down();
    // Shared state is out of reach: this instance's fallback has not seen the key yet.
    assert.equal((await limiter.check(key, { rpm: 1, ipm: null }, 1)).allowed, true);
    await proxy.up();
    assert.equal(await link.whenReady(5_000), true);
    assert.equal(
      (await limiter.check(key, { rpm: 1, ipm: null }, 1)).allowed,
      false,
      "Redis remembered",
    );
  });

  it("uses it when Redis stops answering, within a second", async () => {
    const proxy = await startProxy();
    const link = openLink({ url: proxy.url, keyPrefix: prefix });
    assert.equal(await link.whenReady(2_000), true);
    proxy.hang(true);
    await answersFromFallback(link);
  });
});
