/**
 * A request for a retired model, planned for its successor: validated against the model the
 * client named, then translated so that the client gets what that model promised.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createCatalog, MODELS, type ModelSpec } from "../../src/images/catalog.ts";
import { servingModel } from "../../src/images/lifecycle.ts";
import { type ImageJobRequest, planImageJob } from "../../src/images/plan.ts";
import { nearestSize } from "../../src/images/substitute.ts";
import { createUpstreamModelBoard } from "../../src/images/upstream-models.ts";

const NOW = Date.parse("2026-12-03T12:00:00Z");
const catalog = createCatalog();
const board = createUpstreamModelBoard();

function plan(request: Omit<ImageJobRequest, "prompt"> & { prompt?: string }) {
  return planImageJob(
    catalog,
    { prompt: "a cat programming on a laptop", ...request },
    {
      defaultModel: "dall-e-2",
      isProviderConfigured: () => true,
      servingModel: (model) => servingModel(model, catalog, board, NOW),
    },
  );
}

function refusal(request: Omit<ImageJobRequest, "prompt">) {
  try {
    plan(request);
  } catch (error) {
    return error as { status: number; code: string; param: string; message: string };
  }
  assert.fail(`expected ${JSON.stringify(request)} to be refused`);
}

const specOf = (id: string) => MODELS.find((model) => model.id === id) as ModelSpec;

describe("the spec's examples, planned for gpt-image-2", () => {
  test("no model (dall-e-2), 1024x1024: sent as is, standard quality as medium", () => {
    const job = plan({ n: 1, size: "1024x1024" });
    assert.equal(job.model.id, "gpt-image-2");
    assert.equal(job.substitutedFor?.id, "dall-e-2");
    assert.equal(job.requestedModel, "dall-e-2");
    assert.equal(job.size, "1024x1024");
    assert.equal(job.quality, "medium");
    assert.equal(job.style, undefined);
    assert.deepEqual(job.deliver, { size: undefined, format: "png" });
    assert.equal(job.responseFormat, "url");
    assert.match(
      job.warnings[0] ?? "",
      /dall-e-2 is retired .*shut it down on 2026-05-12.*gpt-image-2 served/,
    );
  });

  test("dall-e-3, 1792x1024, hd, vivid, b64_json: high quality, the style reported and not sent", () => {
    const job = plan({
      model: "dall-e-3",
      n: 1,
      size: "1792x1024",
      quality: "hd",
      style: "vivid",
      response_format: "b64_json",
    });
    assert.equal(job.model.id, "gpt-image-2");
    assert.equal(job.size, "1792x1024");
    assert.equal(job.quality, "high");
    assert.equal(job.style, undefined);
    assert.equal(job.responseFormat, "b64_json");
    assert.deepEqual(job.deliver, { size: undefined, format: "png" });
    assert.ok(
      job.warnings.some((warning) => /style 'vivid' was not sent/.test(warning)),
      job.warnings.join(" | "),
    );
  });

  test("dall-e-3's own default style is not worth a warning", () => {
    const job = plan({ model: "dall-e-3" });
    assert.ok(!job.warnings.some((warning) => /style/.test(warning)), job.warnings.join(" | "));
  });
});

describe("sizes the successor cannot make", () => {
  for (const size of ["256x256", "512x512"]) {
    test(`dall-e-2 at ${size}: the nearest square gpt-image-2 makes, resized back`, () => {
      const job = plan({ size });
      const [width, height] = size.split("x").map(Number);
      assert.equal(job.size, "816x816");
      assert.deepEqual(job.deliver, { size: { width, height }, format: "png" });
      assert.ok(
        job.warnings.some((warning) =>
          warning.includes(`made 816x816, resized by the hub to ${size}`),
        ),
      );
    });
  }

  test("validated against the model named: dall-e-3 at 256x256 and an edit on dall-e-3 stay 400s", () => {
    const size = refusal({ model: "dall-e-3", size: "256x256" });
    assert.equal(size.status, 400);
    assert.equal(size.param, "size");
    assert.match(size.message, /dall-e-3/);
    const edit = refusal({ model: "dall-e-3", image: "iVBORw0KGgo=" });
    assert.equal(edit.code, "edits_not_supported");
    const quality = refusal({ model: "dall-e-2", quality: "hd" });
    assert.equal(quality.param, "quality");
  });

  test("n=3 on dall-e-3 is one call of 3 on gpt-image-2", () => {
    const job = plan({ model: "dall-e-3", n: 3 });
    assert.equal(job.n, 3);
    assert.deepEqual(job.calls, [3]);
  });

  test("a dall-e-2 edit with a mask goes to gpt-image-2's edits", () => {
    const job = plan({ image: "iVBORw0KGgo=", mask: "iVBORw0KGgo=" });
    assert.equal(job.model.id, "gpt-image-2");
    assert.equal(job.images.length, 1);
  });

  test("an output format the client asked for is kept", () => {
    const job = plan({ model: "gpt-image-1", output_format: "webp", size: "1024x1536" });
    assert.equal(job.model.id, "gpt-image-2");
    assert.equal(job.outputFormat, "webp");
    assert.deepEqual(job.deliver, { size: undefined, format: "webp" });
    assert.equal(job.size, "1024x1536");
  });

  test("Imagen sizes go to the Gemini ratio nearest them, resized back", () => {
    const job = plan({ model: "imagen-4", size: "896x1280", n: 4 });
    assert.equal(job.model.id, "gemini-3-pro-image");
    assert.deepEqual(job.calls, [1, 1, 1, 1]);
    assert.equal(job.size, "848x1264");
    assert.deepEqual(job.deliver?.size, { width: 896, height: 1280 });
  });
});

describe("nearestSize", () => {
  const gptImage2 = specOf("gpt-image-2").sizes;
  const cases: [number, number, string][] = [
    [256, 256, "816x816"],
    [1024, 1024, "1024x1024"],
    [256, 512, "576x1152"],
    [4096, 4096, "2880x2880"],
    [5000, 1000, "3840x1280"],
  ];
  for (const [width, height, expected] of cases) {
    test(`gpt-image-2: ${width}x${height} → ${expected}`, () => {
      assert.equal(nearestSize(gptImage2, width, height), expected);
    });
  }

  test("a list: the nearest ratio, then the nearest pixel count", () => {
    const list = {
      kind: "list" as const,
      sizes: ["1024x1024", "2048x2048", "1344x768"],
      auto: false,
    };
    assert.equal(nearestSize(list, 512, 512), "1024x1024");
    assert.equal(nearestSize(list, 1500, 1500), "2048x2048");
    assert.equal(nearestSize(list, 1792, 1024), "1344x768");
  });
});
