import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { allScenarios, onlyTargets, targetsOf } from "../../bench/scenarios.ts";

describe("bench --targets", () => {
  it("keeps the targets named, and bare, in every scenario", () => {
    const chosen = onlyTargets(allScenarios(), "floor-buffered, image-hub");
    assert.deepEqual(targetsOf(chosen), ["bare", "floor-buffered", "image-hub"]);
    const s1 = chosen.find((scenario) => scenario.id === "S1");
    assert.deepEqual(s1?.targets, ["bare", "image-hub"], "S1 never had the floors");
  });

  it("refuses a target that does not exist, naming those that do", () => {
    assert.throws(
      () => onlyTargets(allScenarios(), "image-hub,kong"),
      /Unknown target kong.*portkey/,
    );
  });

  it("changes nothing without the option", () => {
    assert.deepEqual(onlyTargets(allScenarios(), undefined), allScenarios());
  });
});
