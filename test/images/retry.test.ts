import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  contentPolicy,
  internalError,
  invalidRequest,
  upstreamFailed,
  upstreamRateLimited,
  upstreamTimeout,
  upstreamUnavailable,
} from "../../src/errors.ts";
import {
  classifyFailure,
  DEFAULT_BACKOFF,
  mayFallBack,
  type RetryPolicy,
  retryDelayMs,
} from "../../src/images/retry.ts";

const policy = (changes: Partial<RetryPolicy> = {}): RetryPolicy => ({
  maxAttempts: 3,
  retryBillable: false,
  random: () => 0.5,
  ...DEFAULT_BACKOFF,
  ...changes,
});

const unreachable = upstreamFailed("Could not reach OpenAI.", { code: "upstream_unreachable" });
const lost = upstreamFailed("lost", { code: "upstream_connection_lost" });
const serverError = upstreamFailed("500", { code: "upstream_error", upstreamStatus: 500 });

describe("classifyFailure", () => {
  const cases: Array<[string, unknown, ReturnType<typeof classifyFailure>]> = [
    ["connection refused", unreachable, "not_sent"],
    ["429 with Retry-After", upstreamRateLimited("slow", 2), "asked_to_wait"],
    ["503 with Retry-After", upstreamUnavailable("busy", 2), "asked_to_wait"],
    ["429 without Retry-After", upstreamRateLimited("slow"), "refused"],
    ["503 without Retry-After", upstreamUnavailable("busy"), "refused"],
    ["500", serverError, "refused"],
    ["401", upstreamFailed("no", { code: "upstream_auth_failed", upstreamStatus: 401 }), "refused"],
    ["timeout", upstreamTimeout("slow"), "maybe_billed"],
    ["connection lost after sending", lost, "maybe_billed"],
    [
      "unreadable reply",
      upstreamFailed("x", { code: "upstream_invalid_response" }),
      "maybe_billed",
    ],
    ["oversized reply", upstreamFailed("x", { code: "upstream_reply_too_large" }), "maybe_billed"],
    ["content policy", contentPolicy("no"), "final"],
    ["the request rejected upstream", invalidRequest("bad size", "size"), "final"],
    ["a fault of ours", internalError(), "final"],
    ["not a HubError", new Error("bug"), "final"],
  ];
  for (const [name, error, kind] of cases) {
    test(`${name} is ${kind}`, () => assert.equal(classifyFailure(error), kind));
  }
});

describe("retryDelayMs", () => {
  test("connection refused: full jitter under a ceiling that doubles per try", () => {
    assert.equal(retryDelayMs(unreachable, 1, 60_000, policy({ random: () => 0.5 })), 125);
    assert.equal(retryDelayMs(unreachable, 2, 60_000, policy({ random: () => 0.5 })), 250);
    assert.equal(retryDelayMs(unreachable, 2, 60_000, policy({ random: () => 0 })), 0);
    const capped = retryDelayMs(
      unreachable,
      9,
      60_000,
      policy({ maxAttempts: 10, random: () => 0.999 }),
    );
    assert.ok(capped !== undefined && capped < DEFAULT_BACKOFF.maxBackoffMs);
  });

  test("Retry-After: waits what the upstream asked, plus jitter, inside the budget", () => {
    const delay = retryDelayMs(upstreamRateLimited("slow", 2), 1, 60_000, policy());
    assert.equal(delay, 2000 + 0.5 * DEFAULT_BACKOFF.baseBackoffMs);
    assert.equal(retryDelayMs(upstreamUnavailable("busy", 2), 1, 60_000, policy()), delay);
  });

  test("Retry-After past the request's time budget: no retry", () => {
    assert.equal(retryDelayMs(upstreamRateLimited("slow", 5), 1, 4_000, policy()), undefined);
    assert.equal(retryDelayMs(upstreamUnavailable("busy", 5), 1, 4_000, policy()), undefined);
  });

  test("a backoff that would outlast the budget: no retry", () => {
    assert.equal(retryDelayMs(unreachable, 1, 100, policy({ random: () => 0.9 })), undefined);
  });

  test("no more than maxAttempts tries", () => {
    assert.equal(retryDelayMs(unreachable, 3, 60_000, policy({ maxAttempts: 3 })), undefined);
    assert.equal(retryDelayMs(unreachable, 1, 60_000, policy({ maxAttempts: 1 })), undefined);
  });

  test("what may have made a billable image is not retried", () => {
    for (const error of [upstreamTimeout("slow"), lost, serverError, upstreamRateLimited("x")]) {
      assert.equal(retryDelayMs(error, 1, 60_000, policy()), undefined);
    }
  });

  test("a route that allows it retries those too, with backoff; never the final ones", () => {
    const billable = policy({ retryBillable: true });
    for (const error of [upstreamTimeout("slow"), lost, serverError]) {
      assert.equal(retryDelayMs(error, 1, 60_000, billable), 125);
    }
    assert.equal(retryDelayMs(contentPolicy("no"), 1, 60_000, billable), undefined);
    assert.equal(retryDelayMs(new Error("bug"), 1, 60_000, billable), undefined);
  });
});

describe("mayFallBack", () => {
  test("after failures that made nothing", () => {
    for (const error of [
      unreachable,
      serverError,
      upstreamRateLimited("x"),
      upstreamUnavailable("x"),
    ]) {
      assert.equal(mayFallBack(error, false), true);
    }
  });

  test("not after failures that may have made a billable image, unless the route allows it", () => {
    for (const error of [upstreamTimeout("slow"), lost]) {
      assert.equal(mayFallBack(error, false), false);
      assert.equal(mayFallBack(error, true), true);
    }
  });

  test("never when the request itself is at fault", () => {
    assert.equal(mayFallBack(contentPolicy("no"), true), false);
    assert.equal(mayFallBack(invalidRequest("bad", "size"), true), false);
  });
});
