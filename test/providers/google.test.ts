import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import sharp from "sharp";
import { HubError } from "../../src/errors.ts";
import {
  aspectRatioOfSize,
  createGoogleProvider,
  IMAGEN_ASPECT_RATIOS,
  imageSizeOfSize,
} from "../../src/providers/google.ts";
import type { ImageProvider, ProviderCall } from "../../src/providers/types.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import type { GoogleSimulator, RecordedGoogleRequest } from "../sim/google.ts";
import { GOOGLE_SHUT_DOWN_MODELS, startGoogleSimulator } from "../sim/google.ts";

function callOf(overrides: Partial<ProviderCall> = {}): ProviderCall {
  return providerCall({ model: "gemini-2.5-flash-image", ...overrides });
}

async function metadataOf(base64: string) {
  return sharp(Buffer.from(base64, "base64")).metadata();
}

function hubError(expected: Partial<HubError>) {
  return (error: unknown) => {
    assert.ok(error instanceof HubError, `expected a HubError, got ${String(error)}`);
    for (const [key, value] of Object.entries(expected)) {
      assert.deepEqual(error[key as keyof HubError], value, `error.${key}`);
    }
    return true;
  };
}

describe("aspectRatioOfSize", () => {
  const gemini: Array<[string | undefined, string | undefined]> = [
    ["1024x1024", "1:1"],
    ["2048x2048", "1:1"],
    ["832x1248", "2:3"],
    ["1536x1024", "3:2"],
    ["1024x1536", "2:3"],
    ["864x1184", "3:4"],
    ["1184x864", "4:3"],
    ["896x1152", "4:5"],
    ["1152x896", "5:4"],
    ["768x1344", "9:16"],
    ["1344x768", "16:9"],
    ["1792x1024", "16:9"],
    ["1536x672", "21:9"],
    ["4000x1000", undefined],
    ["1000x4000", undefined],
    [undefined, undefined],
    ["0x1024", undefined],
    ["big", undefined],
  ];
  for (const [size, ratio] of gemini) {
    it(`Gemini: ${size} → ${ratio}`, () => assert.equal(aspectRatioOfSize(size), ratio));
  }

  const imagen: Array<[string, string | undefined]> = [
    ["1024x1024", "1:1"],
    ["896x1280", "3:4"],
    ["1280x896", "4:3"],
    ["768x1408", "9:16"],
    ["1408x768", "16:9"],
    ["1536x1024", undefined],
    ["1536x672", undefined],
  ];
  for (const [size, ratio] of imagen) {
    it(`Imagen: ${size} → ${ratio}`, () => {
      assert.equal(aspectRatioOfSize(size, IMAGEN_ASPECT_RATIOS), ratio);
    });
  }
});

describe("imageSizeOfSize", () => {
  const table: Array<[string | undefined, string | undefined]> = [
    ["1024x1024", "1K"],
    ["1344x768", "1K"],
    ["1584x672", "1K"],
    ["1536x1536", "2K"],
    ["2048x2048", "2K"],
    ["2752x1536", "2K"],
    ["4096x4096", "4K"],
    ["5504x3072", "4K"],
    [undefined, undefined],
  ];
  for (const [size, imageSize] of table) {
    it(`${size} → ${imageSize}`, () => assert.equal(imageSizeOfSize(size), imageSize));
  }
});

describe("Google provider against the simulator", () => {
  let sim: GoogleSimulator;
  let google: ImageProvider;

  before(async () => {
    sim = await startGoogleSimulator();
    google = createGoogleProvider({ apiKey: sim.apiKey, baseURL: `${sim.baseURL}/` });
  });
  after(() => sim.close());
  beforeEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
  });

  /** The first request the simulator recorded in this test. */
  function firstRequest(): RecordedGoogleRequest {
    const request = sim.requests[0];
    assert.ok(request, "the simulator received a request");
    return request;
  }

  describe("Gemini generateContent", () => {
    it("sends the prompt, the key as a header and the aspect ratio, and returns the image as sent", async () => {
      const result = await google.generate(callOf({ size: "1344x768" }));

      assert.equal(sim.requests.length, 1);
      const request = firstRequest();
      assert.equal(request.method, "POST");
      assert.equal(request.path, "/v1beta/models/gemini-2.5-flash-image:generateContent");
      assert.equal(request.headers["x-goog-api-key"], sim.apiKey);
      assert.equal(request.headers.authorization, undefined);
      assert.equal(request.headers["content-type"], "application/json");
      assert.deepEqual(request.body, {
        contents: [{ role: "user", parts: [{ text: "a red fox in the snow" }] }],
        generationConfig: {
          responseModalities: ["TEXT", "IMAGE"],
          imageConfig: { aspectRatio: "16:9" },
        },
      });

      assert.equal(result.images.length, 1);
      const image = result.images[0];
      assert.deepEqual(image, {
        kind: "base64",
        base64: request.images[0],
        mimeType: "image/png",
        revisedPrompt: undefined,
      });
      const metadata = await metadataOf(base64Of(image));
      assert.equal(metadata.format, "png");
      assert.deepEqual([metadata.width, metadata.height], [1344, 768]);
      assert.deepEqual(result.warnings, []);
    });

    it("maps usageMetadata to token usage", async () => {
      const result = await google.generate(callOf());
      const reply = firstRequest().reply as { usageMetadata: Record<string, number> };
      const usage = reply.usageMetadata;
      assert.deepEqual(result.usage, {
        inputTokens: usage.promptTokenCount,
        outputTokens: usage.candidatesTokenCount,
        totalTokens: usage.totalTokenCount,
        inputTextTokens: usage.promptTokenCount,
        inputImageTokens: 0,
      });
      assert.ok((result.usage?.outputTokens ?? 0) > 1000);
    });

    it("leaves out imageConfig without a size, and sends input images as inlineData", async () => {
      const first = await inputImageOf(300, 200);
      const second = await inputImageOf(64, 64);
      second.mimeType = "image/png";
      const result = await google.generate(callOf({ images: [first, second] }));

      const body = firstRequest().body;
      assert.deepEqual(body, {
        contents: [
          {
            role: "user",
            parts: [
              { text: "a red fox in the snow" },
              { inlineData: { mimeType: "image/png", data: first.bytes.toString("base64") } },
              { inlineData: { mimeType: "image/png", data: second.bytes.toString("base64") } },
            ],
          },
        ],
        generationConfig: { responseModalities: ["TEXT", "IMAGE"] },
      });
      // Without an aspect ratio Gemini follows the first input image: 300x200 is 3:2.
      const metadata = await metadataOf(base64Of(result.images[0]));
      assert.deepEqual([metadata.width, metadata.height], [1248, 832]);
      assert.ok((result.usage?.inputImageTokens ?? 0) > 0);
    });

    it("sends imageSize to gemini-3-pro-image-preview and skips its thought images", async () => {
      const result = await google.generate(
        callOf({ model: "gemini-3-pro-image-preview", size: "2048x2048" }),
      );
      const request = firstRequest();
      assert.equal(request.path, "/v1beta/models/gemini-3-pro-image-preview:generateContent");
      assert.deepEqual((request.body as { generationConfig: unknown }).generationConfig, {
        responseModalities: ["TEXT", "IMAGE"],
        imageConfig: { aspectRatio: "1:1", imageSize: "2K" },
      });
      assert.equal(result.images.length, 1);
      assert.equal(base64Of(result.images[0]), request.images[0]);
      const metadata = await metadataOf(base64Of(result.images[0]));
      assert.deepEqual([metadata.width, metadata.height], [2048, 2048]);

      const reply = request.reply as { usageMetadata: Record<string, number> };
      const usage = reply.usageMetadata;
      assert.equal(
        result.usage?.outputTokens,
        (usage.candidatesTokenCount ?? 0) + (usage.thoughtsTokenCount ?? 0),
      );
      assert.equal(result.usage?.totalTokens, usage.totalTokenCount);
    });

    it("does not send imageSize to gemini-2.5-flash-image, and warns when the size asks for more", async () => {
      const result = await google.generate(callOf({ size: "2048x2048" }));
      assert.deepEqual((firstRequest().body as { generationConfig: unknown }).generationConfig, {
        responseModalities: ["TEXT", "IMAGE"],
        imageConfig: { aspectRatio: "1:1" },
      });
      assert.equal(result.warnings.length, 1);
      assert.match(result.warnings[0] ?? "", /about 1K/);
    });

    it("reports settings Gemini has no notion of as warnings", async () => {
      const result = await google.generate(
        callOf({
          quality: "hd",
          style: "vivid",
          background: "transparent",
          outputCompression: 80,
          moderation: "low",
          outputFormat: "jpeg",
        }),
      );
      assert.equal(result.images.length, 1);
      const warnings = result.warnings.join("\n");
      for (const setting of [
        "quality",
        "style",
        "background",
        "output_compression",
        "moderation",
        "output_format",
      ]) {
        assert.match(warnings, new RegExp(setting));
      }
      const body = JSON.stringify(firstRequest().body);
      for (const leak of ["hd", "vivid", "transparent", "jpeg"])
        assert.ok(!body.includes(`"${leak}"`));
    });

    it("throws a plain error when asked for more than one image per call", async () => {
      await assert.rejects(google.generate(callOf({ count: 2 })), (error: unknown) => {
        assert.ok(error instanceof Error && !(error instanceof HubError));
        return true;
      });
      assert.equal(sim.requests.length, 0);
    });

    it("refuses a mask before calling Google", async () => {
      const mask = await inputImageOf(32, 32);
      const image = await inputImageOf(32, 32);
      await assert.rejects(
        google.generate(callOf({ images: [image], mask })),
        hubError({ status: 400, param: "mask" }),
      );
      assert.equal(sim.requests.length, 0);
    });

    it("turns a blocked prompt into a content-policy error naming the reason", async () => {
      sim.blockNext("prompt");
      await assert.rejects(
        google.generate(callOf()),
        hubError({ status: 400, code: "content_policy_violation", param: "prompt" }),
      );
      sim.blockNext("prompt");
      await assert.rejects(google.generate(callOf()), /SAFETY/);
    });

    it("turns a withheld image (IMAGE_SAFETY) into a content-policy error", async () => {
      sim.blockNext("image");
      await assert.rejects(
        google.generate(callOf()),
        (error: unknown) =>
          hubError({ status: 400, code: "content_policy_violation" })(error) &&
          /IMAGE_SAFETY/.test((error as Error).message),
      );
    });

    it("answers upstream_no_image when Gemini only talks", async () => {
      sim.failNext({
        status: 200,
        body: {
          candidates: [
            {
              content: { role: "model", parts: [{ text: "I drew nothing." }] },
              finishReason: "STOP",
            },
          ],
        },
      });
      await assert.rejects(
        google.generate(callOf()),
        hubError({ status: 502, code: "upstream_no_image", type: "server_error" }),
      );
    });

    it("reads inline_data spelled in snake case", async () => {
      sim.failNext({
        status: 200,
        body: {
          candidates: [
            {
              content: {
                parts: [
                  { text: "here" },
                  { inline_data: { mime_type: "image/jpeg", data: "AAAA" } },
                ],
              },
              finishReason: "STOP",
            },
          ],
        },
      });
      const result = await google.generate(callOf());
      assert.deepEqual(result.images, [
        { kind: "base64", base64: "AAAA", mimeType: "image/jpeg", revisedPrompt: undefined },
      ]);
      assert.equal(result.usage, undefined);
    });
  });

  describe("Imagen predict", () => {
    it("sends instances and parameters, and returns every image as sent", async () => {
      const result = await google.generate(
        callOf({ model: "imagen-4.0-generate-001", count: 3, size: "1408x768" }),
      );
      const request = firstRequest();
      assert.equal(request.path, "/v1beta/models/imagen-4.0-generate-001:predict");
      assert.equal(request.headers["x-goog-api-key"], sim.apiKey);
      assert.deepEqual(request.body, {
        instances: [{ prompt: "a red fox in the snow" }],
        parameters: { sampleCount: 3, includeRaiReason: true, aspectRatio: "16:9" },
      });
      assert.equal(result.images.length, 3);
      assert.deepEqual(result.images.map(base64Of), request.images);
      for (const image of result.images) {
        assert.equal(image.kind === "base64" && image.mimeType, "image/png");
        const metadata = await metadataOf(base64Of(image));
        assert.deepEqual([metadata.format, metadata.width, metadata.height], ["png", 1408, 768]);
      }
      assert.equal(result.usage, undefined);
      assert.deepEqual(result.warnings, []);
    });

    it("asks for JPEG through outputOptions", async () => {
      const result = await google.generate(
        callOf({
          model: "imagen-4.0-generate-001",
          size: "1280x896",
          outputFormat: "jpeg",
          outputCompression: 70,
        }),
      );
      assert.deepEqual((firstRequest().body as { parameters: unknown }).parameters, {
        sampleCount: 1,
        includeRaiReason: true,
        aspectRatio: "4:3",
        outputOptions: { mimeType: "image/jpeg", compressionQuality: 70 },
      });
      const image = result.images[0];
      assert.equal(image?.kind === "base64" && image.mimeType, "image/jpeg");
      const metadata = await metadataOf(base64Of(image));
      assert.deepEqual([metadata.format, metadata.width, metadata.height], ["jpeg", 1280, 896]);
      assert.deepEqual(result.warnings, []);
    });

    it("warns that webp is not available and sends no outputOptions", async () => {
      const result = await google.generate(
        callOf({ model: "imagen-4.0-generate-001", outputFormat: "webp" }),
      );
      assert.deepEqual((firstRequest().body as { parameters: unknown }).parameters, {
        sampleCount: 1,
        includeRaiReason: true,
      });
      assert.equal(result.images[0]?.kind === "base64" && result.images[0].mimeType, "image/png");
      assert.equal(result.warnings.length, 1);
      assert.match(result.warnings[0] ?? "", /webp/);
    });

    it("turns an empty reply (the safety filter took everything) into a content-policy error", async () => {
      sim.blockNext();
      await assert.rejects(
        google.generate(callOf({ model: "imagen-4.0-generate-001", count: 2 })),
        hubError({ status: 400, code: "content_policy_violation", param: "prompt" }),
      );
      assert.deepEqual(firstRequest().reply, {});
    });

    it("turns only filtered predictions into a content-policy error with Google's reason", async () => {
      sim.filterNext(2);
      await assert.rejects(
        google.generate(callOf({ model: "imagen-4.0-generate-001", count: 2 })),
        (error: unknown) =>
          hubError({ code: "content_policy_violation" })(error) &&
          /safety filter threshold/.test((error as Error).message),
      );
    });

    it("returns the images the filter left, with a warning", async () => {
      sim.filterNext(2);
      const result = await google.generate(callOf({ model: "imagen-4.0-generate-001", count: 4 }));
      assert.equal(result.images.length, 2);
      assert.deepEqual(result.images.map(base64Of), firstRequest().images);
      assert.equal(result.warnings.length, 1);
      assert.match(result.warnings[0] ?? "", /2 of 4/);
    });

    it("refuses input images: Imagen does not edit", async () => {
      const image = await inputImageOf(64, 64);
      await assert.rejects(
        google.generate(callOf({ model: "imagen-4.0-generate-001", images: [image] })),
        hubError({ status: 400, type: "invalid_request_error", param: "image" }),
      );
      assert.equal(sim.requests.length, 0);
    });

    it("refuses a size with no Imagen aspect ratio before calling Google", async () => {
      await assert.rejects(
        google.generate(callOf({ model: "imagen-4.0-generate-001", size: "1536x1024" })),
        hubError({ status: 400, param: "size" }),
      );
      assert.equal(sim.requests.length, 0);
    });

    it("maps a Responsible AI 400 to a content-policy error", async () => {
      sim.failNext({
        status: 400,
        body: {
          error: {
            code: 400,
            message:
              "Image generation failed with the following error: The prompt could not be submitted. This prompt contains sensitive words that violate Google's Responsible AI practices.",
            status: "INVALID_ARGUMENT",
          },
        },
      });
      await assert.rejects(
        google.generate(callOf({ model: "imagen-4.0-generate-001" })),
        hubError({ status: 400, code: "content_policy_violation" }),
      );
    });
  });

  describe("failures", () => {
    it("maps a wrong key (400 API_KEY_INVALID) to an auth failure without Google's message", async () => {
      const wrong = createGoogleProvider({ apiKey: "not-the-key", baseURL: sim.baseURL });
      await assert.rejects(wrong.generate(callOf()), (error: unknown) => {
        hubError({ status: 502, type: "server_error", code: "upstream_auth_failed" })(error);
        assert.doesNotMatch((error as Error).message, /API key not valid/);
        assert.doesNotMatch(JSON.stringify((error as HubError).toJSON()), /not-the-key|API key/);
        return true;
      });
      const reply = firstRequest().reply as { error: { code: number; status: string } };
      assert.equal(reply.error.code, 400);
      assert.equal(reply.error.status, "INVALID_ARGUMENT");
    });

    it("maps a missing key (403 PERMISSION_DENIED) to an auth failure", async () => {
      const keyless = createGoogleProvider({ apiKey: "", baseURL: sim.baseURL });
      await assert.rejects(
        keyless.generate(callOf({ model: "imagen-4.0-generate-001" })),
        hubError({ status: 502, code: "upstream_auth_failed" }),
      );
      assert.equal((firstRequest().reply as { error: { code: number } }).error.code, 403);
    });

    it("never puts the key in the URL", async () => {
      await google.generate(callOf());
      await google.generate(callOf({ model: "imagen-4.0-generate-001" }));
      for (const request of sim.requests) {
        assert.ok(!request.path.includes("?"), request.path);
        assert.ok(!request.path.includes(sim.apiKey), request.path);
      }
    });

    it("maps an unknown model to upstream_model_not_found", async () => {
      await assert.rejects(
        google.generate(callOf({ model: "gemini-0-nonexistent" })),
        hubError({ status: 502, code: "upstream_model_not_found" }),
      );
      await assert.rejects(
        google.generate(callOf({ model: "imagen-0-nonexistent" })),
        hubError({ status: 502, code: "upstream_model_not_found" }),
      );
    });

    it("passes a 429 on as rate limited with Retry-After", async () => {
      sim.failNext({
        status: 429,
        headers: { "retry-after": "7" },
        body: {
          error: {
            code: 429,
            message: "You exceeded your current quota, please check your plan.",
            status: "RESOURCE_EXHAUSTED",
          },
        },
      });
      await assert.rejects(
        google.generate(callOf()),
        hubError({
          status: 429,
          type: "rate_limit_error",
          code: "upstream_rate_limited",
          retryable: true,
          retryAfterSeconds: 7,
        }),
      );
    });

    it("maps a 500 to a retryable 502", async () => {
      sim.failNext({
        status: 500,
        body: {
          error: { code: 500, message: "An internal error has occurred.", status: "INTERNAL" },
        },
      });
      await assert.rejects(
        google.generate(callOf({ model: "imagen-4.0-generate-001" })),
        hubError({ status: 502, type: "server_error", retryable: true }),
      );
    });

    it("answers 504 when Google takes longer than the time budget", async () => {
      const impatient = createGoogleProvider({
        apiKey: sim.apiKey,
        baseURL: sim.baseURL,
        timeoutMs: 100,
      });
      sim.delayMs = 2_000;
      await assert.rejects(
        impatient.generate(callOf()),
        hubError({ status: 504, code: "upstream_timeout", retryable: true }),
      );
    });

    it("rejects promptly with the signal's reason when the call is aborted", async () => {
      sim.delayMs = 5_000;
      const controller = new AbortController();
      const reason = new Error("client went away");
      const started = Date.now();
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(google.generate(callOf({ signal: controller.signal })), (error) => {
        assert.equal(error, reason);
        return true;
      });
      assert.ok(Date.now() - started < 1_000, "rejected promptly");
    });

    it("rejects at once when the signal is already aborted", async () => {
      const controller = new AbortController();
      controller.abort(new Error("gone"));
      await assert.rejects(google.generate(callOf({ signal: controller.signal })), /gone/);
      assert.equal(sim.requests.length, 0);
    });
  });
});

describe("Google provider: model list and shut-down models", () => {
  let sim: GoogleSimulator;
  let google: ImageProvider;
  const listOptions = () => ({ signal: new AbortController().signal, timeoutMs: 5_000 });

  before(async () => {
    // Pages of 3, whatever the hub asks for: the list takes several pages.
    sim = await startGoogleSimulator({ shutDown: GOOGLE_SHUT_DOWN_MODELS, modelListPageSize: 3 });
    google = createGoogleProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
  });
  after(() => sim.close());
  beforeEach(() => {
    sim.requests.length = 0;
    sim.failModelList = undefined;
    sim.modelListPageSize = 3;
    sim.shutDown = new Set(GOOGLE_SHUT_DOWN_MODELS);
  });

  function listModels(provider = google) {
    assert.ok(provider.listModels, "the Google provider lists models");
    return provider.listModels(listOptions());
  }

  /** The model names the simulator sent, over every page, `models/` removed. */
  function namesSent(): string[] {
    return sim.requests.flatMap((request) => {
      const reply = request.reply as { models?: { name: string }[] };
      return (reply.models ?? []).map((model) => model.name.replace(/^models\//, ""));
    });
  }

  it("follows nextPageToken through every page, the key in a header only", async () => {
    const models = await listModels();

    assert.ok(sim.requests.length >= 3, `${sim.requests.length} pages`);
    for (const [index, request] of sim.requests.entries()) {
      assert.equal(request.method, "GET");
      const url = new URL(request.path, "http://sim");
      assert.equal(url.pathname, "/v1beta/models");
      assert.equal(url.searchParams.get("pageSize"), "1000");
      assert.equal(url.searchParams.has("key"), false);
      assert.ok(!request.path.includes(sim.apiKey), request.path);
      assert.equal(request.headers["x-goog-api-key"], sim.apiKey);
      const previous = sim.requests[index - 1]?.reply as { nextPageToken?: string } | undefined;
      assert.equal(url.searchParams.get("pageToken"), previous?.nextPageToken ?? null);
    }
    const last = sim.requests.at(-1)?.reply as { nextPageToken?: string };
    assert.equal(last.nextPageToken, undefined);

    assert.deepEqual(
      models,
      namesSent().map((id) => ({ id, shutdownDate: null })),
    );
    const ids = models.map((model) => model.id);
    assert.equal(new Set(ids).size, ids.length, "no model twice");
    for (const current of [
      "gemini-3-pro-image",
      "gemini-3-pro-image-preview",
      "gemini-3.1-flash-image-preview",
      "gemini-2.5-flash",
    ]) {
      assert.ok(ids.includes(current), current);
    }
    for (const gone of GOOGLE_SHUT_DOWN_MODELS) assert.equal(ids.includes(gone), false, gone);
  });

  it("reads the whole list in one page when Google sends it so", async () => {
    sim.modelListPageSize = undefined;
    const models = await listModels();
    assert.equal(sim.requests.length, 1);
    assert.equal(models.length, namesSent().length);
  });

  it("refuses a list that goes on past 10 pages rather than take part of it", async () => {
    // Every model served: more of them than 10 pages of one hold.
    sim.shutDown.clear();
    sim.modelListPageSize = 1;
    await assert.rejects(
      listModels(),
      hubError({ status: 502, code: "upstream_invalid_response" }),
    );
    assert.equal(sim.requests.length, 10);
  });

  for (const [label, body] of [
    ["no models", {}],
    ["models that are not a list", { models: "gemini" }],
    ["not an object", [1, 2]],
  ] as const) {
    it(`maps a model list of ${label} to upstream_invalid_response`, async () => {
      sim.failNext({ status: 200, body });
      await assert.rejects(
        listModels(),
        hubError({ status: 502, code: "upstream_invalid_response" }),
      );
    });
  }

  it("passes a 503 of the model list on as upstream_unavailable", async () => {
    sim.failModelList = 503;
    await assert.rejects(
      listModels(),
      hubError({ status: 503, code: "upstream_unavailable", upstreamStatus: 503 }),
    );
    const reply = sim.requests[0]?.reply as { error?: { status: string } } | undefined;
    assert.equal(reply?.error?.status, "UNAVAILABLE");
  });

  it("maps a wrong key to upstream_auth_failed, as for calls", async () => {
    const wrong = createGoogleProvider({ apiKey: "not-the-key", baseURL: sim.baseURL });
    await assert.rejects(
      listModels(wrong),
      hubError({ status: 502, code: "upstream_auth_failed", upstreamStatus: 401 }),
    );
  });

  for (const model of ["gemini-2.5-flash-image", "imagen-4.0-generate-001"]) {
    it(`maps a call to shut-down ${model} to upstream_model_not_found`, async () => {
      await assert.rejects(
        google.generate(callOf({ model })),
        hubError({ status: 502, code: "upstream_model_not_found" }),
      );
      const method = model.startsWith("imagen-") ? "predict" : "generateContent";
      assert.deepEqual(sim.requests[0]?.reply, {
        error: {
          code: 404,
          message: `models/${model} is not found for API version v1beta, or is not supported for ${method}. Call ListModels to see the list of available models and their supported methods.`,
          status: "NOT_FOUND",
        },
      });
    });
  }

  it("simulator: honours the pageSize asked, and each model's image sizes", async () => {
    sim.modelListPageSize = undefined;
    const headers = { "x-goog-api-key": sim.apiKey, "content-type": "application/json" };
    const page = await fetch(`${sim.baseURL}/v1beta/models?pageSize=2`, { headers });
    const body = (await page.json()) as { models: unknown[]; nextPageToken?: string };
    assert.equal(body.models.length, 2);
    assert.equal(typeof body.nextPageToken, "string");

    const draw = async (model: string, imageSize: string) => {
      const response = await fetch(`${sim.baseURL}/v1beta/models/${model}:generateContent`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          contents: [{ parts: [{ text: "x" }] }],
          generationConfig: { imageConfig: { aspectRatio: "1:1", imageSize } },
        }),
      });
      await response.arrayBuffer();
      return response.status;
    };
    assert.equal(await draw("gemini-3.1-flash-image", "512"), 200);
    assert.equal(await draw("gemini-nano-banana-2.1", "512"), 400);
    assert.equal(await draw("gemini-nano-banana-2.1", "1K"), 200);
  });

  it("still serves the current Gemini image models", async () => {
    for (const model of ["gemini-3-pro-image", "gemini-3.1-flash-image-preview"]) {
      const result = await google.generate(callOf({ model, size: "1024x1024" }));
      assert.equal(result.images.length, 1, model);
    }
  });
});
