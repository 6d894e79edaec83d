import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startDeadline } from "../../src/net/deadline.ts";

describe("deadline", () => {
  it("fires when the time runs out, and says so", async () => {
    const deadline = startDeadline(20);
    await new Promise((resolve) => deadline.signal.addEventListener("abort", resolve));
    assert.equal(deadline.timedOut, true);
    assert.equal((deadline.signal.reason as DOMException).name, "TimeoutError");
    deadline.dispose();
  });

  it("fires with the caller's reason when the caller aborts, not as a timeout", () => {
    const caller = new AbortController();
    const deadline = startDeadline(10_000, caller.signal);
    caller.abort(new Error("client gone"));
    assert.equal(deadline.signal.aborted, true);
    assert.equal(deadline.timedOut, false);
    assert.match(String(deadline.signal.reason), /client gone/);
    deadline.dispose();
  });

  it("lets go of the caller's signal and its timer when disposed", async () => {
    const caller = new AbortController();
    const deadline = startDeadline(30, caller.signal);
    deadline.dispose();
    caller.abort();
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(deadline.signal.aborted, false, "neither the caller nor the timer reaches it");
  });

  it("starts aborted when the caller already is", () => {
    const deadline = startDeadline(1_000, AbortSignal.abort(new Error("already")));
    assert.equal(deadline.signal.aborted, true);
    deadline.dispose();
  });
});
