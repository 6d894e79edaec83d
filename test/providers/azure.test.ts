import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { createAzureProvider } from "../../src/providers/azure.ts";
import type { ImageProvider } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import { type AzureSimulator, startAzureSimulator } from "../sim/azure.ts";

interface Reply {
  data?: { b64_json: string }[];
  usage?: { input_tokens: number; output_tokens: number; total_tokens: number };
}

function sentData(sim: AzureSimulator): { b64_json: string }[] {
  const reply = sim.requests.at(-1)?.reply;
  assert.equal(reply?.status, 200);
  return (reply.body as Reply).data ?? [];
}

async function dimensionsOf(base64: string) {
  const metadata = await sharp(Buffer.from(base64, "base64")).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height };
}

describe("Azure OpenAI provider", () => {
  let sim: AzureSimulator;
  let provider: ImageProvider;

  before(async () => {
    sim = await startAzureSimulator({
      deployments: { "hub-image-2": "gpt-image-2", "hub-image-15": "gpt-image-1.5" },
    });
    // An endpoint copied with the client's `/openai/v1/` suffix: the adapter adds the path itself.
    provider = createAzureProvider({ apiKey: sim.apiKey, baseURL: `${sim.endpoint}/openai/v1/` });
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
  });

  it("generates on the v1 URL with the deployment as model and the api-key header", async () => {
    const result = await provider.generate(
      providerCall({
        model: "hub-image-2",
        count: 2,
        size: "1280x720",
        quality: "low",
        style: "vivid",
        outputFormat: "jpeg",
        outputCompression: 80,
        moderation: "low",
        user: "user-9",
      }),
    );
    const request = sim.requests[0];
    assert.equal(request?.path, "/openai/v1/images/generations?api-version=preview");
    assert.equal(request?.headers["api-key"], sim.apiKey);
    assert.equal(request?.headers.authorization, undefined);
    assert.deepEqual(request?.json, {
      model: "hub-image-2",
      prompt: "a red fox in the snow",
      n: 2,
      size: "1280x720",
      user: "user-9",
      quality: "low",
      output_format: "jpeg",
      output_compression: 80,
    });
    assert.deepEqual(result.warnings, [
      "Azure OpenAI takes no 'style'; 'vivid' was not sent.",
      "Azure OpenAI takes no 'moderation'; 'low' was not sent (Azure applies the content filter configured on the deployment).",
    ]);
    const data = sentData(sim);
    assert.equal(result.images.length, 2);
    for (const [index, image] of result.images.entries()) {
      assert.equal(base64Of(image), data[index]?.b64_json);
      assert.equal(image.kind === "base64" && image.mimeType, "image/jpeg");
      assert.deepEqual(await dimensionsOf(base64Of(image)), {
        format: "jpeg",
        width: 1280,
        height: 720,
      });
    }
    assert.notEqual(base64Of(result.images[0]), base64Of(result.images[1]));
    assert.ok((result.usage?.outputTokens ?? 0) > 0);
  });

  it("uses the deployment URL with a dated api-version", async () => {
    const dated = createAzureProvider({
      apiKey: sim.apiKey,
      baseURL: sim.endpoint,
      apiVersion: "2025-04-01-preview",
    });
    const result = await dated.generate(providerCall({ model: "hub-image-15", size: "1536x1024" }));
    assert.equal(
      sim.requests[0]?.path,
      "/openai/deployments/hub-image-15/images/generations?api-version=2025-04-01-preview",
    );
    assert.deepEqual(await dimensionsOf(base64Of(result.images[0])), {
      format: "png",
      width: 1536,
      height: 1024,
    });
  });

  it("edits as multipart with image[] files and a mask", async () => {
    const first = await inputImageOf(64, 64, "png");
    const second = await inputImageOf(48, 80, "jpeg");
    const mask = await inputImageOf(64, 64, "png");
    const result = await provider.generate(
      providerCall({
        model: "hub-image-2",
        prompt: "put a hat on it",
        size: "1024x1024",
        quality: "high",
        images: [first, second],
        mask,
      }),
    );
    const request = sim.requests[0];
    assert.equal(request?.path, "/openai/v1/images/edits?api-version=preview");
    assert.equal(request?.headers["api-key"], sim.apiKey);
    assert.deepEqual(request?.form?.fields, {
      model: "hub-image-2",
      prompt: "put a hat on it",
      n: "1",
      size: "1024x1024",
      quality: "high",
    });
    const files = request?.form?.files ?? [];
    assert.deepEqual(
      files.map(({ field, contentType }) => ({ field, contentType })),
      [
        { field: "image[]", contentType: "image/png" },
        { field: "image[]", contentType: "image/jpeg" },
        { field: "mask", contentType: "image/png" },
      ],
    );
    assert.deepEqual(files[1]?.bytes, second.bytes);
    assert.equal(base64Of(result.images[0]), sentData(sim)[0]?.b64_json);
    assert.ok((result.usage?.inputImageTokens ?? 0) > 0);
  });

  it("refuses webp before sending anything: Azure makes PNG and JPEG only", async () => {
    const error = await hubErrorOf(
      provider.generate(providerCall({ model: "hub-image-2", outputFormat: "webp" })),
    );
    assert.equal(error.status, 400);
    assert.equal(error.param, "output_format");
    assert.equal(sim.requests.length, 0);
  });

  describe("failures", () => {
    it("maps a refused key to 502 upstream_auth_failed without Azure's message", async () => {
      const wrong = createAzureProvider({ apiKey: "f".repeat(32), baseURL: sim.endpoint });
      const error = await hubErrorOf(wrong.generate(providerCall({ model: "hub-image-2" })));
      assert.equal(sim.requests[0]?.reply?.status, 401);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_auth_failed");
      assert.doesNotMatch(error.message, /subscription key|ffff/);
    });

    it("passes on a 429 with its Retry-After", async () => {
      sim.failNext({
        status: 429,
        headers: { "retry-after": "12" },
        body: {
          error: {
            code: "429",
            message: "Requests to the Images_Generations API have exceeded the rate limit.",
          },
        },
      });
      const error = await hubErrorOf(provider.generate(providerCall({ model: "hub-image-2" })));
      assert.equal(error.status, 429);
      assert.equal(error.retryAfterSeconds, 12);
      assert.equal(error.retryable, true);
    });

    for (const [label, prompt, upstreamCode] of [
      ["the prompt filter", "draw forbidden-content", "content_filter"],
      ["the image filter", "draw filtered-image", "contentFilter"],
    ] as const) {
      it(`maps ${label} (${upstreamCode}) to 400 content_policy_violation`, async () => {
        const error = await hubErrorOf(
          provider.generate(providerCall({ model: "hub-image-2", prompt })),
        );
        const reply = sim.requests[0]?.reply;
        assert.equal(reply?.status, 400);
        assert.equal((reply.body as { error: { code: string } }).error.code, upstreamCode);
        assert.equal(error.status, 400);
        assert.equal(error.code, "content_policy_violation");
        assert.equal(error.retryable, false);
      });
    }

    it("maps a 500 to a retryable 502 and a 503 to upstream_unavailable", async () => {
      sim.failNext({ status: 500, body: { error: { code: "InternalServerError", message: "x" } } });
      const failed = await hubErrorOf(provider.generate(providerCall({ model: "hub-image-2" })));
      assert.equal(failed.status, 502);
      assert.equal(failed.code, "upstream_error");
      assert.equal(failed.retryable, true);
      sim.failNext({
        status: 503,
        body: { error: { code: "ServiceUnavailable", message: "busy" } },
      });
      const busy = await hubErrorOf(provider.generate(providerCall({ model: "hub-image-2" })));
      assert.equal(busy.code, "upstream_unavailable");
    });

    it("maps an unknown deployment to upstream_model_not_found", async () => {
      const error = await hubErrorOf(
        provider.generate(providerCall({ model: "no-such-deployment" })),
      );
      assert.equal(sim.requests[0]?.reply?.status, 404);
      assert.equal(error.code, "upstream_model_not_found");
    });

    it("rejects promptly with the signal's reason when the call is aborted", async () => {
      sim.delayMs = 5_000;
      const controller = new AbortController();
      const reason = new Error("client went away");
      const pending = provider.generate(
        providerCall({ model: "hub-image-2", signal: controller.signal }),
      );
      while (sim.requests.length === 0) await sleep(5);
      const started = Date.now();
      controller.abort(reason);
      await assert.rejects(pending, reason);
      assert.ok(Date.now() - started < 500);
    });

    it("sends nothing when the signal is already aborted", async () => {
      const reason = new Error("already gone");
      await assert.rejects(
        provider.generate(
          providerCall({ model: "hub-image-2", signal: AbortSignal.abort(reason) }),
        ),
        reason,
      );
      assert.equal(sim.requests.length, 0);
    });
  });
});

describe("Azure simulator", () => {
  let sim: AzureSimulator;
  before(async () => {
    sim = await startAzureSimulator();
  });
  after(() => sim.close());

  async function post(path: string, body: unknown, key = sim.apiKey) {
    const response = await fetch(`${sim.endpoint}${path}`, {
      method: "POST",
      headers: { "api-key": key, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return {
      status: response.status,
      body: (await response.json()) as { error?: { code: string } },
    };
  }

  it("holds requests to Azure's key, api-version, deployment and parameters", async () => {
    const ok = { model: "hub-image", prompt: "x", size: "1024x1024" };
    assert.equal((await post("/openai/v1/images/generations?api-version=preview", ok)).status, 200);
    assert.equal(
      (await post("/openai/v1/images/generations?api-version=preview", ok, "nope")).status,
      401,
    );
    assert.equal((await post("/openai/v1/images/generations", ok)).status, 400);
    assert.equal(
      (await post("/openai/deployments/hub-image/images/generations?api-version=preview", ok))
        .status,
      400,
    );
    const missing = await post("/openai/v1/images/generations?api-version=preview", {
      ...ok,
      model: "x",
    });
    assert.equal(missing.body.error?.code, "DeploymentNotFound");
    const unknown = await post("/openai/v1/images/generations?api-version=preview", {
      ...ok,
      response_format: "b64_json",
    });
    assert.equal(unknown.body.error?.code, "unknown_parameter");
    const webp = await post("/openai/v1/images/generations?api-version=preview", {
      ...ok,
      output_format: "webp",
    });
    assert.equal(webp.status, 400);
  });
});
