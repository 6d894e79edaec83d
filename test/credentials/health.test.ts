/** Credential health with a pinned clock: the back-off, one probe at a time, what clears it. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createCredentialHealth } from "../../src/credentials/health.ts";

function setup() {
  let now = 1_000_000;
  return {
    health: createCredentialHealth(() => now),
    advance(ms: number) {
      now += ms;
    },
  };
}

describe("credential health", () => {
  it("quarantines on a refusal for 30 s, doubling to at most 30 minutes", () => {
    const { health } = setup();
    const waits = Array.from({ length: 9 }, () => health.refused("a", 401, null) / 1000);
    assert.deepEqual(waits, [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
  });

  it("lets one probe through when the wait ends, and no second one at the same time", () => {
    const { health, advance } = setup();
    health.refused("a", 403, "Forbidden");
    assert.equal(health.usability("a"), "blocked");
    advance(30_000);
    assert.equal(health.usability("a"), "probe");
    const end = health.beginProbe("a");
    assert.equal(health.usability("a"), "blocked", "one probe in flight at a time");
    end();
    assert.equal(health.usability("a"), "probe");
  });

  it("a success clears a quarantine; a rate limit neither clears nor resets its back-off", () => {
    const { health, advance } = setup();
    health.refused("a", 401, "Incorrect API key provided");
    assert.equal(health.get("a")?.lastError, "Incorrect API key provided");
    health.coolDown("a", 5);
    advance(5_000);
    assert.equal(health.usability("a"), "healthy", "the cool-down ended");
    assert.equal(health.refused("a", 401, null), 60_000, "the refusals were remembered");
    health.succeeded("a");
    assert.equal(health.usability("a"), "healthy");
    assert.equal(health.refused("a", 401, null), 30_000, "a success starts the back-off afresh");
  });

  it("an admin's reset forgets everything, a probe in flight included", () => {
    const { health, advance } = setup();
    health.refused("a", 401, null);
    advance(30_000);
    health.beginProbe("a");
    health.reset("a");
    assert.equal(health.usability("a"), "healthy");
    assert.equal(health.get("a"), undefined);
  });
});
