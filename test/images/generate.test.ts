/**
 * The pipeline with fake, in-memory dependencies: fake providers record their calls and count
 * how many are in flight, the fake host and fetcher record what they were given, and every usage
 * record is kept. One test at the end runs the real placeholder provider.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import sharp from "sharp";
import type { Principal } from "../../src/auth/principal.ts";
import { contentPolicy, HubError, invalidRequest, upstreamFailed } from "../../src/errors.ts";
import { createCatalog, type ModelSpec, type ProviderName } from "../../src/images/catalog.ts";
import {
  createImageService,
  type ImageService,
  type ImageServiceDeps,
} from "../../src/images/generate.ts";
import type { ImageJobRequest, ImageSource } from "../../src/images/plan.ts";
import { createLocalProvider } from "../../src/providers/local.ts";
import type {
  ImageMimeType,
  ImageProvider,
  InputImage,
  ProviderCall,
  ProviderResult,
} from "../../src/providers/types.ts";
import type { UsageRecord } from "../../src/storage/db/types.ts";

const PRINCIPAL: Principal = {
  keyId: "key-1",
  name: "tests",
  role: "client",
  models: null,
  rpm: null,
  ipm: null,
  balanceMicros: null,
};
const NOW = 1_700_000_123_456;

let png: Buffer;
let pngBase64: string;
let jpeg: Buffer;

before(async () => {
  const image = () =>
    sharp({ create: { width: 48, height: 32, channels: 3, background: "#cc6633" } });
  png = await image().png().toBuffer();
  pngBase64 = png.toString("base64");
  jpeg = await image().jpeg().toBuffer();
});

type Behaviour = (call: ProviderCall, index: number) => Promise<ProviderResult>;

interface FakeProvider extends ImageProvider {
  calls: ProviderCall[];
  maxInFlight: number;
}

/** A provider that records its calls and the most of them in flight at once. */
function fakeProvider(name: string, behaviour: Behaviour): FakeProvider {
  let inFlight = 0;
  const provider: FakeProvider = {
    name,
    calls: [],
    maxInFlight: 0,
    async generate(call) {
      const index = provider.calls.length;
      provider.calls.push(call);
      inFlight++;
      provider.maxInFlight = Math.max(provider.maxInFlight, inFlight);
      try {
        return await behaviour(call, index);
      } finally {
        inFlight--;
      }
    },
  };
  return provider;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function base64Images(count: number, base64 = pngBase64): ProviderResult {
  return {
    images: Array.from({ length: count }, () => ({
      kind: "base64" as const,
      base64,
      mimeType: "image/png" as const,
      revisedPrompt: undefined,
    })),
    usage: undefined,
    warnings: [],
  };
}

/** Answers `count` base64 PNGs after a short wait, so that calls overlap. */
const succeed: Behaviour = async (call) => {
  await sleep(5);
  return base64Images(call.count);
};

interface Harness {
  service: ImageService;
  records: UsageRecord[];
  hosted: Array<{ bytes: Buffer; mimeType: ImageMimeType }>;
  fetched: string[];
  loaded: Array<{ sources: ImageSource[]; param: string }>;
}

function harness(
  providers: Partial<Record<ProviderName, ImageProvider>>,
  overrides: Partial<ImageServiceDeps> = {},
): Harness {
  const records: UsageRecord[] = [];
  const hosted: Harness["hosted"] = [];
  const fetched: string[] = [];
  const loaded: Harness["loaded"] = [];
  const service = createImageService({
    catalog: createCatalog(),
    providers,
    defaultModel: "dall-e-2",
    fanOutConcurrency: 4,
    async loadInputs(sources, param) {
      loaded.push({ sources, param });
      return [];
    },
    async fetchUpstreamImage(url) {
      fetched.push(url);
      return png;
    },
    async hostImage(bytes, mimeType) {
      hosted.push({ bytes, mimeType });
      const name = `${hosted.length}.png`;
      return { url: `https://hub.test/files/images/${name}`, name, expiresAt: 0 };
    },
    // Unlimited keys: nothing reserved, the record written as it is (billing has its own tests).
    accounting: {
      reserve: async () => null,
      topUp: async () => true,
      costCeiling: () => 0,
      async record({ record }) {
        const complete = { ...record, costMicros: 0 };
        records.push(complete);
        return complete;
      },
    },
    clock: () => NOW,
    ...overrides,
  });
  return { service, records, hosted, fetched, loaded };
}

const signal = () => new AbortController().signal;

function onlyRecord(records: UsageRecord[]): UsageRecord {
  assert.equal(records.length, 1, "one usage record per request");
  return records[0] as UsageRecord;
}

async function rejectsWith(
  promise: Promise<unknown>,
  expected: { status: number; code: string; param?: string | null },
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof HubError, `expected a HubError, got ${String(error)}`);
    assert.equal(error.status, expected.status, error.message);
    assert.equal(error.code, expected.code, error.message);
    if (expected.param !== undefined) assert.equal(error.param, expected.param);
    return true;
  });
}

describe("fan-out", () => {
  test("dall-e-3 n 7 is seven calls of one, never more than fanOutConcurrency at once", async () => {
    const openai = fakeProvider("openai", succeed);
    const { service, records } = harness({ openai }, { fanOutConcurrency: 3 });
    const result = await service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse", n: 7, response_format: "b64_json" },
      signal(),
    );
    assert.equal(openai.calls.length, 7);
    assert.deepEqual(
      openai.calls.map((call) => call.count),
      [1, 1, 1, 1, 1, 1, 1],
    );
    assert.equal(openai.maxInFlight, 3, "runs three at once, and no more");
    assert.equal(result.data.length, 7);
    assert.equal(result.partial, undefined);
    const record = onlyRecord(records);
    assert.equal(record.status, "succeeded");
    assert.equal(record.imagesRequested, 7);
    assert.equal(record.imagesDelivered, 7);
    assert.equal(record.errorCode, null);
  });

  test("imagen n 10 is calls of 4, 4 and 2", async () => {
    const google = fakeProvider("google", succeed);
    const { service } = harness({ google }, { fanOutConcurrency: 1 });
    const result = await service.generate(
      PRINCIPAL,
      { model: "imagen-4", prompt: "a lighthouse", n: 10, response_format: "b64_json" },
      signal(),
    );
    assert.deepEqual(
      google.calls.map((call) => call.count),
      [4, 4, 2],
    );
    assert.equal(google.maxInFlight, 1);
    assert.equal(result.data.length, 10);
  });

  test("each call carries the normalised job", async () => {
    const openai = fakeProvider("openai", succeed);
    const { service } = harness({ openai });
    await service.generate(
      PRINCIPAL,
      {
        model: "openai/gpt-image-1",
        prompt: "a lighthouse",
        // Cast: the schema's Static type says `quality` is `undefined` (see the report).
        quality: "hd",
        style: "natural",
        size: "1536x1024",
        background: "transparent",
        output_format: "webp",
        output_compression: 60,
        moderation: "low",
        user: "end-user-7",
      },
      signal(),
    );
    const call = openai.calls[0];
    assert.ok(call);
    assert.equal(call.model, "gpt-image-1");
    assert.equal(call.prompt, "a lighthouse");
    assert.equal(call.count, 1);
    assert.equal(call.size, "1536x1024");
    assert.equal(call.quality, "high");
    assert.equal(call.style, undefined, "gpt-image has no style: not sent");
    assert.equal(call.background, "transparent");
    assert.equal(call.outputFormat, "webp");
    assert.equal(call.outputCompression, 60);
    assert.equal(call.moderation, "low");
    assert.equal(call.user, "end-user-7");
    assert.deepEqual(call.images, []);
    assert.equal(call.mask, undefined);
  });

  test("usage is summed over calls; warnings of plan and calls are merged once each", async () => {
    const google = fakeProvider("google", async (call) => ({
      ...base64Images(call.count),
      usage: { inputTokens: 10, outputTokens: 1290, totalTokens: 1300 },
      warnings: ["the upstream ignored something"],
    }));
    const { service } = harness({ google });
    const result = await service.generate(
      PRINCIPAL,
      { model: "nano-banana", prompt: "a lighthouse", n: 3, style: "natural" },
      signal(),
    );
    assert.deepEqual(result.usage, { input_tokens: 30, output_tokens: 3870, total_tokens: 3900 });
    assert.equal(result.warnings.length, 2, result.warnings.join(" | "));
    assert.match(result.warnings[0] ?? "", /style 'natural' was ignored/);
    assert.equal(result.warnings[1], "the upstream ignored something");
  });

  test("usage is undefined when no call reports it", async () => {
    const { service } = harness({ openai: fakeProvider("openai", succeed) });
    const result = await service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse", n: 2 },
      signal(),
    );
    assert.equal(result.usage, undefined);
  });
});

describe("partial success", () => {
  test("one of three calls fails: two images, partial set, usage record partial", async () => {
    const openai = fakeProvider("openai", async (call, index) => {
      if (index === 1) throw upstreamFailed("The upstream failed.", { code: "upstream_error" });
      return succeed(call, index);
    });
    const { service, records } = harness({ openai });
    const result = await service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse", n: 3, response_format: "b64_json" },
      signal(),
    );
    assert.equal(result.data.length, 2);
    assert.deepEqual(result.partial, { requested: 3, delivered: 2, errorCode: "upstream_error" });
    const record = onlyRecord(records);
    assert.equal(record.status, "partial");
    assert.equal(record.imagesRequested, 3);
    assert.equal(record.imagesDelivered, 2);
    assert.equal(record.errorCode, "upstream_error");
  });

  test("a call that makes fewer images than asked, without an error, is partial too", async () => {
    const google = fakeProvider("google", async (call) => base64Images(call.count - 1));
    const { service, records } = harness({ google });
    const result = await service.generate(
      PRINCIPAL,
      { model: "imagen-4", prompt: "a lighthouse", n: 4 },
      signal(),
    );
    assert.equal(result.data.length, 3);
    assert.deepEqual(result.partial, { requested: 4, delivered: 3, errorCode: "fewer_images" });
    assert.equal(onlyRecord(records).status, "partial");
  });
});

describe("all calls fail", () => {
  test("the request fails with the error, and the usage record says failed", async () => {
    const openai = fakeProvider("openai", async () => {
      throw upstreamFailed("The upstream failed.", { code: "upstream_error" });
    });
    const { service, records } = harness({ openai });
    await rejectsWith(
      service.generate(PRINCIPAL, { model: "dall-e-3", prompt: "a lighthouse", n: 2 }, signal()),
      { status: 502, code: "upstream_error" },
    );
    const record = onlyRecord(records);
    assert.equal(record.status, "failed");
    assert.equal(record.imagesDelivered, 0);
    assert.equal(record.errorCode, "upstream_error");
    assert.equal(record.model, "dall-e-3");
    assert.equal(record.provider, "openai");
  });

  test("a content-policy refusal wins over a 502 that came first", async () => {
    const openai = fakeProvider("openai", async (_call, index) => {
      if (index === 0) throw upstreamFailed("The upstream failed.");
      throw contentPolicy("Your request was rejected by the safety system.");
    });
    const { service, records } = harness({ openai }, { fanOutConcurrency: 1 });
    await rejectsWith(
      service.generate(PRINCIPAL, { model: "dall-e-3", prompt: "a lighthouse", n: 3 }, signal()),
      { status: 400, code: "content_policy_violation", param: "prompt" },
    );
    const record = onlyRecord(records);
    assert.equal(record.status, "failed");
    assert.equal(record.errorCode, "content_policy_violation");
  });

  test("an error that is not a HubError becomes a 500 that says nothing of it", async () => {
    const openai = fakeProvider("openai", async () => {
      throw new TypeError("secret internals at 10.0.0.7");
    });
    const { service, records } = harness({ openai });
    await assert.rejects(
      service.generate(PRINCIPAL, { model: "dall-e-3", prompt: "a lighthouse" }, signal()),
      (error: unknown) => {
        assert.ok(error instanceof HubError);
        assert.equal(error.status, 500);
        assert.equal(error.code, "internal_error");
        assert.doesNotMatch(error.message, /10\.0\.0\.7/);
        return true;
      },
    );
    assert.equal(onlyRecord(records).errorCode, "internal_error");
  });

  test("a usage store that fails does not fail the request; it is logged", async () => {
    const logged: string[] = [];
    const { service } = harness(
      { openai: fakeProvider("openai", succeed) },
      {
        accounting: {
          reserve: async () => null,
          topUp: async () => true,
          costCeiling: () => 0,
          record: async () => {
            throw new Error("disk full");
          },
        },
        log: { warn: () => {}, error: (_object, message) => logged.push(message) },
      },
    );
    const result = await service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse" },
      signal(),
    );
    assert.equal(result.data.length, 1);
    assert.deepEqual(logged, ["could not write the usage record"]);
  });
});

describe("delivery", () => {
  test("b64_json passes the provider's base64 text through unchanged; nothing is hosted", async () => {
    // A distinct string, so that equality means "this very text", not a re-encoding of it.
    const text = `${pngBase64}`;
    const openai = fakeProvider("openai", async () => base64Images(1, text));
    const { service, hosted, fetched } = harness({ openai });
    const result = await service.generate(
      PRINCIPAL,
      { model: "gpt-image-1", prompt: "a lighthouse", response_format: "b64_json" },
      signal(),
    );
    assert.equal(result.data[0]?.b64_json, text);
    assert.equal(result.data[0]?.url, undefined);
    assert.equal(hosted.length, 0);
    assert.equal(fetched.length, 0);
  });

  test("url hosts the decoded bytes with the provider's mime type", async () => {
    const openai = fakeProvider("openai", async () => base64Images(1));
    const { service, hosted } = harness({ openai });
    const result = await service.generate(
      PRINCIPAL,
      { model: "gpt-image-1", prompt: "a lighthouse" },
      signal(),
    );
    assert.equal(result.data[0]?.url, "https://hub.test/files/images/1.png");
    assert.equal(result.data[0]?.b64_json, undefined);
    assert.equal(hosted.length, 1);
    const [image] = hosted;
    assert.ok(image);
    assert.equal(image.mimeType, "image/png");
    assert.ok(image.bytes.equals(png));
    const metadata = await sharp(image.bytes).metadata();
    assert.equal(metadata.format, "png");
    assert.equal(metadata.width, 48);
    assert.equal(metadata.height, 32);
  });

  test("bytes become base64 for b64_json and are hosted as they are for url", async () => {
    const bytesResult = async (): Promise<ProviderResult> => ({
      images: [{ kind: "bytes", bytes: jpeg, mimeType: "image/jpeg", revisedPrompt: "a fox" }],
      usage: undefined,
      warnings: [],
    });
    const b64 = harness({ google: fakeProvider("google", bytesResult) });
    const encoded = await b64.service.generate(
      PRINCIPAL,
      { model: "imagen-4", prompt: "a lighthouse", response_format: "b64_json" },
      signal(),
    );
    assert.deepEqual(encoded.data, [
      { b64_json: jpeg.toString("base64"), revised_prompt: "a fox", mimeType: "image/jpeg" },
    ]);

    const url = harness({ google: fakeProvider("google", bytesResult) });
    const linked = await url.service.generate(
      PRINCIPAL,
      { model: "imagen-4", prompt: "a lighthouse" },
      signal(),
    );
    assert.equal(linked.data[0]?.revised_prompt, "a fox");
    assert.equal(linked.data[0]?.mimeType, "image/jpeg", "AIGNE's reply names each image's type");
    assert.equal(url.hosted[0]?.bytes, jpeg);
    assert.equal(url.hosted[0]?.mimeType, "image/jpeg");
  });

  const urlResult = async (): Promise<ProviderResult> => ({
    images: [{ kind: "url", url: "https://upstream.test/img/1", revisedPrompt: undefined }],
    usage: undefined,
    warnings: [],
  });

  test("an upstream URL is fetched for b64_json", async () => {
    const { service, fetched, hosted } = harness({ openai: fakeProvider("openai", urlResult) });
    const result = await service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse", response_format: "b64_json" },
      signal(),
    );
    assert.deepEqual(fetched, ["https://upstream.test/img/1"]);
    assert.equal(result.data[0]?.b64_json, png.toString("base64"));
    assert.equal(hosted.length, 0);
  });

  test("an upstream URL is fetched and hosted for url, typed by its bytes", async () => {
    const { service, fetched, hosted } = harness(
      { openai: fakeProvider("openai", urlResult) },
      {
        async fetchUpstreamImage(url) {
          fetched.push(url);
          return jpeg;
        },
      },
    );
    const result = await service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse" },
      signal(),
    );
    assert.deepEqual(fetched, ["https://upstream.test/img/1"]);
    assert.equal(result.data[0]?.url, "https://hub.test/files/images/1.png");
    assert.equal(hosted[0]?.mimeType, "image/jpeg");
    assert.ok(hosted[0]?.bytes.equals(jpeg));
  });

  test("url: an upstream URL that holds no image is a 502", async () => {
    const { service, records } = harness(
      { openai: fakeProvider("openai", urlResult) },
      { fetchUpstreamImage: async () => Buffer.from("<html>not an image</html>") },
    );
    await rejectsWith(
      service.generate(PRINCIPAL, { model: "dall-e-3", prompt: "a lighthouse" }, signal()),
      { status: 502, code: "upstream_invalid_response" },
    );
    assert.equal(onlyRecord(records).status, "failed");
  });

  test("b64_json: an upstream URL that holds no image is a 502 too", async () => {
    const { service } = harness(
      { openai: fakeProvider("openai", urlResult) },
      { fetchUpstreamImage: async () => Buffer.from("<html>not an image</html>") },
    );
    await rejectsWith(
      service.generate(
        PRINCIPAL,
        { model: "dall-e-3", prompt: "a lighthouse", response_format: "b64_json" },
        signal(),
      ),
      { status: 502, code: "upstream_invalid_response" },
    );
  });
});

describe("abort", () => {
  /** Waits until the call's signal aborts, then rejects with its reason, as providers must. */
  const hang: Behaviour = (call) =>
    new Promise((_resolve, reject) => {
      call.signal.throwIfAborted();
      call.signal.addEventListener("abort", () => reject(call.signal.reason), { once: true });
    });

  test("a signal aborted mid-call rejects, and the record says client_disconnected", async () => {
    const openai = fakeProvider("openai", hang);
    const { service, records } = harness({ openai });
    const controller = new AbortController();
    const pending = service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse", n: 2 },
      controller.signal,
    );
    await sleep(10);
    assert.equal(openai.calls.length, 2, "both calls are in flight");
    controller.abort();
    await assert.rejects(pending, (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.equal(error.name, "AbortError");
      return true;
    });
    const record = onlyRecord(records);
    assert.equal(record.status, "failed");
    assert.equal(record.imagesDelivered, 0);
    assert.equal(record.errorCode, "client_disconnected");
  });

  test("calls not yet started when the signal aborts are never made", async () => {
    const openai = fakeProvider("openai", hang);
    const { service } = harness({ openai }, { fanOutConcurrency: 2 });
    const controller = new AbortController();
    const pending = service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse", n: 5 },
      controller.signal,
    );
    await sleep(10);
    controller.abort();
    await assert.rejects(pending);
    assert.equal(openai.calls.length, 2);
  });

  test("an abort after one call succeeded still rejects, recorded as client_disconnected", async () => {
    const openai = fakeProvider("openai", async (call, index) =>
      index === 0 ? base64Images(call.count) : hang(call, index),
    );
    const { service, records, hosted } = harness({ openai });
    const controller = new AbortController();
    const pending = service.generate(
      PRINCIPAL,
      { model: "dall-e-3", prompt: "a lighthouse", n: 2 },
      controller.signal,
    );
    await sleep(10);
    controller.abort();
    const outcome = await pending.then(
      () => "resolved",
      () => "rejected",
    );
    const record = onlyRecord(records);
    assert.equal(hosted.length, 0, "nothing is stored for a client that went away");
    assert.equal(outcome, "rejected");
    assert.equal(record.errorCode, "client_disconnected");
  });

  test("an already aborted signal makes no call", async () => {
    const openai = fakeProvider("openai", succeed);
    const { service, records, loaded } = harness({ openai });
    await assert.rejects(
      service.generate(
        PRINCIPAL,
        { model: "dall-e-3", prompt: "a lighthouse" },
        AbortSignal.abort(),
      ),
    );
    assert.equal(openai.calls.length, 0);
    assert.equal(loaded.length, 0);
    assert.equal(onlyRecord(records).errorCode, "client_disconnected");
  });
});

describe("validation and inputs", () => {
  test("a bad size is a 400 before any call, and still writes a failed record", async () => {
    const openai = fakeProvider("openai", succeed);
    const { service, records, loaded } = harness({ openai });
    await rejectsWith(
      service.generate(
        PRINCIPAL,
        { model: "dall-e-3", prompt: "a lighthouse", size: "512x512", n: 2 },
        signal(),
      ),
      { status: 400, code: "invalid_size", param: "size" },
    );
    assert.equal(openai.calls.length, 0);
    assert.equal(loaded.length, 0);
    const record = onlyRecord(records);
    assert.equal(record.status, "failed");
    assert.equal(record.errorCode, "invalid_size");
    assert.equal(record.keyId, "key-1");
    assert.equal(record.model, "dall-e-3");
    assert.equal(record.provider, "none");
    assert.equal(record.size, "512x512");
    assert.equal(record.imagesRequested, 2);
    assert.equal(record.imagesDelivered, 0);
    assert.equal(record.upstreamLatencyMs, null);
  });

  test("a model whose provider is not configured is 404", async () => {
    const { service, records } = harness({ openai: fakeProvider("openai", succeed) });
    assert.equal(service.isProviderConfigured("openai"), true);
    assert.equal(service.isProviderConfigured("google"), false);
    await rejectsWith(
      service.generate(PRINCIPAL, { model: "nano-banana", prompt: "a lighthouse" }, signal()),
      { status: 404, code: "model_not_found", param: "model" },
    );
    assert.equal(onlyRecord(records).errorCode, "model_not_found");
  });

  test("loadInputs gets the image sources, and the provider gets what it loaded", async () => {
    const input = (width: number): InputImage => ({
      bytes: png,
      mimeType: "image/png",
      width,
      height: 32,
    });
    const loadedImages = [input(1), input(2)];
    const loadedMask = input(3);
    const openai = fakeProvider("openai", succeed);
    const loaded: Array<{ sources: ImageSource[]; param: string }> = [];
    const { service } = harness(
      { openai },
      {
        async loadInputs(sources, param) {
          loaded.push({ sources, param });
          return param === "mask" ? [loadedMask] : loadedImages;
        },
      },
    );
    const multipart = Buffer.from("multipart bytes");
    const request: ImageJobRequest = {
      model: "gpt-image-1",
      prompt: "add a hat",
      image: ["https://example.test/a.png", multipart],
      mask: "data:image/png;base64,AAAA",
      n: 2,
    };
    await service.generate(PRINCIPAL, request, signal());
    assert.deepEqual(
      loaded.sort((a, b) => a.param.localeCompare(b.param)),
      [
        { sources: ["https://example.test/a.png", multipart], param: "image" },
        { sources: ["data:image/png;base64,AAAA"], param: "mask" },
      ],
    );
    const call = openai.calls[0];
    assert.ok(call);
    assert.equal(call.images, loadedImages);
    assert.equal(call.mask, loadedMask);
  });

  test("an input that cannot be loaded fails the request before any call", async () => {
    const openai = fakeProvider("openai", succeed);
    const { service, records } = harness(
      { openai },
      {
        async loadInputs() {
          throw invalidRequest("Invalid 'image': not a PNG, JPEG or WebP.", "image");
        },
      },
    );
    await rejectsWith(
      service.generate(
        PRINCIPAL,
        { model: "gpt-image-1", prompt: "add a hat", image: "AAAA" },
        signal(),
      ),
      { status: 400, code: "invalid_value", param: "image" },
    );
    assert.equal(openai.calls.length, 0);
    assert.equal(onlyRecord(records).status, "failed");
  });

  test("created is Unix seconds from the injected clock", async () => {
    const { service, records } = harness({ openai: fakeProvider("openai", succeed) });
    const result = await service.generate(
      PRINCIPAL,
      { model: "dall-e-2", prompt: "a lighthouse" },
      signal(),
    );
    assert.equal(result.created, 1_700_000_123);
    const record = onlyRecord(records);
    assert.equal(record.createdAt, NOW);
    assert.equal(record.latencyMs, 0);
    assert.equal(record.id, result.recordId);
    assert.equal(result.job.model.id, "dall-e-2");
  });

  test("without a model the default model is used", async () => {
    const local = fakeProvider("local", succeed);
    const { service, records } = harness({ local }, { defaultModel: "placeholder" });
    await service.generate(PRINCIPAL, { prompt: "a lighthouse" }, signal());
    assert.equal(local.calls[0]?.model, "placeholder");
    assert.equal(onlyRecord(records).model, "local/placeholder");
  });
});

describe("the real placeholder provider", () => {
  const generate = (service: ImageService) =>
    service.generate(
      PRINCIPAL,
      {
        model: "local/placeholder",
        prompt: "a lighthouse at dusk",
        n: 2,
        size: "640x480",
        response_format: "b64_json",
      },
      signal(),
    );

  test("n 2 at 640x480: two different images of that size, the same for the same prompt", async () => {
    const { service, records } = harness({ local: createLocalProvider() });
    const first = await generate(service);
    assert.equal(first.data.length, 2);
    const images = first.data.map((item) => Buffer.from(String(item.b64_json ?? ""), "base64"));
    for (const image of images) {
      const metadata = await sharp(image).metadata();
      assert.equal(metadata.format, "png");
      assert.equal(metadata.width, 640);
      assert.equal(metadata.height, 480);
    }
    const [one, two] = images as [Buffer, Buffer];
    assert.ok(!one.equals(two), "the two images differ");

    const again = await generate(service);
    assert.deepEqual(
      again.data.map((item) => item.b64_json),
      first.data.map((item) => item.b64_json),
    );
    assert.deepEqual(
      records.map((record) => record.status),
      ["succeeded", "succeeded"],
    );
  });
});

describe("time budgets", () => {
  /** The budget the provider was given for a request of `model`. */
  async function budgetFor(model: string, overrides: Partial<ImageServiceDeps> = {}) {
    const provider = fakeProvider(model, succeed);
    const { service } = harness({ openai: provider, google: provider }, overrides);
    await service.generate(PRINCIPAL, { model, prompt: "a lighthouse" }, signal());
    const budget = provider.calls[0]?.timeoutMs;
    assert.ok(budget !== undefined);
    return budget;
  }
  // What is left of the budget when the call starts: a few ms below it at most.
  const near = (actual: number, expected: number) =>
    assert.ok(actual <= expected && actual > expected - 1000, `${actual} vs ${expected}`);

  test("each model's comes from the catalog: minutes for GPT image, one for dall-e-2", async () => {
    near(await budgetFor("dall-e-2"), 60_000);
    near(await budgetFor("dall-e-3"), 120_000);
    near(await budgetFor("gpt-image-1"), 300_000);
    near(await budgetFor("gemini-3-pro-image-preview"), 180_000);
  });

  test("UPSTREAM_TIMEOUT_MS overrides every model's", async () => {
    near(await budgetFor("gpt-image-1", { upstreamTimeoutMs: 5000 }), 5000);
    near(await budgetFor("dall-e-2", { upstreamTimeoutMs: 5000 }), 5000);
  });

  test("a route's overrides both, for its model only", async () => {
    const routes = {
      routeFor: (model: string) => ({
        model,
        fallbacks: [],
        timeoutMs: model === "gpt-image-1" ? 900_000 : null,
        retryBillable: false,
      }),
    };
    near(await budgetFor("gpt-image-1", { routes, upstreamTimeoutMs: 5000 }), 900_000);
    near(await budgetFor("dall-e-2", { routes, upstreamTimeoutMs: 5000 }), 5000);
  });
});

describe("replies that are not images", () => {
  const html = Buffer.from("<html><body>502 Bad Gateway</body></html>").toString("base64");

  test("base64 that does not start like an image is an upstream_invalid_response", async () => {
    const provider = fakeProvider("openai", async (call) => base64Images(call.count, html));
    const { service, records } = harness({ openai: provider });
    await rejectsWith(
      service.generate(
        PRINCIPAL,
        { prompt: "a lighthouse", response_format: "b64_json" },
        signal(),
      ),
      { status: 502, code: "upstream_invalid_response" },
    );
    assert.equal(onlyRecord(records).errorCode, "upstream_invalid_response");
  });

  test("among real images, only the real ones are delivered and counted", async () => {
    const provider = fakeProvider("openai", async () => ({
      ...base64Images(1),
      images: [...base64Images(1).images, ...base64Images(1, html).images],
    }));
    const { service, records } = harness({ openai: provider });
    const result = await service.generate(
      PRINCIPAL,
      { prompt: "a lighthouse", n: 2, response_format: "b64_json" },
      signal(),
    );
    assert.equal(result.data.length, 1);
    assert.deepEqual(result.partial, {
      requested: 2,
      delivered: 1,
      errorCode: "upstream_invalid_response",
    });
    assert.equal(onlyRecord(records).imagesDelivered, 1);
  });
});

describe("a gone model's successor: covered when it is needed", () => {
  const SUCCESSOR_COST = 211_030;
  const RESERVED = 20_000;

  /**
   * dall-e-2, believed alive, answered `model_not_found` by its provider (unless `stillOffered`);
   * gpt-image-2, its successor, dearer than what dall-e-2 reserved. `events` is the order of
   * what happened.
   */
  function goneModelHarness(options: {
    reserved: number | null;
    topUpSucceeds: boolean;
    successorCost?: number;
    stillOffered?: boolean;
  }) {
    const events: string[] = [];
    const settledAgainst: Array<number | null> = [];
    const catalog = createCatalog();
    const openai = fakeProvider("openai", async (call) => {
      events.push(`call ${call.model}`);
      if (call.model === "dall-e-2" && !options.stillOffered) {
        throw upstreamFailed("The model `dall-e-2` does not exist.", {
          code: "upstream_model_not_found",
        });
      }
      return base64Images(call.count);
    });
    const { service, records } = harness(
      { openai },
      {
        catalog,
        servingModel: (model, serving) =>
          serving?.ifGone && model.id === "dall-e-2"
            ? {
                model: catalog.byId("gpt-image-2") as ModelSpec,
                retired: [{ model, because: "its provider no longer offers it" }],
              }
            : { model, retired: [] },
        accounting: {
          reserve: async (_principal, job, _id, _now, fallbacks = []) => {
            events.push(`reserve ${[job, ...fallbacks].map((each) => each.model.id).join(", ")}`);
            return options.reserved;
          },
          topUp: async (_principal, _id, toMicros) => {
            events.push(`top up to ${toMicros}`);
            return options.topUpSucceeds;
          },
          costCeiling: (job) =>
            job.model.id === "gpt-image-2" ? (options.successorCost ?? SUCCESSOR_COST) : RESERVED,
          async record({ record, reservedMicros }) {
            settledAgainst.push(reservedMicros);
            const complete = { ...record, costMicros: 0 };
            records.push(complete);
            return complete;
          },
        },
      },
    );
    const generate = () =>
      service.generate(
        PRINCIPAL,
        { model: "dall-e-2", prompt: "a lighthouse", response_format: "b64_json" },
        signal(),
      );
    return { generate, events, settledAgainst, records };
  }

  test("the model serves: only its own price is reserved, nothing is topped up", async () => {
    const alive = goneModelHarness({ reserved: RESERVED, topUpSucceeds: true, stillOffered: true });
    await alive.generate();
    assert.deepEqual(alive.events, ["reserve dall-e-2", "call dall-e-2"]);
    assert.deepEqual(alive.settledAgainst, [RESERVED]);
  });

  test("found gone: topped up to the successor's cost before it is called, settled against that", async () => {
    const gone = goneModelHarness({ reserved: RESERVED, topUpSucceeds: true });
    const result = await gone.generate();
    assert.equal(result.job.model.id, "gpt-image-2");
    assert.deepEqual(gone.events, [
      "reserve dall-e-2",
      "call dall-e-2",
      `top up to ${SUCCESSOR_COST}`,
      "call gpt-image-2",
    ]);
    assert.deepEqual(gone.settledAgainst, [SUCCESSOR_COST]);
  });

  test("found gone, the credit cannot cover the successor: not called, 402, settled against the first reservation", async () => {
    const gone = goneModelHarness({ reserved: RESERVED, topUpSucceeds: false });
    await rejectsWith(gone.generate(), { status: 402, code: "insufficient_quota" });
    assert.deepEqual(gone.events, [
      "reserve dall-e-2",
      "call dall-e-2",
      `top up to ${SUCCESSOR_COST}`,
    ]);
    assert.deepEqual(gone.settledAgainst, [RESERVED]);
    const record = onlyRecord(gone.records);
    assert.equal(record.status, "failed");
    assert.equal(record.errorCode, "insufficient_quota");
    assert.equal(record.model, "dall-e-2");
  });

  test("no top-up for a key without a balance, nor for a successor the reservation covers", async () => {
    const unlimited = goneModelHarness({ reserved: null, topUpSucceeds: false });
    assert.equal((await unlimited.generate()).job.model.id, "gpt-image-2");
    assert.deepEqual(unlimited.settledAgainst, [null]);
    const covered = goneModelHarness({
      reserved: RESERVED,
      topUpSucceeds: false,
      successorCost: RESERVED,
    });
    assert.equal((await covered.generate()).job.model.id, "gpt-image-2");
    for (const { events } of [unlimited, covered]) {
      assert.deepEqual(events, ["reserve dall-e-2", "call dall-e-2", "call gpt-image-2"]);
    }
  });
});
