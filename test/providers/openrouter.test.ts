import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import sharp from "sharp";
import type { HubError } from "../../src/errors.ts";
import { createOpenRouterProvider } from "../../src/providers/openrouter.ts";
import type { ImageProvider, ProviderCall } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import type {
  OpenRouterSimulator,
  RecordedOpenRouterRequest,
  ScriptedReply,
} from "../sim/openrouter.ts";
import { OPENROUTER_FAULTS, startOpenRouterSimulator } from "../sim/openrouter.ts";

const GEMINI = "google/gemini-3.1-flash-image";

function callOf(overrides: Partial<ProviderCall> = {}): ProviderCall {
  return providerCall({ model: GEMINI, ...overrides });
}

async function measure(base64: string) {
  const { format, width, height } = await sharp(Buffer.from(base64, "base64")).metadata();
  return { format, width, height };
}

describe("OpenRouter provider against the simulator", () => {
  let sim: OpenRouterSimulator;
  let openrouter: ImageProvider;

  before(async () => {
    sim = await startOpenRouterSimulator();
    openrouter = createOpenRouterProvider({ apiKey: sim.apiKey, baseURL: `${sim.baseURL}/` });
  });
  after(() => sim.close());
  beforeEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
  });

  function onlyRequest(): RecordedOpenRouterRequest {
    assert.equal(sim.requests.length, 1);
    return sim.requests[0] as RecordedOpenRouterRequest;
  }

  it("generates through POST /images with the key, aspect ratio and resolution", async () => {
    const result = await openrouter.generate(callOf({ size: "2752x1536" }));

    const request = onlyRequest();
    assert.equal(request.method, "POST");
    assert.equal(request.path, "/api/v1/images");
    assert.equal(request.headers.authorization, `Bearer ${sim.apiKey}`);
    assert.equal(request.headers["content-type"], "application/json");
    assert.deepEqual(request.body, {
      model: GEMINI,
      prompt: "a red fox in the snow",
      aspect_ratio: "16:9",
      resolution: "2K",
    });
    assert.equal(result.images.length, 1);
    const image = result.images[0];
    assert.equal(image?.kind === "base64" && image.mimeType, "image/png");
    assert.equal(base64Of(image), request.images[0]);
    assert.deepEqual(await measure(base64Of(image)), { format: "png", width: 2752, height: 1536 });
    assert.deepEqual(result.warnings, []);

    const usage = (request.reply as { usage: Record<string, number> }).usage;
    assert.deepEqual(result.usage, {
      inputTokens: usage.prompt_tokens,
      outputTokens: usage.completion_tokens,
      totalTokens: usage.total_tokens,
    });
  });

  it("sends OpenAI models their size in pixels, with n and the GPT image options", async () => {
    const result = await openrouter.generate(
      callOf({
        model: "openai/gpt-image-2",
        count: 3,
        size: "1536x1024",
        quality: "high",
        outputFormat: "webp",
        outputCompression: 80,
        background: "opaque",
      }),
    );
    assert.deepEqual(onlyRequest().body, {
      model: "openai/gpt-image-2",
      prompt: "a red fox in the snow",
      n: 3,
      size: "1536x1024",
      quality: "high",
      background: "opaque",
      output_format: "webp",
      output_compression: 80,
    });
    assert.equal(result.images.length, 3);
    for (const image of result.images) {
      assert.equal(image.kind === "base64" && image.mimeType, "image/webp");
      assert.deepEqual(await measure(base64Of(image)), {
        format: "webp",
        width: 1536,
        height: 1024,
      });
    }
  });

  it("edits: sends every input image as an image_url data: URL in input_references", async () => {
    const wide = await inputImageOf(300, 200);
    const jpeg = await inputImageOf(64, 64, "jpeg");
    const result = await openrouter.generate(callOf({ images: [wide, jpeg] }));

    const body = onlyRequest().body as { input_references: unknown; aspect_ratio?: string };
    assert.deepEqual(body.input_references, [
      {
        type: "image_url",
        image_url: { url: `data:image/png;base64,${wide.bytes.toString("base64")}` },
      },
      {
        type: "image_url",
        image_url: { url: `data:image/jpeg;base64,${jpeg.bytes.toString("base64")}` },
      },
    ]);
    assert.equal(body.aspect_ratio, undefined);
    // Without a size Gemini follows the first reference: 300x200 is 3:2.
    assert.deepEqual(await measure(base64Of(result.images[0])), {
      format: "png",
      width: 1264,
      height: 848,
    });
  });

  it("sends the declared seed, and warns of hints it has no field for", async () => {
    const result = await openrouter.generate(
      callOf({ style: "vivid", moderation: "low", extra: { seed: 42, steps: 30 } }),
    );
    const body = onlyRequest().body as Record<string, unknown>;
    assert.equal(body.seed, 42);
    for (const absent of ["style", "moderation", "steps"]) assert.equal(body[absent], undefined);
    assert.equal(result.warnings.length, 3);
    assert.match(result.warnings.join("\n"), /style.*\n.*moderation.*\n.*steps/);
  });

  it("sends the attribution headers when configured", async () => {
    const attributed = createOpenRouterProvider({
      apiKey: sim.apiKey,
      baseURL: sim.baseURL,
      appUrl: "https://hub.example",
      appTitle: "image-hub",
    });
    await attributed.generate(callOf());
    const { headers } = onlyRequest();
    assert.equal(headers["http-referer"], "https://hub.example");
    assert.equal(headers["x-openrouter-title"], "image-hub");
  });

  it("refuses a mask before calling OpenRouter", async () => {
    const image = await inputImageOf(32, 32);
    const error = await hubErrorOf(openrouter.generate(callOf({ images: [image], mask: image })));
    assert.deepEqual([error.status, error.param], [400, "mask"]);
    assert.equal(sim.requests.length, 0);
  });

  it("warns when OpenRouter makes fewer images than asked", async () => {
    sim.failNext({ status: 200, body: { created: 1, data: [{ b64_json: "iVBORw0KGgoAAAA" }] } });
    const result = await openrouter.generate(callOf({ model: "openai/gpt-image-2", count: 2 }));
    assert.equal(result.images.length, 1);
    // No media_type: the type comes from the image's first bytes.
    assert.equal(result.images[0]?.kind === "base64" && result.images[0].mimeType, "image/png");
    assert.match(result.warnings[0] ?? "", /1 of the 2/);
  });

  describe("failures, in OpenRouter's error shape", () => {
    const cases: Array<[string, ScriptedReply, Partial<HubError>]> = [
      [
        "402 (the hub's account has no credit) is a 502, not the client's 402",
        OPENROUTER_FAULTS.noCredit,
        {
          status: 502,
          code: "upstream_insufficient_credit",
          upstreamStatus: 402,
          retryable: false,
        },
      ],
      [
        "403 with moderation metadata is a content-policy refusal",
        OPENROUTER_FAULTS.moderation,
        { status: 400, code: "content_policy_violation", param: "prompt" },
      ],
      [
        "403 without a refusal is an auth failure",
        OPENROUTER_FAULTS.forbiddenKey,
        { status: 502, code: "upstream_auth_failed", upstreamStatus: 403 },
      ],
      [
        "429 passes on with Retry-After",
        OPENROUTER_FAULTS.rateLimited,
        { status: 429, code: "upstream_rate_limited", retryAfterSeconds: 60, retryable: true },
      ],
      [
        "502 (the provider failed) is a retryable upstream error",
        OPENROUTER_FAULTS.providerError,
        { status: 502, code: "upstream_error", retryable: true },
      ],
      [
        "a 200 without an image is upstream_no_image",
        OPENROUTER_FAULTS.noImage,
        { status: 502, code: "upstream_no_image" },
      ],
    ];
    for (const [label, fault, expected] of cases) {
      it(label, async () => {
        sim.failNext(fault);
        const error = await hubErrorOf(openrouter.generate(callOf()));
        for (const [key, value] of Object.entries(expected)) {
          assert.deepEqual(error[key as keyof HubError], value, `error.${key}`);
        }
        assert.equal(onlyRequest().status, fault.status);
      });
    }

    it("maps a wrong key (401) to an auth failure that does not repeat OpenRouter's message", async () => {
      const wrong = createOpenRouterProvider({ apiKey: "sk-or-v1-wrong", baseURL: sim.baseURL });
      const error = await hubErrorOf(wrong.generate(callOf()));
      assert.deepEqual(
        [error.status, error.code, error.upstreamStatus],
        [502, "upstream_auth_failed", 401],
      );
      assert.doesNotMatch(JSON.stringify(error.toJSON()), /User not found|sk-or-v1-wrong/);
      assert.equal(onlyRequest().status, 401);
    });

    it("maps an unknown model (OpenRouter's 400) to upstream_model_not_found", async () => {
      const error = await hubErrorOf(
        openrouter.generate(callOf({ model: "google/no-such-image" })),
      );
      assert.deepEqual([error.status, error.code], [502, "upstream_model_not_found"]);
      assert.equal(onlyRequest().status, 400);
    });

    it("maps any other 400 to upstream_rejected with OpenRouter's message, not its numeric code", async () => {
      const error = await hubErrorOf(
        openrouter.generate(callOf({ model: "openai/gpt-image-2", size: "1000x1000" })),
      );
      assert.deepEqual([error.status, error.code], [400, "upstream_rejected"]);
      assert.match(error.message, /size: Invalid/);
    });

    it("rejects promptly with the signal's reason when the call is aborted", async () => {
      sim.delayMs = 5_000;
      const controller = new AbortController();
      const reason = new Error("client went away");
      const started = Date.now();
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(openrouter.generate(callOf({ signal: controller.signal })), (error) => {
        assert.equal(error, reason);
        return true;
      });
      assert.ok(Date.now() - started < 1_000, "rejected promptly");
      assert.equal(sim.requests[0]?.status, undefined, "the simulator never answered");
    });

    it("rejects at once when the signal is already aborted", async () => {
      const controller = new AbortController();
      controller.abort(new Error("gone"));
      await assert.rejects(openrouter.generate(callOf({ signal: controller.signal })), /gone/);
      assert.equal(sim.requests.length, 0);
    });

    it("answers 504 when OpenRouter takes longer than the time budget", async () => {
      sim.delayMs = 2_000;
      const error = await hubErrorOf(openrouter.generate(callOf({ timeoutMs: 100 })));
      assert.deepEqual([error.status, error.code], [504, "upstream_timeout"]);
    });
  });

  describe("listModels", () => {
    const listOptions = () => ({ signal: new AbortController().signal, timeoutMs: 5_000 });

    it("reads GET /images/models, the image models only", async () => {
      assert.ok(openrouter.listModels);
      const models = await openrouter.listModels(listOptions());
      const request = onlyRequest();
      assert.deepEqual([request.method, request.path], ["GET", "/api/v1/images/models"]);
      assert.equal(request.headers.authorization, `Bearer ${sim.apiKey}`);
      const listed = (request.reply as { data: { id: string }[] }).data.map(({ id }) => id);
      assert.deepEqual(
        models,
        listed.map((id) => ({ id, shutdownDate: null })),
      );
      assert.ok(listed.includes(GEMINI));
    });

    it("maps a list without data to upstream_invalid_response", async () => {
      assert.ok(openrouter.listModels);
      sim.failNext({ status: 200, body: { models: [] } });
      const error = await hubErrorOf(openrouter.listModels(listOptions()));
      assert.deepEqual([error.status, error.code], [502, "upstream_invalid_response"]);
    });
  });
});
