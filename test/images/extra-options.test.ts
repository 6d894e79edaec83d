/**
 * Vendor options in a request's `extra` (images/extra-options.ts and the plan): what a model
 * declares passes as sent, anything else is refused by name, values are held to their type and
 * range, and a retired model's successor gets only what it declares.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isHubError } from "../../src/errors.ts";
import { createCatalog, MODELS } from "../../src/images/catalog.ts";
import { checkExtra, type ExtraOption } from "../../src/images/extra-options.ts";
import { specFromFields } from "../../src/images/model-fields.ts";
import { planImageJob } from "../../src/images/plan.ts";

const sdxl: { id: string; extraOptions: Record<string, ExtraOption> } = {
  id: "sdxl",
  extraOptions: {
    seed: { type: "integer", minimum: 0, maximum: 4_294_967_294 },
    negative_prompt: { type: "string", max_length: 2000 },
    style_preset: { type: "string", enum: ["photographic", "anime"] },
    cfg_scale: { type: "number", minimum: 1, maximum: 30 },
    tiling: { type: "boolean" },
  },
};

function refusal(extra: Record<string, unknown>): { code: string; param: string | null } {
  try {
    checkExtra(sdxl, extra);
  } catch (error) {
    assert.ok(isHubError(error) && error.status === 400, String(error));
    return { code: error.code, param: error.param };
  }
  assert.fail("expected a 400");
}

describe("checkExtra", () => {
  it("passes what the model declares, as sent; nothing for none", () => {
    const extra = {
      seed: 42,
      negative_prompt: "blur",
      style_preset: "anime",
      cfg_scale: 7.5,
      tiling: false,
    };
    assert.deepEqual(checkExtra(sdxl, extra), extra);
    assert.equal(checkExtra(sdxl, undefined), undefined);
    assert.equal(checkExtra(sdxl, {}), undefined);
  });

  it("refuses an option the model does not declare, naming it and what it takes", () => {
    assert.deepEqual(refusal({ steps: 30 }), { code: "unsupported_extra", param: "extra.steps" });
  });

  for (const [extra, param] of [
    [{ seed: 1.5 }, "extra.seed"],
    [{ seed: -1 }, "extra.seed"],
    [{ seed: "42" }, "extra.seed"],
    [{ negative_prompt: "x".repeat(2001) }, "extra.negative_prompt"],
    [{ style_preset: "cubism" }, "extra.style_preset"],
    [{ cfg_scale: 31 }, "extra.cfg_scale"],
    [{ tiling: "yes" }, "extra.tiling"],
  ] as const) {
    it(`refuses ${JSON.stringify(extra)} as invalid_value of ${param}`, () => {
      assert.deepEqual(refusal(extra), { code: "invalid_value", param });
    });
  }
});

describe("extra in the plan", () => {
  const base = MODELS.find((model) => model.id === "local/placeholder");
  assert.ok(base);
  const seeded = specFromFields(
    {
      id: "seeded",
      provider: "local",
      sizes: ["512x512", "1024x1024"],
      extra_options: { seed: { type: "integer", minimum: 0 } },
    },
    "admin",
  );
  const catalog = createCatalog([base, seeded]);
  const plan = (model: string, extra: Record<string, unknown>) =>
    planImageJob(
      catalog,
      { model, prompt: "p", extra },
      {
        defaultModel: "seeded",
        isProviderConfigured: () => true,
      },
    );

  it("carries a declared option into the job, and refuses it for a model without", () => {
    assert.deepEqual(plan("seeded", { seed: 7 }).extra, { seed: 7 });
    assert.throws(() => plan("local/placeholder", { seed: 7 }), /does not take 'seed'/);
  });
});
