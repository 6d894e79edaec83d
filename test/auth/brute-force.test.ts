/** The failed-key guard with a pinned clock: lockout, Retry-After, sliding window, memory bound. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { clientOf, createBruteForceGuard, tooManyFailedAuth } from "../../src/auth/brute-force.ts";

function setup(options: { maxFailures?: number; windowMs?: number; maxAddresses?: number } = {}) {
  let now = 1_000_000;
  const guard = createBruteForceGuard({
    maxFailures: options.maxFailures ?? 3,
    windowMs: options.windowMs ?? 60_000,
    maxAddresses: options.maxAddresses,
    clock: () => now,
  });
  return {
    guard,
    advance(ms: number) {
      now += ms;
    },
  };
}

describe("brute-force guard", () => {
  it("locks an address out at its maxFailures-th failure, and says so exactly once", () => {
    const { guard, advance } = setup({ maxFailures: 3 });
    assert.equal(guard.lockoutOf("203.0.113.5"), undefined);
    assert.equal(guard.recordFailure("203.0.113.5").lockedOut, false);
    advance(1000);
    assert.equal(guard.recordFailure("203.0.113.5").lockedOut, false);
    assert.equal(guard.lockoutOf("203.0.113.5"), undefined, "two failures of three: still open");
    advance(1000);
    assert.equal(guard.recordFailure("203.0.113.5").lockedOut, true);
    assert.ok(guard.lockoutOf("203.0.113.5"), "the third failure locks it");
    // A check that was already in flight and fails too: counted, but not a new lockout.
    assert.equal(guard.recordFailure("203.0.113.5").lockedOut, false);
  });

  it("gives Retry-After as the seconds until the oldest failure leaves the window", () => {
    const { guard, advance } = setup({ maxFailures: 3, windowMs: 60_000 });
    guard.recordFailure("203.0.113.5"); // t = 0
    advance(10_000);
    guard.recordFailure("203.0.113.5"); // t = 10 s
    advance(10_000);
    guard.recordFailure("203.0.113.5"); // t = 20 s
    advance(5_500); // t = 25.5 s: the first failure leaves at 60 s
    assert.deepEqual(guard.lockoutOf("203.0.113.5"), { retryAfterSeconds: 35 });
    advance(34_000); // t = 59.5 s
    assert.deepEqual(guard.lockoutOf("203.0.113.5"), { retryAfterSeconds: 1 });
    advance(500); // t = 60 s: the first failure is out, two are left
    assert.equal(guard.lockoutOf("203.0.113.5"), undefined);
  });

  it("slides: after the lockout one more failure locks the address again", () => {
    const { guard, advance } = setup({ maxFailures: 3, windowMs: 60_000 });
    for (let i = 0; i < 3; i += 1) {
      guard.recordFailure("203.0.113.5");
      advance(10_000);
    }
    advance(30_000); // t = 60 s: the first failure (t = 0) left the window
    assert.equal(guard.lockoutOf("203.0.113.5"), undefined);
    assert.equal(guard.recordFailure("203.0.113.5").lockedOut, true);
    // Locked until the failure of t = 10 s leaves, at 70 s.
    assert.deepEqual(guard.lockoutOf("203.0.113.5"), { retryAfterSeconds: 10 });
  });

  it("never allows more than maxFailures failures per window, whatever the timing", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 30_000 }), { maxLength: 60 }), (gaps) => {
        const maxFailures = 4;
        const windowMs = 60_000;
        const { guard, advance } = setup({ maxFailures, windowMs });
        const counted: number[] = [];
        let now = 0;
        for (const gap of gaps) {
          advance(gap);
          now += gap;
          // An attacker retries as soon as it is let in, and always fails.
          if (guard.lockoutOf("198.51.100.9")) continue;
          guard.recordFailure("198.51.100.9");
          counted.push(now);
          const inWindow = counted.filter((at) => at > now - windowMs).length;
          assert.ok(inWindow <= maxFailures, `${inWindow} failures within one window`);
        }
      }),
    );
  });

  it("counts addresses apart: one locked out does not touch another", () => {
    const { guard } = setup({ maxFailures: 2 });
    guard.recordFailure("203.0.113.5");
    guard.recordFailure("203.0.113.5");
    assert.ok(guard.lockoutOf("203.0.113.5"));
    assert.equal(guard.lockoutOf("203.0.113.6"), undefined);
    assert.equal(guard.recordFailure("203.0.113.6").lockedOut, false);
  });

  it("counts an IPv6 /64 as one client, and an IPv4-mapped address as its IPv4", () => {
    const { guard } = setup({ maxFailures: 2 });
    guard.recordFailure("2001:db8:1:2::1");
    guard.recordFailure("2001:db8:1:2:ffff:1234:5678:9abc");
    assert.ok(guard.lockoutOf("2001:db8:1:2:aaaa::7"), "another address of the same /64");
    assert.equal(guard.lockoutOf("2001:db8:1:3::1"), undefined, "the next /64 is another client");

    guard.recordFailure("::ffff:192.0.2.1");
    guard.recordFailure("192.0.2.1");
    assert.ok(guard.lockoutOf("::ffff:192.0.2.1"));
    assert.ok(guard.lockoutOf("192.0.2.1"));
  });

  it("names clients by address, /64 or mapped IPv4", () => {
    assert.equal(clientOf("192.0.2.1"), "192.0.2.1");
    assert.equal(clientOf("::ffff:192.0.2.1"), "192.0.2.1");
    assert.equal(clientOf("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert.equal(clientOf("fe80::1%eth0"), "fe80::/64");
    assert.equal(clientOf("::1"), "::/64");
    assert.equal(clientOf(undefined), "unknown");
  });

  it("forgets addresses whose failures all left the window", () => {
    const { guard, advance } = setup({ windowMs: 60_000 });
    guard.recordFailure("203.0.113.1");
    guard.recordFailure("203.0.113.2");
    assert.equal(guard.trackedAddresses, 2);
    advance(60_000);
    guard.recordFailure("203.0.113.3");
    assert.equal(guard.trackedAddresses, 1);
  });

  it("tracks at most maxAddresses however many addresses fail", () => {
    const { guard, advance } = setup({ maxAddresses: 100 });
    for (let i = 0; i < 5000; i += 1) {
      guard.recordFailure(`10.0.${i >> 8}.${i & 255}`);
      advance(1);
      assert.ok(guard.trackedAddresses <= 100);
    }
  });

  it("evicts the oldest first", () => {
    const { guard, advance } = setup({ maxFailures: 2, maxAddresses: 2 });
    guard.recordFailure("203.0.113.1");
    guard.recordFailure("203.0.113.1");
    advance(1);
    guard.recordFailure("203.0.113.2");
    guard.recordFailure("203.0.113.2");
    advance(1);
    guard.recordFailure("203.0.113.3");
    assert.equal(guard.trackedAddresses, 2);
    assert.equal(guard.lockoutOf("203.0.113.1"), undefined, "the oldest is forgotten");
    assert.ok(guard.lockoutOf("203.0.113.2"), "the newer lockout stays");
  });

  it("refuses in the OpenAI shape with a Retry-After", () => {
    const error = tooManyFailedAuth({ retryAfterSeconds: 42 });
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterSeconds, 42);
    assert.deepEqual(error.toJSON().error, {
      message:
        "Too many requests with a wrong or missing API key from your address. Try again in 42 s.",
      type: "rate_limit_error",
      param: null,
      code: "too_many_failed_auth",
    });
  });
});
