/**
 * Reserving and settling: what a request may cost before the upstream calls, and what it is
 * charged after, for per-image and per-token models, partial delivery and the reservation cap.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type CostedJob, chargeMicros, maxCostMicros } from "../../src/billing/cost.ts";
import { SEED_IMAGE_PRICES, SEED_TOKEN_PRICES } from "../../src/billing/price-list.ts";
import { createPriceBook } from "../../src/billing/prices.ts";
import { createCatalog, MODELS, type ModelSpec } from "../../src/images/catalog.ts";
import { planImageJob } from "../../src/images/plan.ts";
import type { TokenUsage } from "../../src/providers/types.ts";

const book = createPriceBook(SEED_IMAGE_PRICES, SEED_TOKEN_PRICES);

function modelOf(id: string): ModelSpec {
  const model = MODELS.find((candidate) => candidate.id === id);
  assert.ok(model, `no model ${id} in the catalog`);
  return model;
}

function jobOf(
  id: string,
  n: number,
  size: CostedJob["size"],
  quality: string | undefined,
): CostedJob {
  return { model: modelOf(id), n, size, quality };
}

function usageOf(fields: Partial<TokenUsage> & { inputTokens: number; outputTokens: number }) {
  return { totalTokens: fields.inputTokens + fields.outputTokens, ...fields };
}

describe("maxCostMicros", () => {
  test("n × the per-image price: 3 dall-e-3 hd 1792x1024 images reserve $0.36", () => {
    assert.equal(maxCostMicros(jobOf("dall-e-3", 3, "1792x1024", "hd"), book), 360_000);
  });

  test("auto size and quality reserve the dearest option", () => {
    assert.equal(maxCostMicros(jobOf("gpt-image-1", 2, undefined, "auto"), book), 500_000);
    assert.equal(maxCostMicros(jobOf("gpt-image-2", 1, undefined, "high"), book), 711_570);
  });

  test("token-billed edits also reserve their input: prompt and images, once per call", () => {
    const base = jobOf("gpt-image-1", 2, "1024x1024", "high");
    const edit = { ...base, prompt: "x".repeat(100), images: ["a", "b"], calls: [2] };
    // 2 × $0.167, plus 50 prompt tokens at $5/M and 2 × 6000 image tokens at $10/M.
    assert.equal(maxCostMicros(edit, book), 2 * 167_000 + 250 + 120_000);
    const dalle = { ...jobOf("dall-e-2", 1, "1024x1024", undefined), images: ["a"], calls: [1] };
    assert.equal(maxCostMicros(dalle, book), 20_000, "per-image models reserve the image price");
  });

  test("models without a quality setting", () => {
    assert.equal(
      maxCostMicros(jobOf("imagen-4.0-generate-001", 4, "1024x1024", undefined), book),
      160_000,
    );
    assert.equal(maxCostMicros(jobOf("local/placeholder", 10, "640x480", "standard"), book), 0);
  });

  test("every catalog model's default request, as planned, has a price", () => {
    const catalog = createCatalog();
    for (const model of MODELS) {
      const job = planImageJob(
        catalog,
        { prompt: "a lighthouse at dusk", model: model.id, n: 2 },
        { defaultModel: "dall-e-3", isProviderConfigured: () => true },
      );
      const cost = maxCostMicros(job, book);
      assert.ok(cost !== undefined && Number.isSafeInteger(cost) && cost >= 0, model.id);
      // Self-hosted servers (AUTOMATIC1111, ComfyUI) have no upstream cost.
      const selfHosted = model.provider === "a1111" || model.provider === "comfyui";
      if (model.kind === "ai" && !selfHosted) assert.ok(cost > 0, model.id);
    }
  });

  test("a job the book has no price for has no ceiling: undefined, for the caller to refuse", () => {
    const empty = createPriceBook([], []);
    assert.equal(maxCostMicros(jobOf("dall-e-3", 1, "1024x1024", "hd"), empty), undefined);
    assert.equal(maxCostMicros(jobOf("gpt-image-1", 1, undefined, undefined), empty), undefined);
    const free = createPriceBook(
      [
        {
          model: "dall-e-3",
          size: "*",
          quality: "*",
          microsPerImage: 0,
          source: "admin",
          updatedAt: 0,
        },
      ],
      [],
    );
    assert.equal(maxCostMicros(jobOf("dall-e-3", 4, "1024x1024", "hd"), free), 0, "0 is a price");
  });
});

describe("chargeMicros: per-image models", () => {
  const job = jobOf("dall-e-3", 3, "1792x1024", "hd");

  test("all delivered: the full price", () => {
    const charge = chargeMicros({
      job,
      delivered: 3,
      usage: undefined,
      reservedMicros: 360_000,
      book,
    });
    assert.equal(charge, 360_000);
  });

  test("partial delivery: only the images delivered", () => {
    const charge = chargeMicros({
      job,
      delivered: 2,
      usage: undefined,
      reservedMicros: 360_000,
      book,
    });
    assert.equal(charge, 240_000);
  });

  test("nothing delivered: nothing charged", () => {
    assert.equal(
      chargeMicros({ job, delivered: 0, usage: undefined, reservedMicros: 360_000, book }),
      0,
    );
  });

  test("reported usage does not change a model priced per image (Gemini)", () => {
    const gemini = jobOf("gemini-2.5-flash-image", 2, "1024x1024", undefined);
    const usage = usageOf({ inputTokens: 20, outputTokens: 2_580 });
    assert.equal(
      chargeMicros({ job: gemini, delivered: 2, usage, reservedMicros: 78_000, book }),
      78_000,
    );
  });

  test("a price row removed after reserving: the reserved share of each delivered image", () => {
    const empty = createPriceBook([], []);
    const charge = chargeMicros({
      job,
      delivered: 2,
      usage: undefined,
      reservedMicros: 360_000,
      book: empty,
    });
    assert.equal(charge, 240_000);
  });

  test("a key without a limit (an infinite reservation): the price, or 0 with no price row", () => {
    const unlimited = Number.POSITIVE_INFINITY;
    assert.equal(
      chargeMicros({ job, delivered: 2, usage: undefined, reservedMicros: unlimited, book }),
      240_000,
    );
    const empty = createPriceBook([], []);
    assert.equal(
      chargeMicros({ job, delivered: 2, usage: undefined, reservedMicros: unlimited, book: empty }),
      0,
    );
    const tokenJob = jobOf("gpt-image-1", 1, "1024x1024", "high");
    const usage = usageOf({ inputTokens: 50, outputTokens: 4_160 });
    assert.equal(
      chargeMicros({ job: tokenJob, delivered: 1, usage, reservedMicros: unlimited, book }),
      166_650,
    );
  });

  test("never more than the reservation, never below zero", () => {
    assert.equal(
      chargeMicros({ job, delivered: 3, usage: undefined, reservedMicros: 100_000, book }),
      100_000,
    );
    assert.equal(
      chargeMicros({ job, delivered: 3, usage: undefined, reservedMicros: -5, book }),
      0,
    );
  });
});

describe("chargeMicros: token-priced models", () => {
  const job = jobOf("gpt-image-1", 1, "1024x1024", "high");
  const reservedMicros = 167_000;

  test("gpt-image-1: 50 text input, 0 image input, 4160 output tokens", () => {
    const usage = usageOf({
      inputTokens: 50,
      outputTokens: 4_160,
      inputTextTokens: 50,
      inputImageTokens: 0,
    });
    // 50 × $5/M + 4160 × $40/M = 250 + 166,400 micros.
    assert.equal(chargeMicros({ job, delivered: 1, usage, reservedMicros, book }), 166_650);
  });

  test("input not split into text and image: all of it at the text price", () => {
    const usage = usageOf({ inputTokens: 1_000, outputTokens: 1_000 });
    // 1000 × 5 + 1000 × 40.
    assert.equal(chargeMicros({ job, delivered: 1, usage, reservedMicros, book }), 45_000);
  });

  test("only the image part reported: the rest is text", () => {
    const usage = usageOf({ inputTokens: 1_000, outputTokens: 0, inputImageTokens: 600 });
    // 400 × 5 + 600 × 10.
    assert.equal(chargeMicros({ job, delivered: 1, usage, reservedMicros, book }), 8_000);
  });

  test("an edit with input images: image input at its own price", () => {
    const usage = usageOf({
      inputTokens: 1_400,
      outputTokens: 272,
      inputTextTokens: 30,
      inputImageTokens: 1_370,
    });
    // 30 × 5 + 1370 × 10 + 272 × 40 = 150 + 13,700 + 10,880.
    assert.equal(chargeMicros({ job, delivered: 1, usage, reservedMicros, book }), 24_730);
  });

  test("capped at the reservation", () => {
    const usage = usageOf({
      inputTokens: 20_000,
      outputTokens: 4_160,
      inputTextTokens: 100,
      inputImageTokens: 19_900,
    });
    assert.equal(chargeMicros({ job, delivered: 1, usage, reservedMicros, book }), reservedMicros);
  });

  test("nothing delivered: nothing charged, whatever the usage", () => {
    const usage = usageOf({ inputTokens: 50, outputTokens: 4_160 });
    assert.equal(chargeMicros({ job, delivered: 0, usage, reservedMicros, book }), 0);
  });

  test("no usage reported: the per-image price", () => {
    const charge = chargeMicros({ job, delivered: 1, usage: undefined, reservedMicros, book });
    assert.equal(charge, 167_000);
  });

  test("gpt-image-1-mini: fractional prices per token round once, at the end", () => {
    const mini = jobOf("gpt-image-1-mini", 1, "1024x1024", "low");
    const usage = usageOf({
      inputTokens: 4,
      outputTokens: 272,
      inputTextTokens: 1,
      inputImageTokens: 3,
    });
    // 1 × 2 + 3 × 2.5 + 272 × 8 = 2 + 7.5 + 2176 = 2185.5 → 2186.
    assert.equal(
      chargeMicros({ job: mini, delivered: 1, usage, reservedMicros: 5_000, book }),
      2_186,
    );
  });

  test("rounding once: three half micros are 2, not 3 (each rounded) or 1.5", () => {
    const halves = createPriceBook(
      [],
      [
        {
          model: "gpt-image-1",
          textInputPerMillion: 0.5,
          imageInputPerMillion: 0.5,
          outputPerMillion: 0.5,
          source: "test",
          updatedAt: 0,
        },
      ],
    );
    const usage = usageOf({
      inputTokens: 2,
      outputTokens: 1,
      inputTextTokens: 1,
      inputImageTokens: 1,
    });
    assert.equal(chargeMicros({ job, delivered: 1, usage, reservedMicros, book: halves }), 2);
  });
});
