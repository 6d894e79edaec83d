/** The sliding-window limiter with a pinned clock: rpm, ipm, Retry-After, and keys apart. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRateLimiter, type RateLimitResult, rateLimited } from "../../src/auth/rate-limit.ts";

function setup() {
  let now = 1_000_000;
  const limiter = createRateLimiter({ clock: () => now });
  return {
    limiter,
    advance(ms: number) {
      now += ms;
    },
  };
}

function denied(result: RateLimitResult) {
  assert.equal(result.allowed, false);
  return result as Extract<RateLimitResult, { allowed: false }>;
}

describe("rate limiter", () => {
  it("lets a key without limits through, always", () => {
    const { limiter } = setup();
    for (let i = 0; i < 1000; i += 1) {
      assert.equal(limiter.check("k", { rpm: null, ipm: null }, 10).allowed, true);
    }
  });

  it("allows rpm requests a minute, then says how long until the oldest leaves the window", () => {
    const { limiter, advance } = setup();
    const limits = { rpm: 3, ipm: null };
    assert.equal(limiter.check("k", limits, 1).allowed, true);
    advance(10_000);
    assert.equal(limiter.check("k", limits, 1).allowed, true);
    advance(10_000);
    assert.equal(limiter.check("k", limits, 1).allowed, true);
    advance(5_000);
    const result = denied(limiter.check("k", limits, 1));
    assert.equal(result.limit, "rpm");
    assert.equal(result.max, 3);
    // The first request (25 s ago) leaves the window in 35 s.
    assert.equal(result.retryAfterSeconds, 35);
    advance(34_999);
    assert.equal(limiter.check("k", limits, 1).allowed, false);
    advance(1);
    assert.equal(limiter.check("k", limits, 1).allowed, true);
  });

  it("counts images towards ipm and requests towards rpm", () => {
    const { limiter, advance } = setup();
    const limits = { rpm: 100, ipm: 5 };
    assert.equal(limiter.check("k", limits, 2).allowed, true);
    advance(20_000);
    assert.equal(limiter.check("k", limits, 2).allowed, true);
    advance(1_000);
    // 4 used; 2 more would be 6.
    const result = denied(limiter.check("k", limits, 2));
    assert.equal(result.limit, "ipm");
    assert.equal(result.max, 5);
    // Once the first 2 images leave (in 39 s) the request fits.
    assert.equal(result.retryAfterSeconds, 39);
    // A single image still fits now.
    assert.equal(limiter.check("k", limits, 1).allowed, true);
  });

  it("a denied request consumes nothing", () => {
    const { limiter, advance } = setup();
    const limits = { rpm: 1, ipm: null };
    assert.equal(limiter.check("k", limits, 1).allowed, true);
    for (let i = 0; i < 50; i += 1) {
      advance(1_000);
      assert.equal(limiter.check("k", limits, 1).allowed, false);
    }
    advance(10_000);
    // 60 s after the one allowed request, not after the last denied one.
    assert.equal(limiter.check("k", limits, 1).allowed, true);
  });

  it("keeps each key's window apart", () => {
    const { limiter } = setup();
    const limits = { rpm: 1, ipm: null };
    assert.equal(limiter.check("a", limits, 1).allowed, true);
    assert.equal(limiter.check("a", limits, 1).allowed, false);
    assert.equal(limiter.check("b", limits, 1).allowed, true);
  });

  it("a request for more images than ipm is told to wait a full window, naming the limit", () => {
    const { limiter } = setup();
    const result = denied(limiter.check("k", { rpm: null, ipm: 4 }, 10));
    assert.equal(result.limit, "ipm");
    assert.equal(result.retryAfterSeconds, 60);
    assert.match(rateLimited(result).message, /4 images per minute/);
  });

  it("takes a lowered limit into account at once", () => {
    const { limiter } = setup();
    for (let i = 0; i < 5; i += 1) limiter.check("k", { rpm: 10, ipm: null }, 1);
    assert.equal(limiter.check("k", { rpm: 3, ipm: null }, 1).allowed, false);
  });
});

describe("rateLimited", () => {
  it("is a 429 rate_limit_exceeded with Retry-After seconds", () => {
    const error = rateLimited({ allowed: false, limit: "rpm", max: 60, retryAfterSeconds: 12 });
    assert.equal(error.status, 429);
    assert.equal(error.type, "rate_limit_error");
    assert.equal(error.code, "rate_limit_exceeded");
    assert.equal(error.retryAfterSeconds, 12);
    assert.match(error.message, /60 requests per minute/);
  });
});
