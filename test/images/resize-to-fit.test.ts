/**
 * Models that size by aspect ratio declare `resize_to_fit`: a size they cannot make is made at
 * their nearest size and resized by the hub to the one asked. Without it, the plan answers 400
 * naming the sizes the model takes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isHubError } from "../../src/errors.ts";
import { createCatalog } from "../../src/images/catalog.ts";
import { specFromFields } from "../../src/images/model-fields.ts";
import { planImageJob } from "../../src/images/plan.ts";

const model = (id: string, resize: boolean) =>
  specFromFields(
    {
      id,
      provider: "local",
      sizes: ["1024x1024", "1344x768", "768x1344"],
      output_formats: ["jpeg", "png"],
      resize_to_fit: resize,
    },
    "admin",
  );
const catalog = createCatalog([model("ratios", true), model("strict", false)]);
const plan = (id: string, size: string, extra: { output_format?: "png" } = {}) =>
  planImageJob(
    catalog,
    { model: id, prompt: "p", size, ...extra },
    {
      defaultModel: id,
      isProviderConfigured: () => true,
    },
  );

describe("resize_to_fit", () => {
  it("asks for the nearest size the model makes and delivers the size asked, saying so", () => {
    const job = plan("ratios", "1280x720");
    assert.equal(job.size, "1344x768");
    assert.deepEqual(job.deliver, { size: { width: 1280, height: 720 }, format: "jpeg" });
    assert.match(job.warnings.join(" | "), /cannot make 1280x720: it made 1344x768, resized/);
    assert.equal(plan("ratios", "1280x720", { output_format: "png" }).deliver?.format, "png");
  });

  it("asks for a size the model makes as it is, with nothing to resize", () => {
    const job = plan("ratios", "768x1344");
    assert.deepEqual([job.size, job.deliver], ["768x1344", undefined]);
  });

  it("refuses what is too large to resize, and every size a strict model does not make", () => {
    for (const [id, size] of [
      ["ratios", "8192x8192"],
      ["strict", "1280x720"],
    ]) {
      assert.throws(
        () => plan(id as string, size as string),
        (error) => isHubError(error) && error.code === "invalid_size" && error.param === "size",
      );
    }
  });
});
