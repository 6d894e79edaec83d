/**
 * The seed price list against the catalog: every model, at every size and quality it accepts
 * (and `auto`, and no quality at all), must have a price, or a request for it could not reserve.
 * The figures checked by value are written out here, not read from the list, so a change to a
 * price shows up as a failing row.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  PIXEL_TIERS,
  pixelTier,
  SEED_IMAGE_PRICES,
  SEED_TOKEN_PRICES,
} from "../../src/billing/price-list.ts";
import { createPriceBook } from "../../src/billing/prices.ts";
import { MODELS, type ModelSpec } from "../../src/images/catalog.ts";

const book = createPriceBook(SEED_IMAGE_PRICES, SEED_TOKEN_PRICES);

/** Sizes of models that take any WxH, picked to span their range. */
const RULE_SIZES: Record<string, string[]> = {
  "gpt-image-2": [
    "1024x1024",
    "1536x1024",
    "1024x1536",
    "1280x512",
    "1024x640",
    "2048x2048",
    "2048x1152",
    "1152x2048",
    "2880x2880",
    "3840x2160",
    "2160x3840",
    "3840x1280",
  ],
  "local/placeholder": ["1x1", "64x64", "1024x1024", "1000x700", "4096x4096", "4096x256"],
  "a1111/sd-checkpoint": ["64x64", "512x512", "1024x1024", "1216x832", "2048x2048", "2048x64"],
};

// Azure's and OpenRouter's gpt-image-2 take the same sizes as OpenAI's.
RULE_SIZES["azure/gpt-image-2"] = RULE_SIZES["gpt-image-2"] ?? [];
RULE_SIZES["openrouter/gpt-image-2"] = RULE_SIZES["gpt-image-2"] ?? [];
// FLUX.2 on BFL: multiples of 16 up to 2048 a side, a pixel tier each.
for (const model of [
  "flux-2-pro",
  "flux-2-max",
  "flux-2-flex",
  "flux-2-klein-9b",
  "flux-2-klein-4b",
]) {
  RULE_SIZES[model] = ["512x512", "1024x1024", "1536x1024", "1024x1536", "2048x1024", "2048x2048"];
}
RULE_SIZES["flux-pro-1.1"] = ["512x512", "1024x1024", "1440x1440", "1440x768", "768x1440"];
RULE_SIZES["comfyui/sdxl"] = ["512x512", "1024x1024", "1216x832", "2048x2048", "2048x512"];

/** Providers on the operator's own hardware: their models have no upstream cost. */
const SELF_HOSTED = new Set(["a1111", "comfyui"]);

/** Each size a model accepts, as the book is asked for it (undefined is `auto`). */
function sizesOf(model: ModelSpec): (string | undefined)[] {
  const sizes: (string | undefined)[] =
    model.sizes.kind === "list" ? [...model.sizes.sizes] : [...(RULE_SIZES[model.id] ?? [])];
  assert.ok(sizes.length > 0, `${model.id} has sizes to check`);
  if (model.sizes.auto) sizes.push(undefined);
  return sizes;
}

function qualitiesOf(model: ModelSpec): (string | undefined)[] {
  return [...model.qualities, undefined];
}

function priceOf(model: string, size: string | undefined, quality: string | undefined): number {
  const price = book.perImageMicros(model, size, quality);
  assert.ok(price !== undefined, `no price for ${model} ${size ?? "auto"} ${quality ?? "-"}`);
  return price;
}

describe("every catalog model is priced", () => {
  for (const model of MODELS) {
    test(`${model.id}: every size × quality it accepts, auto and none`, () => {
      for (const size of sizesOf(model)) {
        for (const quality of qualitiesOf(model)) {
          const price = priceOf(model.id, size, quality);
          assert.ok(Number.isSafeInteger(price) && price >= 0, `${model.id} ${size} ${quality}`);
        }
      }
    });
  }

  test("the string 'auto' is priced like an undefined size", () => {
    for (const model of MODELS.filter((candidate) => candidate.sizes.auto)) {
      for (const quality of qualitiesOf(model)) {
        assert.equal(
          book.perImageMicros(model.id, "auto", quality),
          book.perImageMicros(model.id, undefined, quality),
        );
      }
    }
  });

  test("only AI models cost money; the placeholder is free at any size and quality", () => {
    const placeholder = MODELS.find((model) => model.kind === "placeholder");
    assert.ok(placeholder);
    for (const size of sizesOf(placeholder)) {
      for (const quality of qualitiesOf(placeholder)) {
        assert.equal(priceOf(placeholder.id, size, quality), 0);
      }
    }
    for (const model of MODELS.filter((candidate) => candidate.kind === "ai")) {
      const price = priceOf(model.id, model.defaultSize, model.defaultQuality);
      if (SELF_HOSTED.has(model.provider)) assert.equal(price, 0, model.id);
      else assert.ok(price > 0, model.id);
    }
  });

  test("an unknown model has no price", () => {
    assert.equal(book.perImageMicros("no-such-model", "1024x1024", undefined), undefined);
    assert.equal(book.tokenPrice("no-such-model"), undefined);
  });
});

describe("auto is priced as the dearest option", () => {
  for (const model of MODELS.filter((candidate) => candidate.sizes.auto)) {
    test(`${model.id}: size auto costs at least any size it may pick`, () => {
      for (const quality of qualitiesOf(model)) {
        const auto = priceOf(model.id, undefined, quality);
        for (const size of sizesOf(model)) {
          assert.ok(auto >= priceOf(model.id, size, quality), `${size} ${quality}`);
        }
      }
    });
  }

  for (const model of MODELS.filter((candidate) => candidate.qualities.length > 1)) {
    test(`${model.id}: quality auto (or none) costs at least any quality it may pick`, () => {
      for (const size of sizesOf(model)) {
        const unnamed = priceOf(model.id, size, undefined);
        if (model.qualities.includes("auto"))
          assert.equal(priceOf(model.id, size, "auto"), unnamed);
        for (const quality of model.qualities) {
          assert.ok(unnamed >= priceOf(model.id, size, quality), `${size} ${quality}`);
        }
      }
    });
  }
});

describe("figures", () => {
  const figures: [
    model: string,
    size: string | undefined,
    quality: string | undefined,
    micros: number,
  ][] = [
    ["dall-e-2", "256x256", "standard", 16_000],
    ["dall-e-2", "512x512", "standard", 18_000],
    ["dall-e-2", "1024x1024", "standard", 20_000],
    ["dall-e-3", "1024x1024", "standard", 40_000],
    ["dall-e-3", "1024x1792", "standard", 80_000],
    ["dall-e-3", "1024x1024", "hd", 80_000],
    ["dall-e-3", "1792x1024", "hd", 120_000],
    ["dall-e-3", "1024x1792", "hd", 120_000],
    ["gpt-image-1", "1024x1024", "low", 11_000],
    ["gpt-image-1", "1024x1024", "medium", 42_000],
    ["gpt-image-1", "1024x1024", "high", 167_000],
    ["gpt-image-1", "1024x1536", "low", 16_000],
    ["gpt-image-1", "1536x1024", "medium", 63_000],
    ["gpt-image-1", "1536x1024", "high", 250_000],
    ["gpt-image-1", "1024x1024", "auto", 167_000],
    ["gpt-image-1", undefined, "auto", 250_000],
    ["gpt-image-1", undefined, "low", 16_000],
    ["gpt-image-1-mini", "1024x1024", "low", 5_000],
    ["gpt-image-1-mini", "1024x1024", "high", 36_000],
    ["gpt-image-1-mini", "1536x1024", "medium", 15_000],
    ["gpt-image-1-mini", "1024x1536", "high", 52_000],
    ["gpt-image-1.5", "1024x1024", "low", 9_000],
    ["gpt-image-1.5", "1024x1024", "medium", 34_000],
    ["gpt-image-1.5", "1024x1024", "high", 133_000],
    ["gpt-image-1.5", "1536x1024", "high", 200_000],
    ["gpt-image-2", "1024x1024", "low", 6_000],
    ["gpt-image-2", "1024x1024", "medium", 53_000],
    ["gpt-image-2", "1024x1024", "high", 211_000],
    ["gpt-image-2", "1024x640", "high", 211_000],
    ["gpt-image-2", "1536x1024", "high", 246_960],
    ["gpt-image-2", "2048x2048", "high", 428_160],
    ["gpt-image-2", "3840x2160", "medium", 177_900],
    ["gpt-image-2", undefined, "high", 711_570],
    ["gemini-2.5-flash-image", "1024x1024", undefined, 39_000],
    ["gemini-2.5-flash-image", "1344x768", undefined, 39_000],
    ["gemini-3-pro-image-preview", "1024x1024", undefined, 134_000],
    ["gemini-3-pro-image-preview", "2048x2048", undefined, 134_000],
    ["gemini-3-pro-image-preview", "4096x4096", undefined, 240_000],
    ["gemini-3-pro-image-preview", "6336x2688", undefined, 240_000],
    ["imagen-4.0-generate-001", "1408x768", undefined, 40_000],
    ["local/placeholder", "512x512", "hd", 0],
  ];
  for (const [model, size, quality, micros] of figures) {
    test(`${model} ${size ?? "auto"} ${quality ?? "(no quality)"} is ${micros} micros`, () => {
      assert.equal(book.perImageMicros(model, size, quality), micros);
    });
  }

  test("Gemini 3 Pro Image: 4K sizes cost $0.24, 1K and 2K $0.134", () => {
    const model = MODELS.find((candidate) => candidate.id === "gemini-3-pro-image-preview");
    assert.ok(model && model.sizes.kind === "list");
    let fourK = 0;
    for (const size of model.sizes.sizes) {
      const longSide = Math.max(...size.split("x").map(Number));
      const is4K = longSide >= 4096;
      if (is4K) fourK += 1;
      assert.equal(priceOf(model.id, size, undefined), is4K ? 240_000 : 134_000, size);
    }
    assert.equal(fourK, 10);
  });

  test("token prices, USD per million tokens", () => {
    const expected: Record<string, [text: number, image: number, output: number]> = {
      "gpt-image-1": [5, 10, 40],
      "gpt-image-1-mini": [2, 2.5, 8],
      "gpt-image-1.5": [5, 8, 32],
      "gpt-image-2": [5, 8, 30],
      // Azure's deployments of the same models, at OpenAI's list price (an estimate).
      "azure/gpt-image-1": [5, 10, 40],
      "azure/gpt-image-1-mini": [2, 2.5, 8],
      "azure/gpt-image-1.5": [5, 8, 32],
      "azure/gpt-image-2": [5, 8, 30],
      "openrouter/gpt-image-2": [5, 8, 30],
    };
    assert.deepEqual(
      SEED_TOKEN_PRICES.map((price) => price.model).sort(),
      Object.keys(expected).sort(),
    );
    for (const [model, [text, image, output]] of Object.entries(expected)) {
      const price = book.tokenPrice(model);
      assert.ok(price, model);
      assert.deepEqual(
        [price.textInputPerMillion, price.imageInputPerMillion, price.outputPerMillion],
        [text, image, output],
      );
    }
  });
});

describe("gpt-image-2 pixel tiers", () => {
  const tiers: [size: string, tier: string | undefined][] = [
    ["1024x640", "<=1024x1024"],
    ["1024x1024", "<=1024x1024"],
    ["1024x1040", "<=1536x1024"],
    ["1536x1024", "<=1536x1024"],
    ["1024x1536", "<=1536x1024"],
    ["1248x1248", "<=1536x1024"],
    ["1536x1040", "<=2048x2048"],
    ["2048x2048", "<=2048x2048"],
    ["2048x2064", "<=3840x2160"],
    ["3840x2160", "<=3840x2160"],
    ["2880x2880", "<=3840x2160"],
    ["3840x2176", undefined],
    ["auto", undefined],
    ["1024", undefined],
  ];
  for (const [size, tier] of tiers) {
    test(`${size} is in tier ${tier ?? "(none)"}`, () => {
      assert.equal(pixelTier(size), tier);
    });
  }

  test("every tier is priced at every quality", () => {
    for (const tier of PIXEL_TIERS) {
      for (const quality of ["low", "medium", "high", "*"]) {
        assert.ok(
          SEED_IMAGE_PRICES.some(
            (row) =>
              row.model === "gpt-image-2" && row.size === tier.key && row.quality === quality,
          ),
          `${tier.key} ${quality}`,
        );
      }
    }
  });

  /** OpenAI's output-token count for gpt-image-2 (see the comment on PIXEL_TIERS). */
  function outputTokens(quality: "low" | "medium" | "high", width: number, height: number): number {
    const factor = { low: 16, medium: 48, high: 96 }[quality];
    const long = Math.max(width, height);
    const short = Math.min(width, height);
    const shortFactor = Math.floor((2 * factor * short + long) / (2 * long));
    return Math.ceil((factor * shortFactor * (2_000_000 + width * height)) / 4_000_000);
  }

  test("the token formula reproduces OpenAI's figures", () => {
    assert.equal(outputTokens("high", 1024, 1024), 7024);
    assert.equal(outputTokens("high", 1536, 1024), 5488);
    assert.equal(outputTokens("high", 1792, 1024), 5063);
    assert.equal(outputTokens("high", 3584, 2048), 12329);
  });

  test("no size costs more in output tokens than its tier reserves", () => {
    const sizes: [number, number][] = [];
    for (let width = 256; width <= 3840; width += 64) {
      for (let height = 256; height <= 3840; height += 64) {
        const pixels = width * height;
        const ratio = width / height;
        if (pixels < 655_360 || pixels > 3840 * 2160 || ratio > 3 || ratio < 1 / 3) continue;
        sizes.push([width, height]);
      }
    }
    sizes.push([1248, 1248], [2880, 2880], [1024, 1024]);
    for (const [width, height] of sizes) {
      for (const quality of ["low", "medium", "high"] as const) {
        const cost = outputTokens(quality, width, height) * 30;
        const reserved = priceOf("gpt-image-2", `${width}x${height}`, quality);
        assert.ok(reserved >= cost, `${width}x${height} ${quality}: ${reserved} < ${cost}`);
      }
    }
  });
});

describe("rows", () => {
  const catalogIds = new Set(MODELS.map((model) => model.id));

  test("every row names a catalog model, and every catalog model has rows", () => {
    for (const row of SEED_IMAGE_PRICES) assert.ok(catalogIds.has(row.model), row.model);
    for (const row of SEED_TOKEN_PRICES) assert.ok(catalogIds.has(row.model), row.model);
    for (const id of catalogIds) {
      assert.ok(
        SEED_IMAGE_PRICES.some((row) => row.model === id),
        `${id} has per-image rows`,
      );
    }
  });

  test("no negative or fractional prices; a source on every row; updatedAt 0", () => {
    for (const row of SEED_IMAGE_PRICES) {
      const where = `${row.model} ${row.size} ${row.quality}`;
      assert.ok(Number.isSafeInteger(row.microsPerImage) && row.microsPerImage >= 0, where);
      assert.ok(row.source.trim().length > 0, where);
      assert.equal(row.updatedAt, 0, where);
    }
    for (const row of SEED_TOKEN_PRICES) {
      for (const value of [
        row.textInputPerMillion,
        row.imageInputPerMillion,
        row.outputPerMillion,
      ]) {
        assert.ok(Number.isFinite(value) && value > 0, row.model);
      }
      assert.ok(row.source.trim().length > 0, row.model);
      assert.equal(row.updatedAt, 0, row.model);
    }
  });

  test("sources say where the figure came from, and which are estimates", () => {
    for (const row of [...SEED_IMAGE_PRICES, ...SEED_TOKEN_PRICES]) {
      if (row.model === "local/placeholder") continue;
      assert.match(row.source, /list price as of 2026-11|checked 2026-12-03/, row.model);
    }
    const tierRow = SEED_IMAGE_PRICES.find(
      (row) => row.model === "gpt-image-2" && row.size === "<=2048x2048",
    );
    assert.match(tierRow?.source ?? "", /estimate/);
  });

  test("no two rows for the same model, size and quality", () => {
    const keys = SEED_IMAGE_PRICES.map((row) => `${row.model} ${row.size} ${row.quality}`);
    assert.equal(new Set(keys).size, keys.length);
  });
});

describe("the price book", () => {
  const row = (size: string, quality: string, microsPerImage: number) => ({
    model: "m",
    size,
    quality,
    microsPerImage,
    source: "test",
    updatedAt: 0,
  });

  test("the most specific row wins: size+quality, size+*, *+quality, *+*", () => {
    const rows = [
      row("*", "*", 1),
      row("*", "hd", 2),
      row("1024x1024", "*", 3),
      row("1024x1024", "hd", 4),
    ];
    const custom = createPriceBook(rows, []);
    assert.equal(custom.perImageMicros("m", "1024x1024", "hd"), 4);
    assert.equal(custom.perImageMicros("m", "1024x1024", "standard"), 3);
    assert.equal(custom.perImageMicros("m", "512x512", "hd"), 2);
    assert.equal(custom.perImageMicros("m", "512x512", "standard"), 1);
    assert.equal(custom.perImageMicros("m", undefined, undefined), 1);
  });

  test("undefined size and quality are looked up as auto", () => {
    const custom = createPriceBook([row("auto", "auto", 7), row("*", "*", 1)], []);
    assert.equal(custom.perImageMicros("m", undefined, undefined), 7);
    assert.equal(custom.perImageMicros("m", "auto", "auto"), 7);
    assert.equal(custom.perImageMicros("m", "1024x1024", undefined), 1);
  });

  test("a later row for the same key replaces an earlier one (an admin edit)", () => {
    const custom = createPriceBook([row("*", "*", 1), row("*", "*", 9)], []);
    assert.equal(custom.perImageMicros("m", "1024x1024", "hd"), 9);
  });

  test("gpt-image-2: an exact size row beats its tier row", () => {
    const admin = { ...row("1536x1024", "high", 165_000), model: "gpt-image-2" };
    const custom = createPriceBook([...SEED_IMAGE_PRICES, admin], SEED_TOKEN_PRICES);
    assert.equal(custom.perImageMicros("gpt-image-2", "1536x1024", "high"), 165_000);
    assert.equal(custom.perImageMicros("gpt-image-2", "1024x1536", "high"), 246_960);
  });

  test("gpt-image-2: a size beyond the largest tier has no price", () => {
    assert.equal(book.perImageMicros("gpt-image-2", "3840x2176", "high"), undefined);
  });

  test("describe: per-image rows in USD and token prices per million", () => {
    assert.deepEqual(book.describe("dall-e-2"), {
      currency: "USD",
      per_image: [
        { size: "256x256", quality: "*", usd: 0.016 },
        { size: "512x512", quality: "*", usd: 0.018 },
        { size: "1024x1024", quality: "*", usd: 0.02 },
      ],
    });
    const gptImage1 = book.describe("gpt-image-1");
    assert.ok(gptImage1);
    assert.deepEqual(gptImage1.per_million_tokens, { text_input: 5, image_input: 10, output: 40 });
    assert.deepEqual(gptImage1.per_image[0], { size: "1024x1024", quality: "low", usd: 0.011 });
    assert.equal(gptImage1.per_image.length, 16);
    assert.ok(gptImage1.per_image.some((entry) => entry.size === "auto" && entry.usd === 0.25));
    assert.deepEqual(book.describe("local/placeholder"), {
      currency: "USD",
      per_image: [{ size: "*", quality: "*", usd: 0 }],
    });
    assert.equal(book.describe("no-such-model"), undefined);
  });
});
