/**
 * The Replicate adapter through the task engine, against the loopback simulator (test/sim/
 * replicate.ts): a real poll policy, and result files fetched over HTTP from the simulator's
 * second origin, decoded and measured.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import sharp from "sharp";
import { HubError, upstreamFailed } from "../../src/errors.ts";
import { KIND_INFO } from "../../src/providers/kinds.ts";
import {
  createReplicateTaskApi,
  FLUX_ASPECT_SIZES,
  type ReplicateTaskApiOptions,
} from "../../src/providers/replicate.ts";
import { createTaskProvider } from "../../src/providers/tasks.ts";
import type { ProviderImage } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { providerCall } from "../helpers/provider-call.ts";
import { E005, type ReplicateSimulator, startReplicateSimulator } from "../sim/replicate.ts";

const POLL = { firstMs: 20, factor: 1.5, maxMs: 100 };

/** The hub's guarded fetch, reduced to what matters here: the bytes, or a 502 when it fails. */
async function fetchResult(url: string, signal: AbortSignal): Promise<Buffer> {
  const response = await fetch(url, { signal });
  if (!response.ok) {
    throw upstreamFailed(`The result URL answered ${response.status}.`, {
      code: response.status === 404 ? "upstream_result_expired" : "upstream_error",
    });
  }
  return Buffer.from(await response.arrayBuffer());
}

async function measure(image: ProviderImage | undefined) {
  assert.equal(image?.kind, "bytes");
  const metadata = await sharp(image.bytes).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height };
}

const FLUX = "black-forest-labs/flux-schnell";
const call = (overrides: Parameters<typeof providerCall>[0] = {}) =>
  providerCall({ model: FLUX, size: "1024x1024", timeoutMs: 10_000, ...overrides });

describe("Replicate provider", () => {
  let sim: ReplicateSimulator;
  const providerFor = (options: Partial<ReplicateTaskApiOptions> = {}) =>
    createTaskProvider(
      createReplicateTaskApi({ apiKey: sim.apiKey, baseURL: sim.baseURL, ...options }),
      {
        poll: POLL,
        fetchResult,
      },
    );
  /** The `input` of the last prediction created. */
  const lastInput = () => {
    const create = sim.requests
      .filter((request) => request.method === "POST" && !request.path.endsWith("/cancel"))
      .at(-1);
    return (create?.body?.input ?? {}) as Record<string, unknown>;
  };
  const apiCalls = () =>
    sim.requests.map(
      (request) => `${request.method} ${request.path.replace(/[a-f0-9]{26}/, "{id}")}`,
    );

  before(async () => {
    sim = await startReplicateSimulator();
  });
  after(() => sim.close());
  afterEach(() => sim.reset());

  it("creates an official-model prediction, polls it to the end and fetches every image", async () => {
    sim.script = ["starting", "processing", "processing", "succeeded"];
    const result = await providerFor().generate(
      call({
        size: "1344x768",
        count: 2,
        outputFormat: "webp",
        outputCompression: 90,
        extra: { seed: 7, go_fast: false },
      }),
    );

    const create = sim.requests[0];
    assert.equal(create?.path, `/v1/models/${FLUX}/predictions`);
    assert.equal(create?.headers.authorization, `Bearer ${sim.apiKey}`);
    assert.equal(create?.headers["cancel-after"], "15s", "the call's 10 s budget, and 5 s more");
    assert.match(String(create?.headers.prefer), /^wait=\d+$/);
    assert.deepEqual(create?.body, {
      input: {
        seed: 7,
        go_fast: false,
        prompt: "a red fox in the snow",
        aspect_ratio: "16:9",
        num_outputs: 2,
        output_format: "webp",
        output_quality: 90,
      },
    });
    assert.deepEqual(apiCalls(), [
      `POST /v1/models/${FLUX}/predictions`,
      ...Array(4).fill("GET /v1/predictions/{id}"),
    ]);
    assert.equal(sim.polls, 4, "one poll per state, none more");
    assert.equal(result.images.length, 2);
    for (const image of result.images) {
      assert.deepEqual(await measure(image), { format: "webp", width: 1344, height: 768 });
    }
    assert.equal(sim.deliveryRequests.length, 2, "each result file fetched once");
    assert.deepEqual(result.warnings, []);
  });

  it("answers from the sync create when the model finishes within Prefer: wait", async () => {
    sim.finishOnWait = true;
    const result = await providerFor().generate(call({ outputFormat: "png" }));
    assert.equal(sim.polls, 0, "the finished prediction is not read again");
    assert.equal(sim.requests.length, 1);
    assert.deepEqual(await measure(result.images[0]), { format: "png", width: 1024, height: 1024 });
  });

  it("leaves Prefer out when too little of the budget is left for a sync wait", async () => {
    await providerFor().generate(call({ timeoutMs: 2500 }));
    assert.equal(sim.requests[0]?.headers.prefer, undefined);
  });

  it("makes every FLUX size as its aspect ratio", async () => {
    sim.script = ["succeeded"];
    for (const [ratio, size] of Object.entries(FLUX_ASPECT_SIZES)) {
      const result = await providerFor().generate(call({ size: size as `${number}x${number}` }));
      assert.equal(lastInput().aspect_ratio, ratio);
      const [width, height] = size.split("x").map(Number);
      assert.deepEqual(await measure(result.images[0]), { format: "png", width, height });
    }
  });

  it("asks FLUX 1.1 Pro for the exact size, and Ideogram v3 for its resolution", async () => {
    sim.script = ["processing", "succeeded"];
    const pro = await providerFor().generate(
      call({
        model: "black-forest-labs/flux-1.1-pro",
        size: "1440x1440",
        outputFormat: "jpeg",
        extra: { safety_tolerance: 5 },
      }),
    );
    assert.deepEqual(sim.requests[0]?.body?.input, {
      safety_tolerance: 5,
      prompt: "a red fox in the snow",
      aspect_ratio: "custom",
      width: 1440,
      height: 1440,
      output_format: "jpg",
    });
    assert.deepEqual(await measure(pro.images[0]), { format: "jpeg", width: 1440, height: 1440 });

    sim.reset();
    sim.script = ["processing", "succeeded"];
    const ideogram = await providerFor().generate(
      call({
        model: "ideogram-ai/ideogram-v3-turbo",
        size: "1312x736",
        quality: "hd",
        extra: { magic_prompt_option: "Off" },
      }),
    );
    assert.deepEqual(sim.requests[0]?.body?.input, {
      magic_prompt_option: "Off",
      prompt: "a red fox in the snow",
      resolution: "1312x736",
    });
    assert.deepEqual(await measure(ideogram.images[0]), {
      format: "png",
      width: 1312,
      height: 736,
    });
    assert.deepEqual(ideogram.warnings, [
      "ideogram-ai/ideogram-v3-turbo takes no 'quality'; 'hd' was not sent.",
    ]);
  });

  it("refuses sizes and counts the model cannot make, before anything is sent", async () => {
    const pro = providerFor();
    await assert.rejects(
      pro.generate(call({ model: "black-forest-labs/flux-1.1-pro", size: "1536x640" })),
      (error) => error instanceof HubError && error.param === "size",
    );
    await assert.rejects(
      pro.generate(call({ model: "ideogram-ai/ideogram-v3-turbo", count: 2 })),
      (error) => error instanceof HubError && error.param === "n",
    );
    assert.equal(sim.requests.length, 0);
  });

  it("runs a pinned version through POST /v1/predictions", async () => {
    const version = `someone/sdxl-lora:${"ab12".repeat(16)}`;
    sim.script = ["succeeded"];
    const result = await providerFor().generate(call({ model: version }));
    assert.equal(sim.requests[0]?.path, "/v1/predictions");
    assert.equal(sim.requests[0]?.body?.version, version);
    assert.equal(result.images.length, 1);
  });

  it("a failed prediction is an upstream error, and is not cancelled", async () => {
    sim.script = ["starting", "processing", "failed"];
    const error = await hubErrorOf(providerFor().generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_error");
    assert.match(error.message, /E1001/);
    assert.deepEqual(sim.cancels, []);
  });

  it("a prediction the safety checker refused is a content-policy violation", async () => {
    sim.script = ["processing", "nsfw"];
    const error = await hubErrorOf(providerFor().generate(call()));
    assert.equal(error.status, 400);
    assert.equal(error.code, "content_policy_violation");
    assert.match(error.message, /flagged as sensitive/);
    assert.ok(E005.includes("E005"));
    assert.deepEqual(sim.cancels, []);
  });

  it("delivers the images a safety checker left, with a warning", async () => {
    sim.script = ["partial"];
    const result = await providerFor().generate(call({ count: 3 }));
    assert.equal(result.images.length, 2);
    assert.deepEqual(result.warnings, ["Replicate made 2 of the 3 images asked."]);
  });

  it("a task that outlives the budget is cancelled upstream, answers 504, and nothing follows", async () => {
    sim.script = ["starting", "processing"];
    const error = await hubErrorOf(providerFor().generate(call({ timeoutMs: 400 })));
    assert.equal(error.status, 504);
    assert.equal(error.code, "upstream_timeout");
    assert.equal(sim.cancels.length, 1);
    assert.equal(sim.requests.at(-1)?.path, `/v1/predictions/${sim.cancels[0]}/cancel`);
    const count = sim.requests.length;
    assert.ok(sim.polls <= 10, `polls back off: ${sim.polls} in 400 ms`);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(sim.requests.length, count, "no request after the cancel");
  });

  it("a client that leaves mid-task cancels the prediction upstream", async () => {
    sim.script = ["starting", "processing"];
    const controller = new AbortController();
    const reason = new Error("client gone");
    setTimeout(() => controller.abort(reason), 120);
    await assert.rejects(
      providerFor().generate(call({ signal: controller.signal })),
      (error) => error === reason,
    );
    assert.equal(sim.cancels.length, 1);
    assert.ok(sim.polls >= 1);
  });

  it("output removed upstream is an expired result; so is a file URL that is gone", async () => {
    sim.script = ["processing", "expired"];
    const removed = await hubErrorOf(providerFor().generate(call()));
    assert.equal(removed.code, "upstream_result_expired");
    assert.equal(sim.deliveryRequests.length, 0);

    sim.reset();
    sim.script = ["succeeded"];
    sim.filesExpired = true;
    const gone = await hubErrorOf(providerFor().generate(call()));
    assert.equal(gone.code, "upstream_result_expired");
    assert.equal(sim.deliveryRequests.length, 1);
    assert.deepEqual(sim.cancels, [], "a finished prediction is not cancelled");
  });

  it("never follows urls.get or urls.cancel to another origin", async () => {
    sim.urlsOrigin = sim.deliveryURL;
    sim.script = ["starting", "processing"];
    await providerFor()
      .generate(call({ timeoutMs: 300 }))
      .catch(() => {});
    assert.equal(sim.deliveryRequests.length, 0, "nothing was sent to the other origin");
    assert.ok(sim.polls >= 1);
    assert.equal(sim.cancels.length, 1, "the cancel went to the API, by id");
  });

  it("keeps polling through a passing server error", async () => {
    sim.script = ["starting", "processing", "succeeded"];
    const provider = providerFor();
    const done = provider.generate(call());
    // Once the create is answered, the next request is a poll.
    while (sim.requests[0]?.reply === undefined)
      await new Promise((resolve) => setTimeout(resolve, 2));
    sim.failNext({
      status: 502,
      body: "<html>Bad gateway</html>",
      headers: { "content-type": "text/html" },
    });
    const result = await done;
    assert.equal(result.images.length, 1);
    assert.ok(sim.requests.some((request) => request.reply?.status === 502));
  });

  it("a refused key is the hub's credentials, and no prediction is polled", async () => {
    const provider = KIND_INFO.replicate.create({
      id: "replicate",
      apiKey: "r8_wrong0000000000000000",
      baseURL: sim.baseURL,
      options: {},
      fetchResult,
    });
    const error = await hubErrorOf(provider.generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_auth_failed");
    assert.equal(error.upstreamStatus, 401);
    assert.equal(sim.requests.length, 1);
  });

  it("passes a 429 on create on with its Retry-After, or the wait its detail names", async () => {
    sim.failNext({
      status: 429,
      body: { detail: "Request was throttled. Your rate limit resets in ~7s.", status: 429 },
      headers: { "retry-after": "7" },
    });
    const withHeader = await hubErrorOf(providerFor().generate(call()));
    assert.equal(withHeader.status, 429);
    assert.equal(withHeader.code, "upstream_rate_limited");
    assert.equal(withHeader.retryAfterSeconds, 7);

    sim.failNext({
      status: 429,
      body: { detail: "Request was throttled. Your rate limit resets in ~30s.", status: 429 },
    });
    const fromDetail = await hubErrorOf(providerFor().generate(call()));
    assert.equal(fromDetail.retryAfterSeconds, 30);
    assert.equal(sim.polls, 0);
  });

  it("reads Replicate's problem+json: 422 names the field, 402 is the hub's credit", async () => {
    const invalid = await hubErrorOf(
      providerFor().generate(call({ extra: { num_inference_steps: 28 } })),
    );
    assert.equal(invalid.status, 400);
    assert.match(invalid.message, /input\.num_inference_steps: Must be less than or equal to 4/);

    sim.failNext({
      status: 402,
      body: {
        title: "Insufficient credit",
        detail: "You have insufficient credit to run this model.",
        status: 402,
      },
    });
    const credit = await hubErrorOf(providerFor().generate(call()));
    assert.equal(credit.status, 502);
    assert.equal(credit.code, "upstream_insufficient_credit");
  });
});
