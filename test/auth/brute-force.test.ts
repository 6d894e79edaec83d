/** The wrong-key throttle with a pinned clock: when it starts, how it grows, its memory bound. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { clientOf, createWrongKeyThrottle, tooManyWrongKeys } from "../../src/auth/brute-force.ts";

function setup(options: { maxFailures?: number; windowMs?: number; maxAddresses?: number } = {}) {
  let now = 1_000_000;
  const throttle = createWrongKeyThrottle({
    maxFailures: options.maxFailures ?? 3,
    windowMs: options.windowMs ?? 60_000,
    maxAddresses: options.maxAddresses,
    clock: () => now,
  });
  return {
    throttle,
    wrong: (address: string) => throttle.recordWrongKey(address),
    advance(ms: number) {
      now += ms;
    },
  };
}

describe("wrong-key throttle", () => {
  it("throttles an address at its maxFailures-th wrong key, and says so exactly once", () => {
    const { wrong } = setup();
    assert.equal(wrong("203.0.113.1").throttle, undefined);
    assert.equal(wrong("203.0.113.1").throttle, undefined);
    const third = wrong("203.0.113.1");
    assert.deepEqual(third.throttle, { retryAfterSeconds: 2 });
    assert.equal(third.started, true);
    const fourth = wrong("203.0.113.1");
    assert.ok(fourth.throttle);
    assert.equal(fourth.started, false);
  });

  it("is short and doubles while the flood goes on, capped at a minute", () => {
    const { wrong, advance } = setup();
    const waits: number[] = [];
    for (let round = 0; round < 8; round += 1) {
      // The flood: maxFailures wrong keys a round, the next round when the throttle ends.
      const throttles = [wrong("203.0.113.1"), wrong("203.0.113.1"), wrong("203.0.113.1")];
      const started = throttles.find((result) => result.started)?.throttle;
      assert.ok(started, `round ${round} started a throttle`);
      waits.push(started.retryAfterSeconds);
      advance(started.retryAfterSeconds * 1000);
    }
    assert.deepEqual(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
  });

  it("ends by itself: a few wrong keys later are plain 401s, and a quiet address starts afresh", () => {
    const { wrong, advance } = setup();
    for (let i = 0; i < 3; i += 1) wrong("203.0.113.1");
    advance(2_000);
    advance(60_000);
    assert.equal(wrong("203.0.113.1").throttle, undefined, "its wrong keys left the window");
    advance(5 * 60_000);
    for (let i = 0; i < 2; i += 1) assert.equal(wrong("203.0.113.1").throttle, undefined);
    assert.deepEqual(wrong("203.0.113.1").throttle, { retryAfterSeconds: 2 }, "the first again");
  });

  it("never answers more than maxFailures wrong keys per window with 401, whatever the timing", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 30_000 }), { maxLength: 60 }), (gaps) => {
        const { wrong, advance } = setup({ maxFailures: 4, windowMs: 60_000 });
        const plain: number[] = [];
        let now = 0;
        for (const gap of gaps) {
          advance(gap);
          now += gap;
          if (!wrong("203.0.113.9").throttle) plain.push(now);
        }
        for (const [index, at] of plain.entries()) {
          const inWindow = plain.slice(index).filter((later) => later < at + 60_000);
          assert.ok(inWindow.length <= 4, `more than 4 plain 401s within a minute: ${plain}`);
        }
      }),
    );
  });

  it("counts addresses apart: one throttled does not touch another", () => {
    const { wrong } = setup({ maxFailures: 2 });
    wrong("203.0.113.1");
    assert.ok(wrong("203.0.113.1").throttle);
    assert.equal(wrong("203.0.113.2").throttle, undefined);
  });

  it("counts an IPv6 /64 as one client, and an IPv4-mapped address as its IPv4", () => {
    const { wrong } = setup({ maxFailures: 2 });
    wrong("2001:db8:1:2::1");
    assert.ok(
      wrong("2001:db8:1:2:ffff:1234:5678:9abc").throttle,
      "another address of the same /64",
    );
    assert.equal(wrong("2001:db8:1:3::1").throttle, undefined, "the next /64 is another client");
    wrong("::ffff:192.0.2.1");
    assert.ok(wrong("192.0.2.1").throttle);
  });

  it("names clients by address, /64 or mapped IPv4", () => {
    assert.equal(clientOf("192.0.2.1"), "192.0.2.1");
    assert.equal(clientOf("::ffff:192.0.2.1"), "192.0.2.1");
    assert.equal(clientOf("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert.equal(clientOf("fe80::1%eth0"), "fe80::/64");
    assert.equal(clientOf("::1"), "::/64");
    assert.equal(clientOf(undefined), "unknown");
  });

  it("forgets addresses quiet for a while", () => {
    const { throttle, wrong, advance } = setup({ windowMs: 60_000 });
    wrong("203.0.113.1");
    wrong("203.0.113.2");
    assert.equal(throttle.trackedAddresses, 2);
    advance(120_001);
    wrong("203.0.113.3");
    assert.equal(throttle.trackedAddresses, 1);
  });

  it("tracks at most maxAddresses however many addresses send wrong keys", () => {
    const { throttle, wrong, advance } = setup({ maxAddresses: 100 });
    for (let i = 0; i < 5000; i += 1) {
      wrong(`10.0.${i >> 8}.${i & 255}`);
      advance(1);
      assert.ok(throttle.trackedAddresses <= 100);
    }
  });

  it("evicts the oldest first", () => {
    const { throttle, wrong, advance } = setup({ maxFailures: 2, maxAddresses: 2 });
    wrong("203.0.113.1");
    advance(1);
    wrong("203.0.113.2");
    advance(1);
    wrong("203.0.113.3");
    assert.equal(throttle.trackedAddresses, 2);
    assert.equal(
      wrong("203.0.113.1").throttle,
      undefined,
      "the oldest was forgotten: its count restarts",
    );
    assert.ok(wrong("203.0.113.3").throttle, "the newer count stays");
  });

  it("answers in the OpenAI shape with a Retry-After", () => {
    const error = tooManyWrongKeys({ retryAfterSeconds: 42 });
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterSeconds, 42);
    assert.deepEqual(error.toJSON().error, {
      message:
        "Incorrect API key provided, and too many wrong keys from your address: wait 42 s. Requests with a valid key are served meanwhile.",
      type: "rate_limit_error",
      param: null,
      code: "too_many_failed_auth",
    });
  });
});
