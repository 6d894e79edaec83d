/**
 * The Black Forest Labs adapter through the real task engine, against the loopback simulator:
 * real HTTP, real polls on a small back-off, result images fetched from the simulator and
 * measured.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import {
  bflExtraOptionsOf,
  createBflTaskApi,
  KONTEXT_SIZES,
  taskStatusOf,
  trustedPollingUrl,
} from "../../src/providers/bfl.ts";
import { createTaskProvider } from "../../src/providers/tasks.ts";
import type { ImageProvider, ProviderCall, ProviderImage } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { inputImageOf, providerCall } from "../helpers/provider-call.ts";
import { type BflSimulator, startBflSimulator } from "../sim/bfl.ts";

const POLL = { firstMs: 20, factor: 1.5, maxMs: 100 };

async function fetchResult(url: string, signal: AbortSignal): Promise<Buffer> {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`result fetch answered ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

async function measure(image: ProviderImage | undefined) {
  assert.equal(image?.kind, "bytes");
  const metadata = await sharp(image.bytes).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height };
}

const call = (overrides: Partial<ProviderCall> = {}) =>
  providerCall({ model: "flux-2-pro", timeoutMs: 10_000, ...overrides });

describe("Black Forest Labs provider", () => {
  let sim: BflSimulator;
  let provider: ImageProvider;
  const providerWithKey = (apiKey: string) =>
    createTaskProvider(createBflTaskApi({ apiKey, baseURL: sim.baseURL }), {
      fetchResult,
      poll: POLL,
    });

  before(async () => {
    sim = await startBflSimulator();
    provider = providerWithKey(sim.apiKey);
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.tasks.clear();
    sim.delayMs = 0;
    sim.resultTtlMs = 600_000;
    sim.script(["Pending", "Ready"]);
  });

  it("submits, polls with back-off until Ready, and fetches the image at the size asked", async () => {
    sim.script(["Pending", "Pending", "Pending", "Ready"]);
    const result = await provider.generate(
      call({ size: "1024x768", outputFormat: "png", extra: { seed: 7, safety_tolerance: 4 } }),
    );
    assert.deepEqual(await measure(result.images[0]), { format: "png", width: 1024, height: 768 });
    const submit = sim.requests[0];
    assert.equal(submit?.method, "POST");
    assert.equal(submit?.path, "/v1/flux-2-pro");
    assert.equal(submit?.headers["x-key"], sim.apiKey);
    assert.deepEqual(submit?.body, {
      prompt: "a red fox in the snow",
      width: 1024,
      height: 768,
      output_format: "png",
      seed: 7,
      safety_tolerance: 4,
    });
    const [task] = sim.tasks.values();
    assert.equal(task?.polls.length, 4, "one poll per scripted status, none after Ready");
    const gaps = (task?.polls ?? []).slice(1).map((at, index) => at - (task?.polls[index] ?? 0));
    assert.ok(
      gaps.every((gap) => gap >= POLL.firstMs - 2),
      `no busy loop: ${gaps.join(", ")}`,
    );
    const polls = sim.requests.filter((request) => request.path.startsWith("/v1/get_result"));
    assert.ok(polls.every((request) => request.headers["x-key"] === sim.apiKey));
  });

  it("edits with Kontext: the image as input_image, the size as its aspect_ratio", async () => {
    const input = await inputImageOf(300, 200);
    const result = await provider.generate(
      call({ model: "flux-kontext-pro", size: "1248x832", images: [input] }),
    );
    assert.deepEqual(sim.requests[0]?.body, {
      prompt: "a red fox in the snow",
      aspect_ratio: "3:2",
      input_image: input.bytes.toString("base64"),
    });
    assert.equal(KONTEXT_SIZES["3:2"], "1248x832");
    assert.deepEqual(await measure(result.images[0]), { format: "jpeg", width: 1248, height: 832 });
  });

  it("sends FLUX.2 references as input_image_N, and flex's steps and guidance", async () => {
    const images = await Promise.all([inputImageOf(64, 64), inputImageOf(80, 48)]);
    await provider.generate(
      call({ model: "flux-2-flex", images, size: "512x512", extra: { steps: 30, guidance: 6.5 } }),
    );
    const body = sim.requests[0]?.body ?? {};
    assert.equal(body.input_image, images[0]?.bytes.toString("base64"));
    assert.equal(body.input_image_2, images[1]?.bytes.toString("base64"));
    assert.equal(body.steps, 30);
    assert.equal(body.guidance, 6.5);
  });

  it("a task that fails upstream is a 502 upstream_task_failed, and nothing is sent after", async () => {
    sim.script(["Pending", "Error"]);
    const error = await hubErrorOf(provider.generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_task_failed");
    assert.equal(sim.requests.length, 3, "submit and two polls");
  });

  for (const status of ["Request Moderated", "Content Moderated"] as const) {
    it(`'${status}' is a content-policy refusal`, async () => {
      sim.script(["Pending", status]);
      const error = await hubErrorOf(provider.generate(call()));
      assert.equal(error.status, 400);
      assert.equal(error.code, "content_policy_violation");
    });
  }

  it("a task that outlives the budget is a 504, polled a few times, then left alone", async () => {
    sim.script(["Pending"]);
    const error = await hubErrorOf(provider.generate(call({ timeoutMs: 400 })));
    assert.equal(error.status, 504);
    assert.equal(error.code, "upstream_timeout");
    // A poll cut short by the budget's end may reach the simulator just after the 504.
    await sleep(100);
    const sent = sim.requests.length;
    assert.ok(sim.polls >= 3 && sim.polls <= 12, `polls bounded by the back-off: ${sim.polls}`);
    await sleep(250);
    assert.equal(sim.requests.length, sent, "BFL has no cancel endpoint: nothing sent after");
  });

  it("a client that leaves ends the call with its reason, and polling stops", async () => {
    sim.script(["Pending"]);
    const controller = new AbortController();
    const reason = new Error("client gone");
    const pending = provider.generate(call({ signal: controller.signal }));
    while (sim.polls < 2) await sleep(5);
    controller.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
    // A poll the abort cut short may still be on its way to the simulator: let it land.
    await sleep(50);
    const sent = sim.requests.length;
    await sleep(200);
    assert.equal(sim.requests.length, sent);
  });

  it("a result whose signed URL has expired, or a task BFL forgot, is upstream_result_expired", async () => {
    sim.resultTtlMs = -60_000;
    const expired = await hubErrorOf(provider.generate(call()));
    assert.equal(expired.code, "upstream_result_expired");
    assert.equal(
      sim.requests.filter((request) => request.path.startsWith("/results/")).length,
      0,
      "an expired URL is not fetched",
    );
    sim.resultTtlMs = 600_000;
    sim.script(["Pending", "Task not found"]);
    assert.equal((await hubErrorOf(provider.generate(call()))).code, "upstream_result_expired");
  });

  it("a poll that fails on the way is tried again at the next turn", async () => {
    sim.script(["Pending", "Pending", "Ready"]);
    const submitted = provider.generate(call({ size: "256x256" }));
    while (sim.polls < 1) await sleep(2);
    sim.failNext({ status: 502, body: "<html>Bad Gateway</html>" });
    const result = await submitted;
    assert.deepEqual(await measure(result.images[0]), { format: "jpeg", width: 256, height: 256 });
  });

  it("a wrong key is upstream_auth_failed (BFL answers 403), and no task is polled", async () => {
    const error = await hubErrorOf(providerWithKey("bfl_wrong").generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_auth_failed");
    assert.equal(error.upstreamStatus, 403);
    assert.equal(sim.requests.length, 1);
  });

  it("a 429 on submit passes on its Retry-After; a 402 is the hub's account out of credit", async () => {
    sim.failNext({
      status: 429,
      body: { detail: "Too many active tasks" },
      headers: { "retry-after": "7" },
    });
    const limited = await hubErrorOf(provider.generate(call()));
    assert.equal(limited.status, 429);
    assert.equal(limited.code, "upstream_rate_limited");
    assert.equal(limited.retryAfterSeconds, 7);
    sim.failNext({ status: 402, body: { detail: "Insufficient credits" } });
    const broke = await hubErrorOf(provider.generate(call()));
    assert.equal(broke.code, "upstream_insufficient_credit");
    assert.equal(sim.polls, 0);
  });

  it("a forged polling_url is refused, and never sent the key", async () => {
    sim.pollingHost = "http://evil.test";
    const error = await hubErrorOf(provider.generate(call()));
    assert.equal(error.code, "upstream_invalid_response");
    assert.equal(sim.requests.length, 1);
  });

  it("refuses what the model cannot do before sending anything", async () => {
    const kontext = await hubErrorOf(
      provider.generate(call({ model: "flux-kontext-max", size: "1024x768" })),
    );
    assert.equal(kontext.param, "size");
    const image = await inputImageOf(64, 64);
    const masked = await hubErrorOf(provider.generate(call({ images: [image], mask: image })));
    assert.equal(masked.param, "mask");
    const pro11 = await hubErrorOf(
      provider.generate(call({ model: "flux-pro-1.1", images: [image] })),
    );
    assert.equal(pro11.param, "image");
    assert.equal((await hubErrorOf(provider.generate(call({ count: 2 })))).param, "n");
    assert.equal(sim.requests.length, 0);
  });
});

describe("Black Forest Labs helpers", () => {
  it("trusts https bfl.ai hosts and the base URL's origin only", () => {
    const base = "https://api.bfl.ai";
    const url = "https://api.eu2.bfl.ai/v1/get_result?id=1";
    assert.equal(trustedPollingUrl(url, base), url);
    assert.equal(
      trustedPollingUrl("http://127.0.0.1:9/v1/get_result", "http://127.0.0.1:9"),
      "http://127.0.0.1:9/v1/get_result",
    );
    for (const forged of [
      "http://api.bfl.ai/v1/get_result",
      "https://api.bfl.ai.evil.test/v1/get_result",
      "https://evilbfl.ai/v1/get_result",
      "https://user:pw@api.bfl.ai/v1/get_result",
      "http://169.254.169.254/latest/meta-data",
      "not a url",
    ]) {
      assert.throws(() => trustedPollingUrl(forged, base), /polling URL/, forged);
    }
  });

  it("reads unknown statuses as pending, and keeps the submit's warnings on the result", () => {
    assert.deepEqual(taskStatusOf({ status: "Queued" }, []), { kind: "pending" });
    const done = taskStatusOf(
      { status: "Ready", result: { sample: "https://delivery-eu1.bfl.ai/x.jpeg" } },
      ["w"],
    );
    assert.equal(done.kind, "done");
    assert.deepEqual(done.kind === "done" && done.result.warnings, ["w"]);
  });

  it("declares each model's extra options with its own safety range", () => {
    assert.deepEqual(Object.keys(bflExtraOptionsOf("flux-2-flex")), [
      "seed",
      "safety_tolerance",
      "prompt_upsampling",
      "steps",
      "guidance",
    ]);
    assert.equal(bflExtraOptionsOf("flux-2-max").safety_tolerance?.maximum, 5);
    assert.equal(bflExtraOptionsOf("flux-kontext-pro").safety_tolerance?.maximum, 6);
    assert.ok(bflExtraOptionsOf("flux-pro-1.1-ultra").raw);
  });
});
