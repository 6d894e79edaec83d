/**
 * Price rows held to the catalog: every seed row is one the catalog allows (so the checks
 * refuse nothing the hub ships), rows for sizes, qualities or billing kinds a model lacks are
 * refused naming the field, and a removal's gaps are listed.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SEED_IMAGE_PRICES, SEED_TOKEN_PRICES } from "../../src/billing/price-list.ts";
import { createPriceBook } from "../../src/billing/prices.ts";
import { isHubError } from "../../src/errors.ts";
import { MODELS, type ModelSpec } from "../../src/images/catalog.ts";
import {
  checkImagePriceTarget,
  checkTokenPriceTarget,
  unpricedRequests,
} from "../../src/images/price-checks.ts";

function modelOf(id: string): ModelSpec {
  const model = MODELS.find((candidate) => candidate.id === id);
  assert.ok(model, `no model ${id} in the catalog`);
  return model;
}

function refusedNaming(param: string) {
  return (error: unknown) =>
    isHubError(error) &&
    error.status === 400 &&
    error.code === "price_not_applicable" &&
    error.param === param;
}

describe("checkImagePriceTarget", () => {
  test("accepts every seed row", () => {
    for (const row of SEED_IMAGE_PRICES) {
      assert.doesNotThrow(
        () => checkImagePriceTarget(modelOf(row.model), row.size, row.quality),
        `${row.model} ${row.size} ${row.quality}`,
      );
    }
  });

  test("sizes: the model's own, auto where it takes auto, * always, tiers for rule models", () => {
    const dallE3 = modelOf("dall-e-3");
    checkImagePriceTarget(dallE3, "1792x1024", "hd");
    checkImagePriceTarget(dallE3, "*", "*");
    assert.throws(() => checkImagePriceTarget(dallE3, "auto", "*"), refusedNaming("size"));
    assert.throws(() => checkImagePriceTarget(dallE3, "512x512", "*"), refusedNaming("size"));
    assert.throws(() => checkImagePriceTarget(dallE3, "<=1024x1024", "*"), refusedNaming("size"));
    assert.throws(() => checkImagePriceTarget(dallE3, "big", "*"), /Supported: 1024x1024/);

    const gptImage2 = modelOf("gpt-image-2");
    checkImagePriceTarget(gptImage2, "<=2048x2048", "high");
    checkImagePriceTarget(gptImage2, "1280x720", "low");
    checkImagePriceTarget(gptImage2, "auto", "*");
    assert.throws(() => checkImagePriceTarget(gptImage2, "1000x1000", "*"), refusedNaming("size"));
    assert.throws(() => checkImagePriceTarget(gptImage2, "<=0x10", "*"), refusedNaming("size"));
  });

  test("qualities: the model's own or *; a model without qualities takes only *", () => {
    assert.throws(
      () => checkImagePriceTarget(modelOf("dall-e-3"), "1024x1024", "ultra"),
      (error: unknown) => refusedNaming("quality")(error) && /standard, hd/.test(String(error)),
    );
    checkImagePriceTarget(modelOf("gpt-image-1"), "auto", "auto");
    assert.throws(
      () => checkImagePriceTarget(modelOf("imagen-4.0-generate-001"), "*", "standard"),
      (error: unknown) =>
        refusedNaming("quality")(error) && /no quality setting/.test(String(error)),
    );
  });
});

describe("checkTokenPriceTarget", () => {
  test("accepts every seed token price, GPT image models and Gemini (both report usage)", () => {
    for (const row of SEED_TOKEN_PRICES) checkTokenPriceTarget(modelOf(row.model));
    checkTokenPriceTarget(modelOf("gemini-2.5-flash-image"));
  });

  test("refuses models whose upstream reports no tokens, naming 'model'", () => {
    for (const id of ["local/placeholder", "imagen-4.0-generate-001", "dall-e-3", "dall-e-2"]) {
      assert.throws(() => checkTokenPriceTarget(modelOf(id)), refusedNaming("model"), id);
    }
  });
});

describe("unpricedRequests", () => {
  test("nothing is unpriced in the seed book", () => {
    const book = createPriceBook(SEED_IMAGE_PRICES, SEED_TOKEN_PRICES);
    for (const model of MODELS) assert.deepEqual(unpricedRequests(model, book), [], model.id);
  });

  test("names each size and quality a removal left without a price", () => {
    const book = createPriceBook(
      SEED_IMAGE_PRICES.filter(
        (row) =>
          !(row.model === "dall-e-3" && row.size === "1792x1024") &&
          !(row.model === "gpt-image-2" && row.size === "<=3840x2160"),
      ),
      SEED_TOKEN_PRICES,
    );
    assert.deepEqual(unpricedRequests(modelOf("dall-e-3"), book), [
      { size: "1792x1024", quality: "standard" },
      { size: "1792x1024", quality: "hd" },
    ]);
    // The largest tier's own size has no tier left to fall into.
    assert.deepEqual(
      unpricedRequests(modelOf("gpt-image-2"), book).map((gap) => gap.size),
      ["3840x2160", "3840x2160", "3840x2160", "3840x2160"],
    );
    const free = createPriceBook(
      [{ model: "dall-e-3", size: "*", quality: "*", microsPerImage: 0, source: "", updatedAt: 0 }],
      [],
    );
    assert.deepEqual(unpricedRequests(modelOf("dall-e-3"), free), [], "0 is a price");
  });
});
