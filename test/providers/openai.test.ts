import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { createOpenAIProvider } from "../../src/providers/openai.ts";
import type { ImageProvider } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import {
  OPENAI_SHUT_DOWN_MODELS,
  type OpenAISimulator,
  startOpenAISimulator,
} from "../sim/openai.ts";

interface SimulatorReply {
  data?: Record<string, string>[];
  usage?: {
    input_tokens: number;
    output_tokens: number;
    total_tokens: number;
    input_tokens_details: { image_tokens: number; text_tokens: number };
  };
  error?: { code: string | null };
}

/** What the simulator answered to the last request. */
function replyOf(sim: OpenAISimulator, status = 200): SimulatorReply {
  const reply = sim.requests.at(-1)?.reply;
  assert.equal(reply?.status, status);
  return reply.body as SimulatorReply;
}

/** The `data` the simulator sent for the last request. */
function sentData(sim: OpenAISimulator): Record<string, string>[] {
  return replyOf(sim).data ?? [];
}

describe("OpenAI provider", () => {
  let sim: OpenAISimulator;
  let provider: ImageProvider;

  before(async () => {
    sim = await startOpenAISimulator();
    provider = createOpenAIProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
    sim.replyWithUrl = false;
  });

  describe("generations", () => {
    it("sends dall-e-2 only what it takes, with response_format b64_json", async () => {
      const result = await provider.generate(
        providerCall({
          model: "dall-e-2",
          count: 2,
          size: "512x512",
          quality: "hd",
          style: "vivid",
          user: "user-42",
        }),
      );

      assert.equal(sim.requests.length, 1);
      const request = sim.requests[0];
      assert.equal(request?.method, "POST");
      assert.equal(request?.path, "/v1/images/generations");
      assert.equal(request?.headers.authorization, `Bearer ${sim.apiKey}`);
      assert.match(String(request?.headers["content-type"]), /^application\/json/);
      assert.deepEqual(request?.json, {
        model: "dall-e-2",
        prompt: "a red fox in the snow",
        n: 2,
        size: "512x512",
        response_format: "b64_json",
        user: "user-42",
      });

      const data = sentData(sim);
      assert.equal(result.images.length, 2);
      for (const [index, image] of result.images.entries()) {
        assert.equal(base64Of(image), data[index]?.b64_json);
        assert.equal(image.kind === "base64" && image.mimeType, "image/png");
        assert.equal(image.revisedPrompt, undefined);
        const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
        assert.equal(metadata.format, "png");
        assert.equal(metadata.width, 512);
        assert.equal(metadata.height, 512);
      }
      assert.notEqual(base64Of(result.images[0]), base64Of(result.images[1]));
      assert.equal(result.usage, undefined);
      assert.deepEqual(result.warnings, [
        "dall-e-2 takes no 'quality'; 'hd' was not sent.",
        "dall-e-2 takes no 'style'; 'vivid' was not sent.",
      ]);
    });

    it("sends dall-e-3 its quality and style and returns the revised prompt", async () => {
      const result = await provider.generate(
        providerCall({
          model: "dall-e-3",
          size: "1792x1024",
          quality: "hd",
          style: "natural",
          outputFormat: "webp",
        }),
      );

      assert.deepEqual(sim.requests[0]?.json, {
        model: "dall-e-3",
        prompt: "a red fox in the snow",
        n: 1,
        size: "1792x1024",
        response_format: "b64_json",
        quality: "hd",
        style: "natural",
      });
      const [image] = result.images;
      assert.equal(base64Of(image), sentData(sim)[0]?.b64_json);
      assert.equal(image?.revisedPrompt, sentData(sim)[0]?.revised_prompt);
      assert.equal(image?.revisedPrompt, "A detailed rendering of: a red fox in the snow");
      assert.equal(image?.kind === "base64" && image.mimeType, "image/png");
      const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
      assert.equal(metadata.width, 1792);
      assert.equal(metadata.height, 1024);
      assert.deepEqual(result.warnings, [
        "dall-e-3 takes no 'output_format'; 'webp' was not sent.",
      ]);
    });

    it("never sends response_format or style to a GPT image model, and maps its usage", async () => {
      const result = await provider.generate(
        providerCall({
          model: "gpt-image-1",
          count: 2,
          size: "1536x1024",
          quality: "high",
          style: "vivid",
          background: "transparent",
          outputFormat: "webp",
          outputCompression: 80,
          moderation: "low",
          user: "user-7",
        }),
      );

      const json = sim.requests[0]?.json;
      assert.deepEqual(json, {
        model: "gpt-image-1",
        prompt: "a red fox in the snow",
        n: 2,
        size: "1536x1024",
        user: "user-7",
        quality: "high",
        background: "transparent",
        output_format: "webp",
        output_compression: 80,
        moderation: "low",
      });
      assert.equal("response_format" in (json ?? {}), false);
      assert.equal("style" in (json ?? {}), false);
      assert.deepEqual(result.warnings, ["gpt-image-1 takes no 'style'; 'vivid' was not sent."]);

      const data = sentData(sim);
      for (const [index, image] of result.images.entries()) {
        assert.equal(base64Of(image), data[index]?.b64_json);
        assert.equal(image.kind === "base64" && image.mimeType, "image/webp");
        assert.equal(image.revisedPrompt, undefined);
        const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
        assert.equal(metadata.format, "webp");
        assert.equal(metadata.width, 1536);
        assert.equal(metadata.height, 1024);
        assert.equal(metadata.hasAlpha, true);
      }

      const usage = replyOf(sim).usage;
      assert.ok(usage);
      assert.deepEqual(result.usage, {
        inputTokens: usage.input_tokens,
        outputTokens: usage.output_tokens,
        totalTokens: usage.total_tokens,
        inputImageTokens: 0,
        inputTextTokens: usage.input_tokens_details.text_tokens,
      });
      assert.ok(usage.output_tokens > 0);
    });

    it("takes the mime type from the output_format OpenAI answers", async () => {
      const result = await provider.generate(
        providerCall({ model: "gpt-image-2", size: "1280x720", outputFormat: "jpeg" }),
      );
      const [image] = result.images;
      assert.equal(image?.kind === "base64" && image.mimeType, "image/jpeg");
      const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
      assert.equal(metadata.format, "jpeg");
      assert.equal(metadata.width, 1280);
      assert.equal(metadata.height, 720);
      assert.deepEqual(sim.requests[0]?.json, {
        model: "gpt-image-2",
        prompt: "a red fox in the snow",
        n: 1,
        size: "1280x720",
        output_format: "jpeg",
      });
    });

    it("sends no size when the call leaves it to the model", async () => {
      const result = await provider.generate(providerCall({ model: "gpt-image-1" }));
      assert.deepEqual(sim.requests[0]?.json, {
        model: "gpt-image-1",
        prompt: "a red fox in the snow",
        n: 1,
      });
      assert.equal(result.images[0]?.kind === "base64" && result.images[0].mimeType, "image/png");
    });

    it("strips a trailing slash from the base URL", async () => {
      const slashed = createOpenAIProvider({ apiKey: sim.apiKey, baseURL: `${sim.baseURL}/` });
      await slashed.generate(providerCall());
      assert.equal(sim.requests[0]?.path, "/v1/images/generations");
    });

    it("returns an upstream URL as kind url", async () => {
      sim.replyWithUrl = true;
      const result = await provider.generate(providerCall({ model: "dall-e-3" }));
      const [image] = result.images;
      assert.equal(image?.kind, "url");
      assert.equal(image.url, sentData(sim)[0]?.url);
      assert.equal(image.revisedPrompt, "A detailed rendering of: a red fox in the snow");
      const response = await fetch(image.url);
      assert.equal(response.headers.get("content-type"), "image/png");
      const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.equal(metadata.width, 1024);
    });
  });

  describe("edits", () => {
    it("sends a GPT image edit as multipart with image[] files, a mask and text fields", async () => {
      const first = await inputImageOf(64, 64, "png");
      const second = await inputImageOf(80, 48, "jpeg");
      const mask = await inputImageOf(64, 64, "png");
      const result = await provider.generate(
        providerCall({
          model: "gpt-image-1",
          prompt: "put a hat on it",
          count: 2,
          size: "1024x1024",
          quality: "low",
          outputFormat: "png",
          moderation: "low",
          images: [first, second],
          mask,
        }),
      );

      const request = sim.requests[0];
      assert.equal(request?.path, "/v1/images/edits");
      assert.equal(request?.headers.authorization, `Bearer ${sim.apiKey}`);
      assert.match(String(request?.headers["content-type"]), /^multipart\/form-data; boundary=/);
      assert.deepEqual(request?.form?.fields, {
        model: "gpt-image-1",
        prompt: "put a hat on it",
        n: "2",
        size: "1024x1024",
        quality: "low",
        output_format: "png",
      });
      const files = request?.form?.files ?? [];
      assert.deepEqual(
        files.map(({ field, filename, contentType }) => ({ field, filename, contentType })),
        [
          { field: "image[]", filename: "image-0.png", contentType: "image/png" },
          { field: "image[]", filename: "image-1.jpg", contentType: "image/jpeg" },
          { field: "mask", filename: "mask.png", contentType: "image/png" },
        ],
      );
      assert.deepEqual(files[0]?.bytes, first.bytes);
      assert.deepEqual(files[1]?.bytes, second.bytes);
      assert.deepEqual(files[2]?.bytes, mask.bytes);

      assert.deepEqual(result.warnings, [
        "gpt-image-1 edits take no 'moderation'; 'low' was not sent.",
      ]);
      assert.equal(result.images.length, 2);
      assert.equal(base64Of(result.images[1]), sentData(sim)[1]?.b64_json);
      assert.ok((result.usage?.inputImageTokens ?? 0) > 0);
      assert.equal(
        result.usage?.inputTokens,
        (result.usage?.inputImageTokens ?? 0) + (result.usage?.inputTextTokens ?? 0),
      );
    });

    it("sends a dall-e-2 edit as a single image field with response_format", async () => {
      const image = await inputImageOf(256, 256, "png");
      const result = await provider.generate(
        providerCall({ model: "dall-e-2", prompt: "add a moon", size: "256x256", images: [image] }),
      );
      const form = sim.requests[0]?.form;
      assert.deepEqual(form?.fields, {
        model: "dall-e-2",
        prompt: "add a moon",
        n: "1",
        size: "256x256",
        response_format: "b64_json",
      });
      assert.deepEqual(
        form?.files.map(({ field, filename, contentType }) => ({ field, filename, contentType })),
        [{ field: "image", filename: "image-0.png", contentType: "image/png" }],
      );
      assert.deepEqual(form?.files[0]?.bytes, image.bytes);
      const metadata = await sharp(Buffer.from(base64Of(result.images[0]), "base64")).metadata();
      assert.equal(metadata.width, 256);
    });

    it("refuses several images for dall-e-2 before sending anything", async () => {
      const image = await inputImageOf(64, 64, "png");
      const error = await hubErrorOf(
        provider.generate(providerCall({ model: "dall-e-2", images: [image, image] })),
      );
      assert.equal(error.status, 400);
      assert.equal(error.param, "image");
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("upstream failures", () => {
    it("maps a refused key to 502 upstream_auth_failed without the upstream message", async () => {
      const wrong = createOpenAIProvider({ apiKey: "sk-wrong-key-123456", baseURL: sim.baseURL });
      const error = await hubErrorOf(wrong.generate(providerCall()));
      assert.equal(sim.requests[0]?.reply?.status, 401);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_auth_failed");
      assert.doesNotMatch(error.message, /Incorrect API key|sk-|3456/);
    });

    it("passes on a 429 with its Retry-After", async () => {
      sim.failNext({
        status: 429,
        headers: { "retry-after": "7" },
        body: {
          error: {
            message: "Rate limit reached for images per minute.",
            type: "requests",
            param: null,
            code: "rate_limit_exceeded",
          },
        },
      });
      const error = await hubErrorOf(provider.generate(providerCall()));
      assert.equal(error.status, 429);
      assert.equal(error.retryAfterSeconds, 7);
      assert.equal(error.retryable, true);
    });

    it("maps a 500 to a retryable 502", async () => {
      sim.failNext({
        status: 500,
        body: { error: { message: "The server had an error", type: "server_error" } },
      });
      const error = await hubErrorOf(provider.generate(providerCall()));
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_error");
      assert.equal(error.retryable, true);
    });

    for (const model of ["dall-e-3", "gpt-image-1"]) {
      it(`maps ${model}'s content-policy refusal to 400 content_policy_violation`, async () => {
        const error = await hubErrorOf(
          provider.generate(providerCall({ model, prompt: "draw forbidden-content please" })),
        );
        const upstreamCode =
          model === "dall-e-3" ? "content_policy_violation" : "moderation_blocked";
        assert.equal(replyOf(sim, 400).error?.code, upstreamCode);
        assert.equal(error.status, 400);
        assert.equal(error.code, "content_policy_violation");
        assert.equal(error.retryable, false);
      });
    }

    it("maps a reply that is not JSON to 502 upstream_invalid_response", async () => {
      sim.failNext({ status: 200, body: "<html>gateway says hi</html>" });
      const error = await hubErrorOf(provider.generate(providerCall()));
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_invalid_response");
    });

    for (const [label, body] of [
      ["an empty data array", { created: 1, data: [] }],
      ["no data", { created: 1 }],
      ["an image without b64_json or url", { created: 1, data: [{ revised_prompt: "x" }] }],
    ] as const) {
      it(`maps ${label} to 502 upstream_invalid_response`, async () => {
        sim.failNext({ status: 200, body });
        const error = await hubErrorOf(provider.generate(providerCall()));
        assert.equal(error.status, 502);
        assert.equal(error.code, "upstream_invalid_response");
      });
    }

    it("maps an unknown model to 502 upstream_model_not_found", async () => {
      const error = await hubErrorOf(provider.generate(providerCall({ model: "gpt-image-9" })));
      assert.equal(sim.requests[0]?.reply?.status, 404);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_model_not_found");
    });

    it("times out with 504 when OpenAI answers too late", async () => {
      sim.delayMs = 2_000;
      const hasty = createOpenAIProvider({
        apiKey: sim.apiKey,
        baseURL: sim.baseURL,
        timeoutMs: 100,
      });
      const started = Date.now();
      const error = await hubErrorOf(hasty.generate(providerCall()));
      assert.equal(error.status, 504);
      assert.equal(error.code, "upstream_timeout");
      assert.equal(error.retryable, true);
      assert.ok(Date.now() - started < 1_500);
    });

    it("rejects promptly with the signal's reason when the call is aborted", async () => {
      sim.delayMs = 5_000;
      const controller = new AbortController();
      const reason = new Error("client went away");
      const pending = provider.generate(providerCall({ signal: controller.signal }));
      // Abort once OpenAI has the request and is working on it.
      while (sim.requests.length === 0) await sleep(5);
      const started = Date.now();
      controller.abort(reason);
      await assert.rejects(pending, reason);
      assert.ok(Date.now() - started < 500);
    });

    it("sends nothing when the signal is already aborted", async () => {
      const reason = new Error("already gone");
      await assert.rejects(
        provider.generate(providerCall({ signal: AbortSignal.abort(reason) })),
        reason,
      );
      assert.equal(sim.requests.length, 0);
    });
  });
});

describe("OpenAI provider: model list and shut-down models", () => {
  let sim: OpenAISimulator;
  let provider: ImageProvider;
  const listOptions = () => ({ signal: new AbortController().signal, timeoutMs: 5_000 });

  before(async () => {
    sim = await startOpenAISimulator({
      shutDown: OPENAI_SHUT_DOWN_MODELS,
      shutdownDates: { "gpt-image-2-2026-04-21": "2027-04-21" },
    });
    provider = createOpenAIProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.failModelList = undefined;
  });

  function listModels() {
    assert.ok(provider.listModels, "the OpenAI provider lists models");
    return provider.listModels(listOptions());
  }

  it("lists what OpenAI lists, with the shutdown dates it announces", async () => {
    const models = await listModels();

    assert.equal(sim.requests.length, 1);
    const request = sim.requests[0];
    assert.equal(request?.method, "GET");
    assert.equal(request?.path, "/v1/models");
    assert.equal(request?.headers.authorization, `Bearer ${sim.apiKey}`);
    assert.equal(request?.headers.accept, "application/json");

    const listed = (replyOf(sim).data ?? []) as unknown as { id: string }[];
    assert.deepEqual(
      models.map((model) => model.id),
      listed.map((entry) => entry.id),
    );
    const byId = new Map(models.map((model) => [model.id, model.shutdownDate]));
    assert.equal(byId.get("gpt-image-2-2026-04-21"), "2027-04-21");
    assert.equal(byId.get("gpt-image-2"), null);
    // Not only image models: the hub must not take the list for a list of image models.
    assert.equal(byId.get("gpt-5"), null);
    assert.equal(byId.get("text-embedding-3-small"), null);
    for (const gone of OPENAI_SHUT_DOWN_MODELS) assert.equal(byId.has(gone), false, gone);
  });

  it("reads shutdown_date as a date string or Unix seconds, and nothing else", async () => {
    sim.failNext({
      status: 200,
      body: {
        object: "list",
        data: [
          { id: "as-seconds", object: "model", created: 1, shutdown_date: 1792713600 },
          { id: "as-timestamp", object: "model", shutdown_date: "2026-12-01T00:00:00Z" },
          { id: "as-words", object: "model", shutdown_date: "next spring" },
          { id: "as-null", object: "model", shutdown_date: null },
          { id: "as-object", object: "model", shutdown_date: { day: 1 } },
          { id: 42, object: "model" },
          { object: "model" },
          "gpt-nothing",
        ],
      },
    });
    assert.deepEqual(await listModels(), [
      { id: "as-seconds", shutdownDate: "2026-10-23" },
      { id: "as-timestamp", shutdownDate: "2026-12-01" },
      { id: "as-words", shutdownDate: null },
      { id: "as-null", shutdownDate: null },
      { id: "as-object", shutdownDate: null },
    ]);
  });

  it("maps a model list without data to 502 upstream_invalid_response", async () => {
    sim.failNext({ status: 200, body: { object: "list" } });
    const error = await hubErrorOf(listModels());
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_invalid_response");
  });

  it("passes a 503 of the model list on as upstream_unavailable", async () => {
    sim.failModelList = 503;
    const error = await hubErrorOf(listModels());
    assert.equal(replyOf(sim, 503).error?.code, null);
    assert.equal(error.status, 503);
    assert.equal(error.code, "upstream_unavailable");
    assert.equal(error.upstreamStatus, 503);
  });

  it("maps a refused key to upstream_auth_failed with the upstream's 401", async () => {
    const wrong = createOpenAIProvider({ apiKey: "sk-wrong-0123456789", baseURL: sim.baseURL });
    assert.ok(wrong.listModels);
    const error = await hubErrorOf(wrong.listModels(listOptions()));
    assert.equal(error.code, "upstream_auth_failed");
    assert.equal(error.upstreamStatus, 401);
  });

  it("rejects with the signal's reason and sends nothing when already aborted", async () => {
    const reason = new Error("gone");
    assert.ok(provider.listModels);
    await assert.rejects(
      provider.listModels({ signal: AbortSignal.abort(reason), timeoutMs: 5_000 }),
      reason,
    );
    assert.equal(sim.requests.length, 0);
  });

  for (const model of ["dall-e-3", "gpt-image-1", "gpt-image-1.5"]) {
    it(`maps a generation of shut-down ${model} to upstream_model_not_found`, async () => {
      const error = await hubErrorOf(provider.generate(providerCall({ model })));
      assert.deepEqual(replyOf(sim, 404), {
        error: {
          message: `The model \`${model}\` does not exist or you do not have access to it.`,
          type: "invalid_request_error",
          param: null,
          code: "model_not_found",
        },
      });
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_model_not_found");
    });
  }

  it("maps an edit with shut-down gpt-image-1-mini to upstream_model_not_found", async () => {
    const error = await hubErrorOf(
      provider.generate(
        providerCall({ model: "gpt-image-1-mini", images: [await inputImageOf(64, 64)] }),
      ),
    );
    assert.equal(sim.requests[0]?.path, "/v1/images/edits");
    assert.equal(replyOf(sim, 404).error?.code, "model_not_found");
    assert.equal(error.code, "upstream_model_not_found");
  });

  it("still serves gpt-image-2 and its successors", async () => {
    for (const model of ["gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.6-sunburst"]) {
      const result = await provider.generate(providerCall({ model, size: "1024x640" }));
      assert.equal(result.images.length, 1, model);
    }
  });
});

describe("OpenAI simulator", () => {
  let sim: OpenAISimulator;
  before(async () => {
    sim = await startOpenAISimulator();
  });
  after(() => sim.close());

  async function post(parameters: unknown, key = sim.apiKey) {
    const response = await fetch(`${sim.baseURL}/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(parameters),
    });
    return { status: response.status, body: (await response.json()) as SimulatorReply };
  }

  it("answers 400 unknown_parameter to response_format for a GPT image model", async () => {
    const reply = await post({ model: "gpt-image-1", prompt: "x", response_format: "b64_json" });
    assert.equal(reply.status, 400);
    assert.deepEqual(reply.body, {
      error: {
        message: "Unknown parameter: 'response_format'.",
        type: "invalid_request_error",
        param: "response_format",
        code: "unknown_parameter",
      },
    });
  });

  it("validates like OpenAI: key, model, n, size", async () => {
    assert.equal((await post({ model: "dall-e-2", prompt: "x" }, "sk-nope")).status, 401);
    const unknown = await post({ model: "dall-e-9", prompt: "x" });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error?.code, "model_not_found");
    assert.equal((await post({ model: "dall-e-3", prompt: "x", n: 2 })).status, 400);
    assert.equal((await post({ model: "dall-e-2", prompt: "x", size: "1792x1024" })).status, 400);
    assert.equal(
      (await post({ model: "gpt-image-2", prompt: "x", size: "1000x1000" })).status,
      400,
    );
    assert.equal((await post({ model: "dall-e-2", prompt: "x", style: "vivid" })).status, 400);
  });

  it("holds gpt-image-2 to its pixel bounds and takes xhigh only from 2.5 on", async () => {
    const status = async (parameters: Record<string, unknown>) =>
      (await post({ prompt: "x", ...parameters })).status;
    // 1024x576 has 589,824 pixels, fewer than the 655,360 gpt-image-2 makes at least.
    assert.equal(await status({ model: "gpt-image-2", size: "1024x576" }), 400);
    assert.equal(await status({ model: "gpt-image-2", size: "1024x640" }), 200);
    assert.equal(await status({ model: "gpt-image-2", size: "3840x2176" }), 400);
    assert.equal(await status({ model: "gpt-image-2", size: "1024x640", quality: "xhigh" }), 400);
    assert.equal(
      await status({ model: "gpt-image-2.5-flare", size: "1024x640", quality: "xhigh" }),
      200,
    );
  });

  it("lists its models, and answers a set failure instead", async () => {
    const listed = await fetch(`${sim.baseURL}/models`, {
      headers: { authorization: `Bearer ${sim.apiKey}` },
    });
    const body = (await listed.json()) as { object: string; data: Record<string, unknown>[] };
    assert.equal(body.object, "list");
    assert.ok(body.data.some((entry) => entry.id === "dall-e-2"));
    for (const entry of body.data) {
      assert.deepEqual(Object.keys(entry).sort(), ["created", "id", "object", "owned_by"]);
    }
    const refused = await fetch(`${sim.baseURL}/models`, {
      headers: { authorization: "Bearer sk-nope" },
    });
    assert.equal(refused.status, 401);
    sim.failModelList = 503;
    try {
      const failed = await fetch(`${sim.baseURL}/models`, {
        headers: { authorization: `Bearer ${sim.apiKey}` },
      });
      assert.equal(failed.status, 503);
    } finally {
      sim.failModelList = undefined;
    }
  });

  it("answers DALL·E with URLs when response_format is not given", async () => {
    const reply = await post({ model: "dall-e-2", prompt: "x", size: "256x256" });
    assert.equal(reply.status, 200);
    const [image] = reply.body.data ?? [];
    const response = await fetch(String(image?.url));
    assert.equal(response.status, 200);
    const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.equal(metadata.width, 256);
  });
});
