import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import type { ImageProvider, ProviderImage } from "../../src/providers/types.ts";
import { createXaiProvider, XAI_1K_SIZES } from "../../src/providers/xai.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import { startXaiSimulator, type XaiSimulator } from "../sim/xai.ts";

interface SentImage {
  b64_json?: string;
  url?: string;
}

/** The images the simulator sent for the last image request. */
function sentData(sim: XaiSimulator): SentImage[] {
  const reply = sim.requests.at(-1)?.reply;
  assert.equal(reply?.status, 200);
  return (reply.body as { data: SentImage[] }).data;
}

async function measure(image: ProviderImage | undefined) {
  const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height };
}

const call = (overrides: Parameters<typeof providerCall>[0] = {}) =>
  providerCall({ model: "grok-imagine-image", ...overrides });

describe("xAI provider", () => {
  let sim: XaiSimulator;
  let provider: ImageProvider;

  before(async () => {
    sim = await startXaiSimulator();
    provider = createXaiProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
    sim.replyWithUrl = false;
  });

  describe("generations", () => {
    it("sends the size as aspect_ratio at 1k and strips the data: prefix of b64_json", async () => {
      const result = await provider.generate(call({ count: 2, size: "1408x768", user: "u-1" }));

      const request = sim.requests[0];
      assert.equal(request?.path, "/v1/images/generations");
      assert.equal(request?.headers.authorization, `Bearer ${sim.apiKey}`);
      assert.deepEqual(request?.json, {
        model: "grok-imagine-image",
        prompt: "a red fox in the snow",
        n: 2,
        response_format: "b64_json",
        aspect_ratio: "16:9",
        resolution: "1k",
        user: "u-1",
      });
      const sent = sentData(sim);
      assert.match(String(sent[0]?.b64_json), /^data:image\/jpeg;base64,/);
      assert.equal(result.images.length, 2);
      for (const [index, image] of result.images.entries()) {
        assert.equal(image.kind === "base64" && image.mimeType, "image/jpeg");
        // The same base64 text, without its prefix: nothing was decoded and encoded again.
        assert.equal(`data:image/jpeg;base64,${base64Of(image)}`, sent[index]?.b64_json);
        assert.deepEqual(await measure(image), { format: "jpeg", width: 1408, height: 768 });
      }
      assert.notEqual(base64Of(result.images[0]), base64Of(result.images[1]));
      assert.deepEqual(result.warnings, []);
    });

    it("makes every listed size, and leaves the ratio to xAI without a size", async () => {
      for (const [ratio, size] of Object.entries(XAI_1K_SIZES)) {
        const result = await provider.generate(call({ size: size as `${number}x${number}` }));
        assert.equal(sim.requests.at(-1)?.json?.aspect_ratio, ratio);
        const [width, height] = size.split("x").map(Number);
        assert.deepEqual(await measure(result.images[0]), { format: "jpeg", width, height });
      }
      sim.requests.length = 0;
      await provider.generate(call());
      assert.equal("aspect_ratio" in (sim.requests[0]?.json ?? {}), false);
      assert.equal("resolution" in (sim.requests[0]?.json ?? {}), false);
    });

    it("makes n images in one call", async () => {
      const result = await provider.generate(call({ count: 10, size: "1024x1024" }));
      assert.equal(sim.requests.length, 1);
      assert.equal(sim.requests[0]?.json?.n, 10);
      assert.equal(result.images.length, 10);
      assert.equal(new Set(result.images.map((image) => base64Of(image))).size > 1, true);
    });

    it("returns temporary URLs as kind url, pointing at real images", async () => {
      sim.replyWithUrl = true;
      const result = await provider.generate(call({ size: "896x1280" }));
      const [image] = result.images;
      assert.equal(image?.kind, "url");
      assert.equal(image.url, sentData(sim)[0]?.url);
      const response = await fetch(image.url);
      const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.deepEqual([metadata.format, metadata.width, metadata.height], ["jpeg", 896, 1280]);
    });

    it("sends quality only to Grok Imagine 2, and warns about hints no model takes", async () => {
      const plain = await provider.generate(
        call({ quality: "high", style: "vivid", outputFormat: "png", background: "transparent" }),
      );
      assert.equal("quality" in (sim.requests[0]?.json ?? {}), false);
      assert.deepEqual(plain.warnings, [
        "grok-imagine-image takes no 'quality'; 'high' was not sent.",
        "grok-imagine-image takes no 'style'; 'vivid' was not sent.",
        "grok-imagine-image takes no 'background'; 'transparent' was not sent.",
        "grok-imagine-image makes JPEG images: output_format png was not applied.",
      ]);
      const second = await provider.generate(
        call({ model: "grok-imagine-image-2.0", quality: "low" }),
      );
      assert.equal(sim.requests[1]?.json?.quality, "low");
      assert.deepEqual(second.warnings, []);
    });

    it("refuses a size xAI does not make, and a mask, before sending anything", async () => {
      const size = await hubErrorOf(provider.generate(call({ size: "1536x1024" })));
      assert.equal(size.status, 400);
      assert.equal(size.param, "size");
      const mask = await inputImageOf(64, 64);
      const masked = await hubErrorOf(provider.generate(call({ images: [mask], mask })));
      assert.equal(masked.param, "mask");
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("edits", () => {
    it("edits one image as a data URL, keeping its aspect ratio", async () => {
      const input = await inputImageOf(160, 90, "png");
      const result = await provider.generate(
        call({ prompt: "add a hat", images: [input], size: "1408x768" }),
      );

      const request = sim.requests[0];
      assert.equal(request?.path, "/v1/images/edits");
      assert.match(String(request?.headers["content-type"]), /^application\/json/);
      assert.deepEqual(request?.json, {
        model: "grok-imagine-image",
        prompt: "add a hat",
        n: 1,
        response_format: "b64_json",
        resolution: "1k",
        image: { url: `data:image/png;base64,${input.bytes.toString("base64")}` },
      });
      assert.deepEqual(await measure(result.images[0]), {
        format: "jpeg",
        width: 1408,
        height: 768,
      });
    });

    it("sends several images as images[] with the asked aspect_ratio", async () => {
      const first = await inputImageOf(64, 64, "jpeg");
      const second = await inputImageOf(48, 80, "webp");
      const result = await provider.generate(
        call({ images: [first, second], size: "864x1296", count: 2 }),
      );
      const json = sim.requests[0]?.json;
      assert.deepEqual(json?.images, [
        { url: `data:image/jpeg;base64,${first.bytes.toString("base64")}` },
        { url: `data:image/webp;base64,${second.bytes.toString("base64")}` },
      ]);
      assert.equal(json?.aspect_ratio, "2:3");
      assert.equal(result.images.length, 2);
      assert.deepEqual(await measure(result.images[1]), {
        format: "jpeg",
        width: 864,
        height: 1296,
      });
    });

    it("refuses a size of another ratio for a single-image edit", async () => {
      const square = await inputImageOf(64, 64);
      const error = await hubErrorOf(
        provider.generate(call({ images: [square], size: "1408x768" })),
      );
      assert.equal(error.status, 400);
      assert.equal(error.param, "size");
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("upstream failures", () => {
    it("maps xAI's 400 for a wrong key to upstream_auth_failed", async () => {
      const wrong = createXaiProvider({ apiKey: "xai-wrong-key-987654", baseURL: sim.baseURL });
      const error = await hubErrorOf(wrong.generate(call()));
      const reply = sim.requests[0]?.reply;
      assert.equal(reply?.status, 400);
      assert.match(
        String((reply?.body as { error?: string } | undefined)?.error),
        /Incorrect API key/,
      );
      // xAI's message says what is wrong: no key check is needed.
      assert.equal(sim.requests.length, 1);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_auth_failed");
      assert.equal(error.upstreamStatus, 401);
      assert.doesNotMatch(error.message, /Incorrect|xai-|7654/);
    });

    it("reads a percent-encoded key message as xAI has sent it", async () => {
      sim.failNext({
        status: 400,
        body: {
          code: "Client specified an invalid argument",
          error:
            "Incorrect%20API%20key%20provided:%20ba***na.%20You%20can%20obtain%20an%20API%20key",
        },
      });
      assert.equal((await hubErrorOf(provider.generate(call()))).code, "upstream_auth_failed");
    });

    it("keeps a 400 about the request a client error, with xAI's message", async () => {
      // The adapter never sends what xAI refuses, so the refusal is scripted as xAI words it.
      sim.failNext({
        status: 400,
        body: {
          code: "Client specified an invalid argument",
          error: "Argument not supported: size",
        },
      });
      const rejected = await hubErrorOf(provider.generate(call()));
      assert.equal(rejected.status, 400);
      // xAI's `code` is a sentence (a gRPC status), not a code a client can match on.
      assert.equal(rejected.code, "upstream_rejected");
      assert.match(rejected.message, /Argument not supported: size/);
    });

    for (const [label, key, expected] of [
      ["a wrong key", "xai-wrong-key-1234567", "upstream_auth_failed"],
      ["a good key", undefined, "upstream_rejected"],
    ] as const) {
      it(`checks the key after an unreadable 400 (${label})`, async () => {
        const client = createXaiProvider({ apiKey: key ?? sim.apiKey, baseURL: sim.baseURL });
        sim.failNext({ status: 400, body: "<html>Bad Request</html>" });
        const error = await hubErrorOf(client.generate(call()));
        assert.equal(sim.requests[1]?.path, "/v1/api-key");
        assert.equal(sim.requests[1]?.reply?.status, key ? 400 : 200);
        assert.equal(error.code, expected);
      });
    }

    it("maps a moderated prompt (200, no image) to content_policy_violation", async () => {
      const error = await hubErrorOf(
        provider.generate(call({ prompt: "forbidden-content", count: 2 })),
      );
      const sent = sentData(sim);
      assert.deepEqual(
        sent.map((item) => (item as { respect_moderation?: boolean }).respect_moderation),
        [false, false],
      );
      assert.equal(error.status, 400);
      assert.equal(error.code, "content_policy_violation");
    });

    it("drops moderated images from a partial reply and says so", async () => {
      const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#fff" } })
        .jpeg()
        .toBuffer();
      sim.failNext({
        status: 200,
        body: {
          data: [
            { url: "", respect_moderation: false },
            {
              b64_json: jpeg.toString("base64"),
              mime_type: "image/jpeg",
              respect_moderation: true,
            },
          ],
        },
      });
      const result = await provider.generate(call({ count: 2 }));
      assert.equal(result.images.length, 1);
      assert.equal(base64Of(result.images[0]), jpeg.toString("base64"));
      assert.deepEqual(result.warnings, ["xAI's moderation withheld 1 of 2 images."]);
    });

    it("maps a block_reason to content_policy_violation", async () => {
      sim.failNext({ status: 200, body: { block_reason: "input_moderation", data: [] } });
      const error = await hubErrorOf(provider.generate(call()));
      assert.equal(error.code, "content_policy_violation");
    });

    it("passes a 429 on with its Retry-After, and maps a 500 and a 503", async () => {
      sim.failNext({
        status: 429,
        headers: { "retry-after": "9" },
        body: { code: "x", error: "Too many requests" },
      });
      const limited = await hubErrorOf(provider.generate(call()));
      assert.equal(limited.status, 429);
      assert.equal(limited.retryAfterSeconds, 9);
      sim.failNext({ status: 500, body: { code: "Internal error", error: "boom" } });
      const failed = await hubErrorOf(provider.generate(call()));
      assert.deepEqual(
        [failed.status, failed.code, failed.retryable],
        [502, "upstream_error", true],
      );
      sim.failNext({ status: 503, body: { code: "Unavailable", error: "busy" } });
      assert.equal((await hubErrorOf(provider.generate(call()))).code, "upstream_unavailable");
    });

    it("maps an unknown model to upstream_model_not_found", async () => {
      const error = await hubErrorOf(provider.generate(call({ model: "grok-2-image-1212" })));
      assert.equal(sim.requests[0]?.reply?.status, 404);
      assert.equal(error.code, "upstream_model_not_found");
    });

    it("maps a reply without images to 502", async () => {
      sim.failNext({ status: 200, body: { data: [] } });
      assert.equal((await hubErrorOf(provider.generate(call()))).code, "upstream_no_image");
      sim.failNext({ status: 200, body: { usage: {} } });
      assert.equal((await hubErrorOf(provider.generate(call()))).code, "upstream_invalid_response");
    });

    it("rejects promptly when aborted, and xAI sees the connection closed", async () => {
      sim.delayMs = 5_000;
      const controller = new AbortController();
      const reason = new Error("client went away");
      const pending = provider.generate(call({ signal: controller.signal }));
      while (sim.requests.length === 0) await sleep(5);
      const started = Date.now();
      controller.abort(reason);
      await assert.rejects(pending, reason);
      assert.ok(Date.now() - started < 500);
      for (let waited = 0; sim.hangUps === 0 && waited < 1_000; waited += 10) await sleep(10);
      assert.equal(sim.hangUps, 1);
      assert.equal(sim.requests[0]?.reply, undefined);
    });

    it("sends nothing when the signal is already aborted", async () => {
      const reason = new Error("already gone");
      await assert.rejects(provider.generate(call({ signal: AbortSignal.abort(reason) })), reason);
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("model list", () => {
    const listOptions = () => ({ signal: new AbortController().signal, timeoutMs: 5_000 });

    it("lists xAI's image models", async () => {
      assert.ok(provider.listModels);
      const models = await provider.listModels(listOptions());
      assert.equal(sim.requests[0]?.path, "/v1/image-generation-models");
      assert.equal(sim.requests[0]?.headers.authorization, `Bearer ${sim.apiKey}`);
      const reply = sim.requests[0]?.reply?.body as { models: { id: string }[] } | undefined;
      const listed = reply?.models ?? [];
      assert.deepEqual(
        models,
        listed.map((model) => ({ id: model.id, shutdownDate: null })),
      );
      assert.ok(models.some((model) => model.id === "grok-imagine-image-2.0"));
    });

    it("lists aliases as ids too, and skips entries without one", async () => {
      sim.failNext({
        status: 200,
        body: {
          models: [{ id: "grok-imagine-image", aliases: ["grok-imagine"] }, { object: "model" }],
        },
      });
      assert.ok(provider.listModels);
      assert.deepEqual(await provider.listModels(listOptions()), [
        { id: "grok-imagine-image", shutdownDate: null },
        { id: "grok-imagine", shutdownDate: null },
      ]);
    });

    it("maps a wrong key to upstream_auth_failed and a list of another shape to 502", async () => {
      const wrong = createXaiProvider({ apiKey: "xai-wrong-0000000000", baseURL: sim.baseURL });
      assert.ok(wrong.listModels);
      assert.equal(
        (await hubErrorOf(wrong.listModels(listOptions()))).code,
        "upstream_auth_failed",
      );
      sim.failNext({ status: 200, body: { object: "list", data: [] } });
      assert.ok(provider.listModels);
      const error = await hubErrorOf(provider.listModels(listOptions()));
      assert.equal(error.code, "upstream_invalid_response");
    });
  });
});

describe("xAI simulator", () => {
  let sim: XaiSimulator;
  before(async () => {
    sim = await startXaiSimulator();
  });
  after(() => sim.close());

  async function post(body: unknown, key = sim.apiKey) {
    const response = await fetch(`${sim.baseURL}/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it("refuses arguments xAI does not take, in xAI's flat error shape", async () => {
    const reply = await post({ model: "grok-imagine-image", prompt: "x", size: "1024x1024" });
    assert.deepEqual(reply, {
      status: 400,
      body: { code: "Client specified an invalid argument", error: "Argument not supported: size" },
    });
    const quality = await post({ model: "grok-imagine-image", prompt: "x", quality: "low" });
    assert.equal(quality.status, 400);
    assert.equal(
      (await post({ model: "grok-imagine-image-2.0", prompt: "x", quality: "low" })).status,
      200,
    );
    assert.equal((await post({ model: "grok-imagine-image", prompt: "x", n: 11 })).status, 400);
    assert.equal((await post({ model: "grok-imagine-image", prompt: "x" }, "nope")).status, 400);
  });

  it("answers url by default, serving the image itself", async () => {
    const reply = await post({ model: "grok-imagine-image", prompt: "x", aspect_ratio: "2:1" });
    const [image] = reply.body.data as SentImage[];
    const response = await fetch(String(image?.url));
    const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.deepEqual([metadata.width, metadata.height], [1408, 704]);
  });
});
