import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import {
  A1111_EXTRA_OPTIONS,
  checkpointMatches,
  createA1111Provider,
} from "../../src/providers/a1111.ts";
import type { ImageProvider, ProviderImage } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import { type A1111Simulator, SIMULATED_CHECKPOINTS, startA1111Simulator } from "../sim/a1111.ts";

const AUTH = "hub:s3cret-pass";
const SDXL = SIMULATED_CHECKPOINTS[1]?.title as string;

async function measure(image: ProviderImage | undefined) {
  const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height };
}

function basicAuthOf(pair: string): string {
  return `Basic ${Buffer.from(pair).toString("base64")}`;
}

describe("AUTOMATIC1111 provider", () => {
  let sim: A1111Simulator;
  let provider: ImageProvider;
  const call = providerCall;

  before(async () => {
    sim = await startA1111Simulator({ auth: AUTH });
    provider = createA1111Provider({ apiKey: "", baseURL: `${sim.baseURL}/`, auth: AUTH });
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
  });

  describe("txt2img", () => {
    it("sends only what it means, with basic auth, and returns the images measured", async () => {
      const result = await provider.generate(call({ model: SDXL, size: "768x512", count: 2 }));

      const request = sim.requests[0];
      assert.equal(request?.method, "POST");
      assert.equal(request?.path, "/sdapi/v1/txt2img");
      assert.equal(request?.headers.authorization, basicAuthOf(AUTH));
      assert.deepEqual(request?.json, {
        prompt: "a red fox in the snow",
        batch_size: 2,
        width: 768,
        height: 512,
        override_settings: { sd_model_checkpoint: SDXL },
      });
      assert.equal(result.images.length, 2);
      for (const image of result.images) {
        assert.equal(image.kind === "base64" && image.mimeType, "image/png");
        assert.deepEqual(await measure(image), { format: "png", width: 768, height: 512 });
      }
      assert.notEqual(base64Of(result.images[0]), base64Of(result.images[1]));
      assert.deepEqual(result.warnings, []);
      assert.equal(result.usage, undefined);
    });

    it("draws with the loaded checkpoint for 'default', sending no override", async () => {
      const result = await provider.generate(call({ model: "default", size: "512x512" }));
      assert.equal(sim.requests[0]?.json?.override_settings, undefined);
      assert.deepEqual(await measure(result.images[0]), { format: "png", width: 512, height: 512 });
    });

    it("takes a checkpoint by model_name or hash as webui resolves them", async () => {
      for (const name of ["sdxl_sd_xl_base_1.0", "31e35c80fc"]) {
        const result = await provider.generate(call({ model: name, size: "1024x1024" }));
        assert.equal(result.images.length, 1);
      }
    });

    it("refuses images drawn with another checkpoint than the one asked", async () => {
      // webui drops a checkpoint it does not know and draws with the loaded one, silently.
      const error = await hubErrorOf(provider.generate(call({ model: "juggernaut-xl-v9" })));
      assert.equal(sim.requests[0]?.reply?.status, 200);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_model_not_found");
      assert.match(error.message, /juggernaut-xl-v9.*v1-5-pruned-emaonly/);
    });

    it("makes a batch of n in one call", async () => {
      const result = await provider.generate(call({ model: "default", count: 4, size: "512x768" }));
      assert.equal(sim.requests.length, 1);
      assert.equal(sim.requests[0]?.json?.batch_size, 4);
      assert.equal(result.images.length, 4);
      const sizes = await Promise.all(result.images.map(measure));
      assert.ok(sizes.every((size) => size.width === 512 && size.height === 768));
      assert.equal(new Set(result.images.map(base64Of)).size, 4);
    });

    it("sends the extra options by webui's names and types", async () => {
      const extra = {
        negative_prompt: "blurry, text",
        seed: 42,
        steps: 28,
        cfg_scale: 6.5,
        sampler_name: "Euler a",
        scheduler: "Karras",
      };
      const result = await provider.generate(call({ model: "default", size: "512x512", extra }));
      const { prompt, batch_size, width, height, ...sent } = sim.requests[0]?.json ?? {};
      assert.deepEqual(sent, extra);
      assert.deepEqual(result.warnings, []);
    });

    it("warns for denoising_strength without an image, and for a sampler the server lacks", async () => {
      const extra = { denoising_strength: 0.4, sampler_name: "Euler Ancestral Turbo" };
      const result = await provider.generate(call({ model: "default", size: "512x512", extra }));
      assert.equal(sim.requests[0]?.json?.denoising_strength, undefined);
      assert.deepEqual(result.warnings, [
        "AUTOMATIC1111 takes 'denoising_strength' for edits only; it was not sent.",
        "AUTOMATIC1111 has no sampler 'Euler Ancestral Turbo'; it used 'DPM++ 2M'.",
      ]);
    });

    it("reports the OpenAI hints it has no notion of, without sending them", async () => {
      const result = await provider.generate(
        call({
          model: "default",
          quality: "hd",
          style: "vivid",
          outputFormat: "webp",
          user: "u-1",
        }),
      );
      assert.deepEqual(Object.keys(sim.requests[0]?.json ?? {}), ["prompt", "batch_size"]);
      assert.equal(result.warnings.length, 4);
      assert.match(result.warnings.join(" "), /'quality'.*'style'.*'user'.*'output_format'/);
    });

    it("declares its extra options in the catalog's shape", () => {
      assert.deepEqual(Object.keys(A1111_EXTRA_OPTIONS).sort(), [
        "cfg_scale",
        "denoising_strength",
        "negative_prompt",
        "sampler_name",
        "scheduler",
        "seed",
        "steps",
      ]);
      assert.equal(A1111_EXTRA_OPTIONS.steps.maximum, 150);
    });
  });

  describe("img2img", () => {
    it("edits an image: init_images as base64, the input's size when none is asked", async () => {
      const input = await inputImageOf(640, 480);
      const result = await provider.generate(
        call({ model: "default", images: [input], extra: { denoising_strength: 0.55 } }),
      );
      const request = sim.requests[0];
      assert.equal(request?.path, "/sdapi/v1/img2img");
      assert.deepEqual(request?.json, {
        prompt: "a red fox in the snow",
        batch_size: 1,
        width: 640,
        height: 480,
        denoising_strength: 0.55,
        init_images: [input.bytes.toString("base64")],
      });
      assert.deepEqual(await measure(result.images[0]), { format: "png", width: 640, height: 480 });
    });

    it("inverts an OpenAI mask and asks for the whole picture at the size asked", async () => {
      const input = await inputImageOf(512, 512);
      // Transparent on the left half (edit there), opaque on the right (keep).
      const pixels = Buffer.alloc(512 * 512 * 4);
      for (let index = 0; index < 512 * 512; index++) {
        pixels[index * 4 + 3] = index % 512 < 256 ? 0 : 255;
      }
      const mask = await sharp(pixels, { raw: { width: 512, height: 512, channels: 4 } })
        .png()
        .toBuffer();
      const result = await provider.generate(
        call({
          model: "default",
          size: "768x768",
          images: [input],
          mask: { bytes: mask, mimeType: "image/png", width: 512, height: 512 },
        }),
      );
      const sent = sim.requests[0]?.json ?? {};
      assert.equal(sent.inpaint_full_res, false);
      const sentMask = Buffer.from(String(sent.mask), "base64");
      const metadata = await sharp(sentMask).metadata();
      assert.deepEqual([metadata.format, metadata.channels], ["png", 1]);
      const data = await sharp(sentMask).extractChannel(0).raw().toBuffer();
      assert.equal(data[512 * 100 + 10], 255, "white where the OpenAI mask was transparent");
      assert.equal(data[512 * 100 + 400], 0, "black where it was opaque");
      assert.deepEqual(await measure(result.images[0]), { format: "png", width: 768, height: 768 });
    });

    it("refuses several input images without calling the server", async () => {
      const image = await inputImageOf(64, 64);
      const error = await hubErrorOf(provider.generate(call({ images: [image, image] })));
      assert.equal(error.status, 400);
      assert.equal(error.param, "image");
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("errors", () => {
    it("maps a 401 for missing credentials to 502 upstream_auth_failed", async () => {
      const anonymous = createA1111Provider({ apiKey: "", baseURL: sim.baseURL });
      const error = await hubErrorOf(anonymous.generate(call({ model: "default" })));
      assert.equal(sim.requests[0]?.headers.authorization, undefined);
      assert.equal(sim.requests[0]?.reply?.status, 401);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_auth_failed");
      assert.equal(error.upstreamStatus, 401);
    });

    it("sends the apiKey as user:pass when no auth is given, and maps a wrong one", async () => {
      const stored = createA1111Provider({ apiKey: AUTH, baseURL: sim.baseURL });
      assert.equal((await stored.generate(call({ model: "default" }))).images.length, 1);
      const wrong = createA1111Provider({ apiKey: "", baseURL: sim.baseURL, auth: "hub:nope" });
      const error = await hubErrorOf(wrong.generate(call({ model: "default" })));
      assert.deepEqual(sim.requests[1]?.reply?.body, {
        error: "HTTPException",
        detail: "Incorrect username or password",
        body: "",
        errors: "401: Incorrect username or password",
      });
      assert.equal(error.code, "upstream_auth_failed");
      assert.doesNotMatch(error.message, /nope/);
    });

    it("maps a 422 validation error to 400 upstream_rejected", async () => {
      sim.failNext({
        status: 422,
        body: {
          detail: [
            {
              type: "int_parsing",
              loc: ["body", "steps"],
              msg: "Input should be a valid integer",
              input: "x",
            },
          ],
        },
      });
      const error = await hubErrorOf(provider.generate(call({ model: "default" })));
      assert.equal(error.status, 400);
      assert.equal(error.code, "upstream_rejected");
    });

    it("maps a model failure (500) to a retryable 502 upstream_error", async () => {
      const error = await hubErrorOf(
        provider.generate(call({ model: "default", prompt: "fail-model please" })),
      );
      assert.equal(sim.requests[0]?.reply?.status, 500);
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_error");
      assert.equal(error.retryable, true);
      assert.doesNotMatch(error.message, /CUDA/);
    });

    it("says --api is missing when the server has no API (404)", async () => {
      sim.failNext({ status: 404, body: { detail: "Not Found" } });
      const error = await hubErrorOf(provider.generate(call({ model: "default" })));
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_error");
      assert.match(error.message, /--api/);
    });

    it("maps a refused connection to a retryable upstream_unreachable", async () => {
      const port = await closedPort();
      const nowhere = createA1111Provider({ apiKey: "", baseURL: `http://127.0.0.1:${port}` });
      const error = await hubErrorOf(nowhere.generate(call({ model: "default" })));
      assert.equal(error.status, 502);
      assert.equal(error.code, "upstream_unreachable");
      assert.equal(error.retryable, true);
    });

    for (const [label, body] of [
      ["no images", { parameters: {}, info: "{}" }],
      ["fewer images than asked", { images: [], parameters: {}, info: "{}" }],
      ["an image that is not one", { images: ["bm90IGFuIGltYWdl"], parameters: {}, info: "{}" }],
    ] as const) {
      it(`maps a reply with ${label} to 502 upstream_invalid_response`, async () => {
        sim.failNext({ status: 200, body });
        const error = await hubErrorOf(provider.generate(call({ model: "default" })));
        assert.equal(error.code, "upstream_invalid_response");
      });
    }

    it("rejects promptly with the signal's reason when the call is aborted", async () => {
      sim.delayMs = 5_000;
      const controller = new AbortController();
      const reason = new Error("client went away");
      const pending = provider.generate(call({ model: "default", signal: controller.signal }));
      while (sim.requests.length === 0) await sleep(5);
      const started = Date.now();
      controller.abort(reason);
      await assert.rejects(pending, reason);
      assert.ok(Date.now() - started < 500);
    });

    it("sends nothing when the signal is already aborted", async () => {
      const reason = new Error("already gone");
      await assert.rejects(
        provider.generate(call({ model: "default", signal: AbortSignal.abort(reason) })),
        reason,
      );
      assert.equal(sim.requests.length, 0);
    });
  });

  describe("model list", () => {
    it("lists the loaded checkpoint as 'default' and each checkpoint by its names", async () => {
      const models = await provider.listModels?.({
        signal: new AbortController().signal,
        timeoutMs: 5_000,
      });
      assert.equal(sim.requests[0]?.path, "/sdapi/v1/sd-models");
      const ids = new Set(models?.map((model) => model.id));
      for (const id of ["default", SDXL, "sdxl_sd_xl_base_1.0", "sd_xl_base_1.0", "31e35c80fc"]) {
        assert.ok(ids.has(id), `lists ${id}`);
      }
      assert.ok(models?.every((model) => model.shutdownDate === null));
    });
  });
});

describe("AUTOMATIC1111 provider against Forge", () => {
  let sim: A1111Simulator;

  before(async () => {
    sim = await startA1111Simulator({ flavour: "forge" });
  });
  after(() => sim.close());

  for (const [samplesFormat, format] of [
    ["jpg", "jpeg"],
    ["webp", "webp"],
  ] as const) {
    it(`reads the image type from the image: samples_format may be ${samplesFormat}`, async () => {
      const other = await startA1111Simulator({ flavour: "forge", samplesFormat });
      try {
        const provider = createA1111Provider({ apiKey: "", baseURL: other.baseURL });
        const result = await provider.generate(providerCall({ model: "default", size: "576x512" }));
        const [image] = result.images;
        assert.equal(image?.kind === "base64" && image.mimeType, `image/${format}`);
        assert.deepEqual(await measure(image), { format, width: 576, height: 512 });
      } finally {
        await other.close();
      }
    });
  }

  it("maps Forge's plain-text crash to a retryable 502", async () => {
    const provider = createA1111Provider({ apiKey: "", baseURL: sim.baseURL });
    const error = await hubErrorOf(
      provider.generate(providerCall({ model: "default", prompt: "fail-model" })),
    );
    assert.equal(sim.requests.at(-1)?.reply?.body, "Internal Server Error");
    assert.equal(error.code, "upstream_error");
    assert.equal(error.retryable, true);
  });
});

describe("checkpointMatches", () => {
  const used = { name: "sd_xl_base_1.0", hash: "31e35c80fc" };
  for (const asked of [
    "sd_xl_base_1.0",
    "sd_xl_base_1.0.safetensors",
    "sdxl/sd_xl_base_1.0.safetensors",
    "sdxl_sd_xl_base_1.0",
    "sdxl/sd_xl_base_1.0.safetensors [31e35c80fc]",
    "31e35c80fc",
    `31e35c80fc${"0".repeat(54)}`,
  ]) {
    it(`takes '${asked}' for ${used.name}`, () => {
      assert.equal(checkpointMatches(asked, used), true);
    });
  }
  it("tells another checkpoint apart, by name or by hash", () => {
    assert.equal(checkpointMatches("juggernautXL_v9", used), false);
    assert.equal(checkpointMatches("sd_xl_base_1.0.safetensors [0123456789]", used), false);
  });
  it("cannot tell without info, or for a legacy 8-digit hash", () => {
    assert.equal(checkpointMatches("anything", { name: undefined, hash: undefined }), undefined);
    assert.equal(checkpointMatches("e6bb9ea8", used), undefined);
  });
});

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
