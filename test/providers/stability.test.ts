import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { encodeMultipart } from "../../src/providers/multipart.ts";
import {
  createStabilityProvider,
  DEFAULT_EDIT_STRENGTH,
  STABILITY_SIZES,
} from "../../src/providers/stability.ts";
import type { ImageProvider, ProviderImage } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import {
  type StabilitySimulator,
  stabilityErrorBody,
  startStabilitySimulator,
} from "../sim/stability.ts";

async function measure(image: ProviderImage | undefined) {
  const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height };
}

/** The JSON the simulator answered the last request with. */
function lastReplyJson(sim: StabilitySimulator): Record<string, unknown> {
  const body = sim.requests.at(-1)?.reply?.body;
  assert.ok(body && typeof body === "object" && !Buffer.isBuffer(body), "a JSON reply");
  return body as Record<string, unknown>;
}

const call = (overrides: Parameters<typeof providerCall>[0] = {}) =>
  providerCall({ model: "sd3.5-large", ...overrides });

describe("Stability AI provider", () => {
  let sim: StabilitySimulator;
  let provider: ImageProvider;

  before(async () => {
    sim = await startStabilitySimulator();
    provider = createStabilityProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
  });

  describe("generations", () => {
    it("posts a multipart form to sd3 with the model, and reads the JSON reply", async () => {
      const result = await provider.generate(call({ size: "1344x768", user: "end-user-7" }));

      const request = sim.requests[0];
      assert.equal(request?.path, "/v2beta/stable-image/generate/sd3");
      assert.equal(request?.headers.authorization, `Bearer ${sim.apiKey}`);
      assert.equal(request?.headers.accept, "application/json");
      assert.match(String(request?.headers["content-type"]), /^multipart\/form-data; boundary=/);
      assert.equal(request?.headers["stability-client-user-id"], "end-user-7");
      assert.deepEqual(request?.form, {
        fields: {
          prompt: "a red fox in the snow",
          model: "sd3.5-large",
          mode: "text-to-image",
          aspect_ratio: "16:9",
          output_format: "png",
        },
        files: [],
      });
      const reply = request?.reply;
      assert.equal(reply?.headers["content-type"], "application/json; type=image/png");
      const [image] = result.images;
      assert.equal(image?.kind === "base64" && image.mimeType, "image/png");
      // The base64 as it came: nothing decoded and encoded again.
      assert.equal(base64Of(image), lastReplyJson(sim).image);
      assert.deepEqual(await measure(image), { format: "png", width: 1344, height: 768 });
      assert.equal(result.usage, undefined);
      assert.deepEqual(result.warnings, []);
    });

    it("routes Ultra and Core to their endpoints, without a model field", async () => {
      for (const [model, service] of [
        ["stable-image-ultra", "ultra"],
        ["stable-image-core", "core"],
      ] as const) {
        const result = await provider.generate(call({ model, outputFormat: "webp" }));
        const request = sim.requests.at(-1);
        assert.equal(request?.path, `/v2beta/stable-image/generate/${service}`);
        assert.deepEqual(request?.form?.fields, {
          prompt: "a red fox in the snow",
          output_format: "webp",
        });
        assert.deepEqual(await measure(result.images[0]), {
          format: "webp",
          width: 1024,
          height: 1024,
        });
      }
    });

    it("makes every listed size as its aspect ratio", async () => {
      for (const [ratio, size] of Object.entries(STABILITY_SIZES)) {
        const result = await provider.generate(
          call({ model: "stable-image-core", size: size as `${number}x${number}` }),
        );
        assert.equal(sim.requests.at(-1)?.form?.fields.aspect_ratio, ratio);
        const [width, height] = size.split("x").map(Number);
        assert.deepEqual(await measure(result.images[0]), { format: "png", width, height });
      }
    });

    it("passes the extra options the service takes, by Stability's names", async () => {
      const extra = {
        seed: 42,
        negative_prompt: "blurry, text",
        style_preset: "anime",
        cfg_scale: 5.5,
      };
      const result = await provider.generate(call({ outputFormat: "jpeg", extra }));
      const fields = sim.requests[0]?.form?.fields;
      assert.equal(fields?.seed, "42");
      assert.equal(fields?.negative_prompt, "blurry, text");
      assert.equal(fields?.style_preset, "anime");
      assert.equal(fields?.cfg_scale, "5.5");
      // The simulator made the image with the seed it was given.
      assert.equal(lastReplyJson(sim).seed, 42);
      assert.equal((await measure(result.images[0])).format, "jpeg");
      assert.deepEqual(result.warnings, []);
    });

    it("warns about hints the model has no notion of, and sends none of them", async () => {
      const result = await provider.generate(
        call({
          model: "stable-image-ultra",
          quality: "hd",
          style: "vivid",
          background: "transparent",
          outputCompression: 80,
          extra: { cfg_scale: 4, strength: 0.3 },
        }),
      );
      assert.deepEqual(Object.keys(sim.requests[0]?.form?.fields ?? {}), [
        "prompt",
        "output_format",
      ]);
      assert.deepEqual(result.warnings, [
        "stable-image-ultra takes no 'cfg_scale'; '4' was not sent.",
        "'strength' applies to edits only; '0.3' was not sent.",
        "stable-image-ultra takes no 'quality'; 'hd' was not sent.",
        "stable-image-ultra takes no 'style'; 'vivid' was not sent.",
        "stable-image-ultra takes no 'background'; 'transparent' was not sent.",
        "stable-image-ultra takes no 'output_compression'; '80' was not sent.",
      ]);
    });

    it("refuses what it cannot honour before sending anything", async () => {
      const image = await inputImageOf(64, 64);
      const cases = [
        [call({ size: "1024x1536" }), "size"],
        [call({ count: 2 }), "n"],
        [call({ outputFormat: "webp" }), "output_format"],
        [call({ model: "stable-image-core", images: [image] }), "image"],
        [call({ images: [image], mask: image }), "mask"],
        [call({ images: [image, image] }), "image"],
      ] as const;
      for (const [input, param] of cases) {
        const error = await hubErrorOf(provider.generate(input));
        assert.equal(error.status, 400);
        assert.equal(error.param, param);
      }
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("edits", () => {
    it("sends sd3 image-to-image with the image file and strength, no aspect_ratio", async () => {
      const input = await inputImageOf(320, 180, "jpeg");
      const result = await provider.generate(
        call({ prompt: "add a hat", images: [input], size: "1344x768", extra: { strength: 0.35 } }),
      );
      const form = sim.requests[0]?.form;
      assert.deepEqual(form?.fields, {
        prompt: "add a hat",
        model: "sd3.5-large",
        mode: "image-to-image",
        output_format: "png",
        strength: "0.35",
      });
      assert.equal(form?.files.length, 1);
      assert.equal(form?.files[0]?.field, "image");
      assert.equal(form?.files[0]?.contentType, "image/jpeg");
      assert.ok(form?.files[0]?.bytes.equals(input.bytes));
      assert.deepEqual(await measure(result.images[0]), {
        format: "png",
        width: 1344,
        height: 768,
      });
    });

    it("edits with Ultra at the default strength when none is given", async () => {
      const input = await inputImageOf(128, 128, "webp");
      const result = await provider.generate(
        call({ model: "stable-image-ultra", images: [input] }),
      );
      const form = sim.requests[0]?.form;
      assert.equal(sim.requests[0]?.path, "/v2beta/stable-image/generate/ultra");
      assert.equal(form?.fields.strength, String(DEFAULT_EDIT_STRENGTH));
      assert.equal(form?.files[0]?.contentType, "image/webp");
      assert.deepEqual(await measure(result.images[0]), {
        format: "png",
        width: 1024,
        height: 1024,
      });
    });

    it("refuses a size of another shape than the input image", async () => {
      const square = await inputImageOf(64, 64);
      const error = await hubErrorOf(
        provider.generate(call({ images: [square], size: "640x1536" })),
      );
      assert.equal(error.param, "size");
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("the simulator's image/* mode", () => {
    it("answers the raw image with finish-reason and seed headers", async () => {
      const { body, contentType } = encodeMultipart([
        { name: "prompt", value: "a lighthouse" },
        { name: "aspect_ratio", value: "9:21" },
        { name: "seed", value: "7" },
      ]);
      const response = await fetch(`${sim.baseURL}/v2beta/stable-image/generate/core`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${sim.apiKey}`,
          accept: "image/*",
          "content-type": contentType,
        },
        body: new Uint8Array(body),
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "image/png");
      assert.equal(response.headers.get("finish-reason"), "SUCCESS");
      assert.equal(response.headers.get("seed"), "7");
      const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.deepEqual([metadata.width, metadata.height], [640, 1536]);
    });

    it("refuses a JSON body as Stability does", async () => {
      const response = await fetch(`${sim.baseURL}/v2beta/stable-image/generate/core`, {
        method: "POST",
        headers: { authorization: `Bearer ${sim.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ prompt: "a lighthouse" }),
      });
      assert.equal(response.status, 400);
      const reply = (await response.json()) as { name: string; errors: string[] };
      assert.equal(reply.name, "bad_request");
      assert.match(reply.errors[0] ?? "", /multipart\/form-data/);
    });
  });

  describe("upstream failures", () => {
    it("maps a 403 content_moderation to content_policy_violation, not an auth failure", async () => {
      const error = await hubErrorOf(provider.generate(call({ prompt: "forbidden-content" })));
      assert.equal(sim.requests[0]?.reply?.status, 403);
      assert.equal(error.status, 400);
      assert.equal(error.code, "content_policy_violation");
      assert.equal(error.upstreamStatus, undefined);
      assert.match(error.message, /content moderation/);
    });

    it("treats finish_reason CONTENT_FILTERED on a 200 as a content-policy refusal", async () => {
      const error = await hubErrorOf(provider.generate(call({ prompt: "blurred-content" })));
      const reply = sim.requests[0]?.reply;
      assert.equal(reply?.status, 200);
      assert.equal(lastReplyJson(sim).finish_reason, "CONTENT_FILTERED");
      assert.equal(error.code, "content_policy_violation");
    });

    it("maps a wrong key's 401 to upstream_auth_failed, without the upstream message", async () => {
      const wrong = createStabilityProvider({
        apiKey: "sk-wrong-key-9876543210",
        baseURL: sim.baseURL,
      });
      const error = await hubErrorOf(wrong.generate(call()));
      assert.equal(sim.requests[0]?.reply?.status, 401);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_auth_failed");
      assert.equal(error.upstreamStatus, 401);
      // Stability's words are about the hub's key, never shown to the client.
      assert.doesNotMatch(error.message, /Incorrect|sk-wrong/);
    });

    it("maps a 402 to the hub's account out of credits", async () => {
      sim.failNext({
        status: 402,
        body: stabilityErrorBody(
          "payment_required",
          "You lack sufficient credits to make this request. Please purchase more credits at https://platform.stability.ai/account/credits and try again.",
        ),
      });
      const error = await hubErrorOf(provider.generate(call()));
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_insufficient_credit");
      assert.equal(error.upstreamStatus, 402);
    });

    it("keeps a 400 the client's error, with Stability's message", async () => {
      sim.failNext({
        status: 400,
        body: stabilityErrorBody("bad_request", "prompt: cannot be blank"),
      });
      const error = await hubErrorOf(provider.generate(call()));
      assert.equal(error.status, 400);
      assert.equal(error.code, "bad_request");
      assert.match(error.message, /prompt: cannot be blank/);
    });

    it("passes a 429 on with its Retry-After, and a 5xx as a retryable upstream error", async () => {
      sim.failNext({
        status: 429,
        headers: { "retry-after": "10" },
        body: stabilityErrorBody("rate_limit_exceeded", "You have exceeded the rate limit."),
      });
      const limited = await hubErrorOf(provider.generate(call()));
      assert.equal(limited.status, 429);
      assert.equal(limited.code, "upstream_rate_limited");
      assert.equal(limited.retryAfterSeconds, 10);

      sim.failNext({
        status: 500,
        body: stabilityErrorBody("internal_error", "An error occurred."),
      });
      const failed = await hubErrorOf(provider.generate(call()));
      assert.equal(failed.status, 502);
      assert.equal(failed.code, "upstream_error");
      assert.equal(failed.retryable, true);
    });

    it("answers a 200 without an image as an upstream failure", async () => {
      sim.failNext({ status: 200, body: { finish_reason: "SUCCESS", seed: 1 } });
      const error = await hubErrorOf(provider.generate(call()));
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_no_image");
    });
  });

  describe("cancellation", () => {
    it("rejects with the signal's reason and hangs up on the simulator", async () => {
      sim.delayMs = 5_000;
      const controller = new AbortController();
      const pending = provider.generate(call({ signal: controller.signal }));
      await sleep(50);
      const reason = new Error("client went away");
      controller.abort(reason);
      await assert.rejects(pending, (error) => error === reason);
      const before = Date.now();
      while (sim.hangUps === 0 && Date.now() - before < 2_000) await sleep(10);
      assert.equal(sim.hangUps, 1);
    });

    it("does not send a call whose signal is already aborted", async () => {
      const controller = new AbortController();
      controller.abort(new Error("too late"));
      await assert.rejects(provider.generate(call({ signal: controller.signal })), /too late/);
      assert.equal(sim.requests.length, 0);
    });
  });
});
