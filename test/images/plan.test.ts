/**
 * Validation per model, as a table: each row is a model, the request fields that matter and the
 * outcome (a job with these normalised fields, or an error with this status, param and code).
 * The facts in the rows are written out here, not read from the catalog, so that a change to the
 * catalog shows up as a failing row.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HubError } from "../../src/errors.ts";
import { createCatalog, MODELS, type ProviderName } from "../../src/images/catalog.ts";
import {
  describeSizes,
  type ImageJob,
  type ImageJobRequest,
  type PlanOptions,
  planImageJob,
  splitIntoCalls,
} from "../../src/images/plan.ts";

const catalog = createCatalog();
const PROMPT = "a red fox in the snow";

/** The normalised fields a row checks; a key present with `undefined` means "must be unset". */
interface ExpectedJob {
  model?: string;
  requestedModel?: string;
  n?: number;
  calls?: number[];
  size?: string | undefined;
  quality?: string | undefined;
  style?: string | undefined;
  background?: ImageJob["background"];
  outputFormat?: ImageJob["outputFormat"];
  outputCompression?: number | undefined;
  moderation?: ImageJob["moderation"];
  responseFormat?: ImageJob["responseFormat"];
  images?: number;
  mask?: boolean;
  /** One pattern per warning, in order; a row without it expects no warnings. */
  warnings?: RegExp[];
}

interface ExpectedError {
  status: number;
  param: string | null;
  code: string;
  message?: RegExp;
}

type RequestFields = Partial<ImageJobRequest>;

interface Row {
  name: string;
  request: RequestFields;
  options?: Partial<PlanOptions>;
  ok?: ExpectedJob;
  error?: ExpectedError;
}

const BASE_OPTIONS: PlanOptions = {
  defaultModel: "dall-e-2",
  isProviderConfigured: () => true,
};

function plan(row: Pick<Row, "request" | "options">): ImageJob {
  const request = { prompt: PROMPT, ...row.request } as ImageJobRequest;
  return planImageJob(catalog, request, { ...BASE_OPTIONS, ...row.options });
}

function checkRow(row: Row): void {
  if (row.error) {
    const expected = row.error;
    assert.throws(
      () => plan(row),
      (error: unknown) => {
        assert.ok(error instanceof HubError, `expected a HubError, got ${String(error)}`);
        assert.equal(error.status, expected.status, error.message);
        assert.equal(error.param, expected.param, error.message);
        assert.equal(error.code, expected.code, error.message);
        if (expected.message) assert.match(error.message, expected.message);
        return true;
      },
    );
    return;
  }
  const expected = row.ok ?? {};
  const job = plan(row);
  const actual: Record<string, unknown> = {
    model: job.model.id,
    requestedModel: job.requestedModel,
    n: job.n,
    calls: job.calls,
    size: job.size,
    quality: job.quality,
    style: job.style,
    background: job.background,
    outputFormat: job.outputFormat,
    outputCompression: job.outputCompression,
    moderation: job.moderation,
    responseFormat: job.responseFormat,
    images: job.images.length,
    mask: job.mask !== undefined,
  };
  for (const [key, value] of Object.entries(expected)) {
    if (key === "warnings") continue;
    assert.deepEqual(actual[key], value, `job.${key}`);
  }
  const warnings = expected.warnings ?? [];
  assert.equal(job.warnings.length, warnings.length, `warnings: ${job.warnings.join(" | ")}`);
  warnings.forEach((pattern, index) => {
    assert.match(job.warnings[index] ?? "", pattern);
  });
}

function runTable(rows: Row[]): void {
  for (const row of rows) test(row.name, () => checkRow(row));
}

const badRequest = (param: string | null, code: string, message?: RegExp): ExpectedError => ({
  status: 400,
  param,
  code,
  ...(message ? { message } : {}),
});

/** What every model does with a request of only a prompt: the spec's defaults, per model. */
const DEFAULTS: ExpectedJob = {
  n: 1,
  calls: [1],
  size: "1024x1024",
  responseFormat: "url",
  background: undefined,
  outputFormat: undefined,
  outputCompression: undefined,
  moderation: undefined,
  images: 0,
  mask: false,
};

describe("defaults per model (n 1, size 1024x1024, url, model-specific quality and style)", () => {
  const rows: Array<[model: string, quality: string | undefined, style: string | undefined]> = [
    ["dall-e-2", "standard", undefined],
    ["dall-e-3", "standard", "vivid"],
    ["gpt-image-1", "auto", undefined],
    ["gpt-image-2", "auto", undefined],
    ["gemini-2.5-flash-image", undefined, undefined],
    ["gemini-3-pro-image-preview", undefined, undefined],
    ["imagen-4.0-generate-001", undefined, undefined],
    ["local/placeholder", "standard", "vivid"],
  ];
  runTable(
    rows.map(([model, quality, style]) => ({
      name: `${model}: defaults`,
      request: { model },
      ok: { ...DEFAULTS, model, requestedModel: model, quality, style },
    })),
  );
});

describe("sizes", () => {
  // `auto` leaves the size to the model: the job carries none.
  const ok = (model: string, size: string, why = ""): Row => ({
    name: `${model}: ${size} is accepted${why ? ` (${why})` : ""}`,
    request: { model, size },
    ok: { model, size: size === "auto" ? undefined : size },
  });
  const refused = (model: string, size: string, why = ""): Row => ({
    name: `${model}: ${size} is refused${why ? ` (${why})` : ""}`,
    request: { model, size },
    error: badRequest("size", "invalid_size", new RegExp(`'${size}' is not supported`)),
  });
  runTable([
    ok("dall-e-2", "256x256"),
    ok("dall-e-2", "512x512"),
    refused("dall-e-2", "1792x1024"),
    refused("dall-e-2", "auto"),
    ok("dall-e-3", "1792x1024"),
    ok("dall-e-3", "1024x1792"),
    refused("dall-e-3", "512x512"),
    refused("dall-e-3", "auto"),
    ok("gpt-image-1", "1536x1024"),
    ok("gpt-image-1", "1024x1536"),
    ok("gpt-image-1", "auto"),
    refused("gpt-image-1", "2048x1152", "a gpt-image-2 size"),
    ok("gpt-image-2", "2048x1152"),
    ok("gpt-image-2", "3840x2160"),
    ok("gpt-image-2", "3840x1280", "ratio exactly 3:1"),
    ok("gpt-image-2", "1024x640", "exactly the fewest pixels"),
    ok("gpt-image-2", "auto"),
    refused("gpt-image-2", "3840x2176", "more pixels than 3840x2160"),
    refused("gpt-image-2", "1000x1000", "not multiples of 16"),
    refused("gpt-image-2", "3840x1088", "ratio above 3:1"),
    refused("gpt-image-2", "1088x3840", "ratio below 1:3"),
    refused("gpt-image-2", "512x512", "too few pixels"),
    refused("gpt-image-2", "4096x1536", "side above 3840"),
    ok("gemini-2.5-flash-image", "1344x768"),
    ok("gemini-2.5-flash-image", "1536x672"),
    refused("gemini-2.5-flash-image", "1024x768"),
    refused("gemini-2.5-flash-image", "auto"),
    ok("gemini-3-pro-image-preview", "2752x1536"),
    ok("gemini-3-pro-image-preview", "4096x4096"),
    refused("gemini-3-pro-image-preview", "1344x768", "a 2.5 Flash size"),
    ok("imagen-4.0-generate-001", "1408x768"),
    ok("imagen-4.0-generate-001", "1280x896"),
    refused("imagen-4.0-generate-001", "1344x768"),
    ok("local/placeholder", "123x77"),
    ok("local/placeholder", "1x1"),
    ok("local/placeholder", "auto"),
    refused("local/placeholder", "4097x4096", "side above 4096"),
    refused("local/placeholder", "1700x100", "ratio above 16:1"),
    refused("local/placeholder", "0x0"),
    refused("local/placeholder", "big"),
  ]);

  test("the size error lists what the model takes", () => {
    assert.throws(
      () => plan({ request: { model: "dall-e-2", size: "1792x1024" } }),
      /Supported: 256x256, 512x512, 1024x1024\./,
    );
  });
});

describe("prompt length", () => {
  const limits: Array<[model: string, limit: number]> = [
    ["dall-e-2", 1000],
    ["dall-e-3", 4000],
    ["gpt-image-1", 32000],
    ["gpt-image-2", 32000],
    ["gemini-2.5-flash-image", 32000],
    ["gemini-3-pro-image-preview", 32000],
    ["imagen-4.0-generate-001", 1920],
    ["local/placeholder", 32000],
  ];
  runTable(
    limits.flatMap(([model, limit]): Row[] => [
      {
        name: `${model}: a prompt of exactly ${limit} characters is accepted`,
        request: { model, prompt: "a".repeat(limit) },
        ok: { model },
      },
      {
        name: `${model}: ${limit + 1} characters is refused`,
        request: { model, prompt: "a".repeat(limit + 1) },
        error: badRequest("prompt", "string_above_max_length", new RegExp(`at most ${limit}`)),
      },
      {
        name: `${model}: a blank prompt is refused`,
        request: { model, prompt: "   " },
        error: badRequest("prompt", "empty_string"),
      },
    ]),
  );
  runTable([
    {
      name: "an empty prompt is refused",
      request: { model: "dall-e-3", prompt: "" },
      error: badRequest("prompt", "empty_string"),
    },
  ]);

  // Limits count characters (code points), as the schema and OpenAI do, not UTF-16 units.
  test("dall-e-2: a prompt of exactly 1000 characters outside the BMP is accepted", () => {
    checkRow({
      name: "",
      request: { model: "dall-e-2", prompt: "🦊".repeat(1000) },
      ok: { model: "dall-e-2" },
    });
  });
});

describe("quality", () => {
  runTable([
    { name: "dall-e-3: hd", request: { model: "dall-e-3", quality: "hd" }, ok: { quality: "hd" } },
    {
      name: "dall-e-3: standard",
      request: { model: "dall-e-3", quality: "standard" },
      ok: { quality: "standard" },
    },
    {
      name: "dall-e-3: high is refused (not a DALL·E quality, and no synonym back)",
      request: { model: "dall-e-3", quality: "high" },
      error: badRequest("quality", "invalid_value", /'high' is not supported by dall-e-3/),
    },
    {
      name: "dall-e-2: hd is refused",
      request: { model: "dall-e-2", quality: "hd" },
      error: badRequest("quality", "invalid_value"),
    },
    {
      name: "gpt-image-1: standard means medium",
      request: { model: "gpt-image-1", quality: "standard" },
      ok: { quality: "medium" },
    },
    {
      name: "gpt-image-1: hd means high",
      request: { model: "gpt-image-1", quality: "hd" },
      ok: { quality: "high" },
    },
    {
      name: "gpt-image-1: low",
      request: { model: "gpt-image-1", quality: "low" },
      ok: { quality: "low" },
    },
    {
      name: "gpt-image-2: high",
      request: { model: "gpt-image-2", quality: "high" },
      ok: { quality: "high" },
    },
    {
      name: "gemini-2.5-flash-image: hd is ignored with a warning",
      request: { model: "gemini-2.5-flash-image", quality: "hd" },
      ok: { quality: undefined, warnings: [/no quality setting; quality 'hd' was ignored/] },
    },
    {
      name: "gemini-2.5-flash-image: standard, sent, is named as dropped (the spec default too)",
      request: { model: "gemini-2.5-flash-image", quality: "standard" },
      ok: { quality: undefined, warnings: [/no quality setting; quality 'standard' was ignored/] },
    },
    {
      name: "imagen: high is ignored with a warning",
      request: { model: "imagen-4.0-generate-001", quality: "high" },
      ok: { quality: undefined, warnings: [/quality 'high'/] },
    },
    {
      name: "placeholder: takes every quality",
      request: { model: "local/placeholder", quality: "hd" },
      ok: { quality: "hd" },
    },
  ]);
});

describe("style", () => {
  runTable([
    {
      name: "dall-e-3: natural",
      request: { model: "dall-e-3", style: "natural" },
      ok: { style: "natural" },
    },
    {
      name: "gpt-image-1: natural is ignored with a warning and not sent",
      request: { model: "gpt-image-1", style: "natural" },
      ok: { style: undefined, warnings: [/no style setting; style 'natural' was ignored/] },
    },
    {
      name: "gpt-image-1: vivid, sent, is named as dropped (the spec default too)",
      request: { model: "gpt-image-1", style: "vivid" },
      ok: { style: undefined, warnings: [/no style setting; style 'vivid' was ignored/] },
    },
    {
      name: "gemini-2.5-flash-image: natural is ignored with a warning",
      request: { model: "gemini-2.5-flash-image", style: "natural" },
      ok: { style: undefined, warnings: [/style 'natural'/] },
    },
  ]);
});

describe("edits", () => {
  const images = (count: number) => Array.from({ length: count }, (_, index) => `img-${index}`);
  runTable([
    {
      name: "dall-e-3: an image is refused (it cannot edit)",
      request: { model: "dall-e-3", image: "img" },
      error: badRequest("image", "edits_not_supported"),
    },
    {
      name: "imagen: an image is refused (it cannot edit)",
      request: { model: "imagen-4.0-generate-001", image: ["img"] },
      error: badRequest("image", "edits_not_supported"),
    },
    {
      name: "dall-e-2: one image with a mask",
      request: { model: "dall-e-2", image: "img", mask: "mask" },
      ok: { images: 1, mask: true },
    },
    {
      name: "dall-e-2: two images are refused",
      request: { model: "dall-e-2", image: images(2) },
      error: badRequest("image", "too_many_images", /at most 1 input image/),
    },
    {
      name: "gpt-image-1: 16 images",
      request: { model: "gpt-image-1", image: images(16) },
      ok: { images: 16 },
    },
    {
      name: "gpt-image-1: 17 images are refused",
      request: { model: "gpt-image-1", image: images(17) },
      error: badRequest("image", "too_many_images"),
    },
    {
      name: "gpt-image-1: multipart bytes as the image",
      request: { model: "gpt-image-1", image: Buffer.from("bytes"), mask: Buffer.from("mask") },
      ok: { images: 1, mask: true },
    },
    {
      name: "gemini-2.5-flash-image: 3 images",
      request: { model: "gemini-2.5-flash-image", image: images(3) },
      ok: { images: 3 },
    },
    {
      name: "gemini-2.5-flash-image: 4 images are refused",
      request: { model: "gemini-2.5-flash-image", image: images(4) },
      error: badRequest("image", "too_many_images"),
    },
    {
      name: "gemini-3-pro-image-preview: 14 images",
      request: { model: "gemini-3-pro-image-preview", image: images(14) },
      ok: { images: 14 },
    },
    {
      name: "gemini-3-pro-image-preview: 15 images are refused",
      request: { model: "gemini-3-pro-image-preview", image: images(15) },
      error: badRequest("image", "too_many_images"),
    },
    {
      name: "a mask without an image is refused",
      request: { model: "gpt-image-1", mask: "mask" },
      error: badRequest("mask", "mask_without_image"),
    },
    {
      name: "gemini: a mask is refused",
      request: { model: "gemini-2.5-flash-image", image: "img", mask: "mask" },
      error: badRequest("mask", "unsupported_value"),
    },
  ]);
});

describe("background, output format, compression, moderation", () => {
  runTable([
    {
      name: "gpt-image-1: transparent with jpeg is refused",
      request: { model: "gpt-image-1", background: "transparent", output_format: "jpeg" },
      error: badRequest("background", "invalid_value", /jpeg/),
    },
    {
      name: "gpt-image-1: transparent with webp",
      request: { model: "gpt-image-1", background: "transparent", output_format: "webp" },
      ok: { background: "transparent", outputFormat: "webp" },
    },
    {
      name: "gpt-image-1: transparent with the default format",
      request: { model: "gpt-image-1", background: "transparent" },
      ok: { background: "transparent", outputFormat: undefined },
    },
    {
      name: "gpt-image-1: compression and moderation are kept",
      request: { model: "gpt-image-1", output_compression: 40, moderation: "low" },
      ok: { outputCompression: 40, moderation: "low" },
    },
    {
      name: "dall-e-3: transparent is refused",
      request: { model: "dall-e-3", background: "transparent" },
      error: badRequest("background", "unsupported_value"),
    },
    {
      name: "dall-e-3: opaque is ignored with a warning",
      request: { model: "dall-e-3", background: "opaque" },
      ok: { background: undefined, warnings: [/background/] },
    },
    {
      name: "dall-e-3: jpeg is refused",
      request: { model: "dall-e-3", output_format: "jpeg" },
      error: badRequest("output_format", "invalid_value"),
    },
    {
      name: "imagen: webp is refused",
      request: { model: "imagen-4.0-generate-001", output_format: "webp" },
      error: badRequest("output_format", "invalid_value", /png, jpeg/),
    },
    {
      name: "imagen: jpeg",
      request: { model: "imagen-4.0-generate-001", output_format: "jpeg" },
      ok: { outputFormat: "jpeg" },
    },
    {
      name: "gemini: compression and moderation are ignored with warnings",
      request: { model: "gemini-2.5-flash-image", output_compression: 40, moderation: "low" },
      ok: {
        outputCompression: undefined,
        moderation: undefined,
        warnings: [/output_compression/, /moderation/],
      },
    },
    {
      name: "placeholder: transparent png",
      request: { model: "local/placeholder", background: "transparent", output_format: "png" },
      ok: { background: "transparent", outputFormat: "png" },
    },
  ]);
});

describe("stream, n, response format", () => {
  runTable([
    {
      name: "stream true is refused",
      request: { model: "gpt-image-1", stream: true },
      error: badRequest("stream", "invalid_value", /Streaming is not supported/),
    },
    { name: "stream false is fine", request: { model: "gpt-image-1", stream: false }, ok: {} },
    {
      name: "b64_json is kept",
      request: { model: "dall-e-2", response_format: "b64_json" },
      ok: { responseFormat: "b64_json" },
    },
    {
      name: "dall-e-3: n 3 is three calls of one",
      request: { model: "dall-e-3", n: 3 },
      ok: { n: 3, calls: [1, 1, 1] },
    },
    {
      name: "imagen: n 10 is calls of 4, 4 and 2",
      request: { model: "imagen-4.0-generate-001", n: 10 },
      ok: { n: 10, calls: [4, 4, 2] },
    },
    {
      name: "dall-e-2: n 10 is one call",
      request: { model: "dall-e-2", n: 10 },
      ok: { n: 10, calls: [10] },
    },
    {
      name: "gemini: n 2 is two calls",
      request: { model: "gemini-2.5-flash-image", n: 2 },
      ok: { n: 2, calls: [1, 1] },
    },
    {
      name: "gpt-image-1: n 10 is one call",
      request: { model: "gpt-image-1", n: 10 },
      ok: { n: 10, calls: [10] },
    },
  ]);
});

describe("model names", () => {
  const resolves = (name: string, model: string): Row => ({
    name: `'${name}' is ${model}`,
    request: { model: name },
    ok: { model, requestedModel: name },
  });
  runTable([
    resolves("openai/dall-e-3", "dall-e-3"),
    resolves("google/gemini-2.5-flash-image", "gemini-2.5-flash-image"),
    resolves("gemini/gemini-2.5-flash-image", "gemini-2.5-flash-image"),
    resolves("nano-banana", "gemini-2.5-flash-image"),
    resolves("google/nano-banana", "gemini-2.5-flash-image"),
    resolves("nano-banana-pro", "gemini-3-pro-image"),
    resolves("imagen-4", "imagen-4.0-generate-001"),
    resolves("placeholder", "local/placeholder"),
    resolves("local/placeholder", "local/placeholder"),
    {
      name: "an unknown model is 404 model_not_found",
      request: { model: "dall-e-9" },
      error: { status: 404, param: "model", code: "model_not_found", message: /'dall-e-9'/ },
    },
    {
      name: "a provider prefix does not reach another provider's model",
      request: { model: "google/dall-e-3" },
      error: { status: 404, param: "model", code: "model_not_found" },
    },
    {
      name: "a model whose provider has no credentials is 404, naming the provider",
      request: { model: "nano-banana" },
      options: { isProviderConfigured: (provider: ProviderName) => provider !== "google" },
      error: { status: 404, param: "model", code: "model_not_found", message: /\(google\)/ },
    },
    {
      name: "other providers stay available when one is not configured",
      request: { model: "dall-e-3" },
      options: { isProviderConfigured: (provider: ProviderName) => provider !== "google" },
      ok: { model: "dall-e-3" },
    },
    {
      name: "without a model the default from the options is used",
      request: {},
      options: { defaultModel: "dall-e-3" },
      ok: { model: "dall-e-3", requestedModel: "dall-e-3", style: "vivid" },
    },
    {
      name: "the default may be an alias",
      request: {},
      options: { defaultModel: "placeholder" },
      ok: { model: "local/placeholder", requestedModel: "placeholder" },
    },
    {
      name: "an unknown default model is 404",
      request: {},
      options: { defaultModel: "nope" },
      error: { status: 404, param: "model", code: "model_not_found" },
    },
  ]);
});

describe("splitIntoCalls", () => {
  const rows: Array<[n: number, maxPerCall: number, calls: number[]]> = [
    [10, 4, [4, 4, 2]],
    [8, 4, [4, 4]],
    [3, 1, [1, 1, 1]],
    [10, 10, [10]],
    [1, 10, [1]],
    [0, 4, []],
  ];
  for (const [n, maxPerCall, calls] of rows) {
    test(`${n} by ${maxPerCall} is [${calls.join(", ")}]`, () => {
      assert.deepEqual(splitIntoCalls(n, maxPerCall), calls);
    });
  }
});

describe("describeSizes", () => {
  test("a list names its sizes, and auto when the model takes it", () => {
    assert.equal(
      describeSizes({ kind: "list", sizes: ["256x256", "512x512"], auto: false }),
      "Supported: 256x256, 512x512.",
    );
    assert.equal(
      describeSizes({ kind: "list", sizes: ["1024x1024"], auto: true }),
      "Supported: 1024x1024 or auto.",
    );
  });

  test("a rule names its bounds", () => {
    const gptImage2 = MODELS.find((model) => model.id === "gpt-image-2");
    assert.ok(gptImage2);
    const text = describeSizes(gptImage2.sizes);
    assert.match(text, /multiples of 16/);
    assert.match(text, /at most 3840/);
    assert.match(text, /655360 to 8294400 pixels/);
    assert.match(text, /from 1:3 to 3:1 or auto\.$/);
  });
});
