/**
 * The fal adapter through the task engine, against the loopback queue simulator (test/sim/fal.ts):
 * real HTTP, a small real poll policy, result images fetched from the simulator and measured.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import sharp from "sharp";
import { type HubError, isHubError, upstreamFailed } from "../../src/errors.ts";
import { createFalTaskApi } from "../../src/providers/fal.ts";
import { createTaskProvider } from "../../src/providers/tasks.ts";
import type { ProviderCall } from "../../src/providers/types.ts";
import { providerCall } from "../helpers/provider-call.ts";
import { type FalSimulator, startFalSimulator } from "../sim/fal.ts";

const POLL = { firstMs: 20, factor: 1.5, maxMs: 100 };

/** Fetches a result URL as the hub's guarded fetch would: bytes, or an error for a dead link. */
async function fetchResult(url: string, signal: AbortSignal): Promise<Buffer> {
  const response = await fetch(url, { signal });
  if (!response.ok) {
    throw upstreamFailed(`The result image answered ${response.status}.`, {
      code: "upstream_result_expired",
    });
  }
  return Buffer.from(await response.arrayBuffer());
}

function falCall(overrides: Partial<ProviderCall> = {}): ProviderCall {
  return providerCall({ model: "fal-ai/flux/schnell", timeoutMs: 10_000, ...overrides });
}

const hubError = (code: string, status?: number) => (error: unknown) => {
  assert.ok(isHubError(error), `a HubError, not ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (status !== undefined) assert.equal(error.status, status);
  return true;
};

describe("fal adapter", () => {
  let sim: FalSimulator;
  const provider = (apiKey = sim.apiKey) =>
    createTaskProvider(createFalTaskApi({ apiKey, baseURL: sim.baseURL }), {
      fetchResult,
      poll: POLL,
    });
  const pathsAfter = (start: number) => sim.requests.slice(start).map((r) => r.method + r.path);

  before(async () => {
    sim = await startFalSimulator();
  });
  after(() => sim.close());
  beforeEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
    sim.foreignOrigin = undefined;
    sim.expireFiles(false);
  });

  it("submits, polls until COMPLETED, and delivers the images measured at the preset size", async () => {
    sim.nextTask({ states: ["queued", "queued", "running", "done"] });
    const result = await provider().generate(
      falCall({ count: 2, size: "1024x768", extra: { seed: 7, num_inference_steps: 4 } }),
    );
    const [submit] = sim.requests;
    assert.equal(submit?.method, "POST");
    assert.equal(submit?.path, "/fal-ai/flux/schnell");
    assert.equal(submit?.headers.authorization, `Key ${sim.apiKey}`);
    assert.deepEqual(submit?.body, {
      seed: 7,
      num_inference_steps: 4,
      prompt: "a red fox in the snow",
      output_format: "png",
      enable_safety_checker: true,
      image_size: "landscape_4_3",
      num_images: 2,
    });
    const [task] = sim.tasks.values();
    assert.equal(task?.polls, 4, "one poll per step, none after COMPLETED");
    const polls = sim.requests.filter((r) => r.path.endsWith("/status?logs=0"));
    assert.equal(polls.length, 4);
    assert.ok(polls.every((r) => r.path.startsWith(`/fal-ai/flux/requests/${task?.id}`)));
    assert.equal(result.images.length, 2);
    for (const image of result.images) {
      assert.equal(image.kind, "bytes");
      const metadata = await sharp(image.bytes).metadata();
      assert.deepEqual([metadata.width, metadata.height, metadata.format], [1024, 768, "png"]);
    }
  });

  it("polls with back-off, never in a busy loop", async () => {
    sim.nextTask({ states: ["queued", "queued", "queued", "queued", "running", "done"] });
    await provider().generate(falCall({ size: "512x512" }));
    const times = sim.requests.filter((r) => r.path.includes("/status")).map((r) => r.at);
    const gaps = times.slice(1).map((at, index) => at - (times[index] ?? 0));
    assert.equal(times.length, 6);
    assert.ok(
      gaps.every((gap) => gap >= POLL.firstMs * 0.9),
      `gaps ${gaps.map(Math.round)}`,
    );
  });

  it("sends FLUX.2 [pro] its own options, without num_images", async () => {
    sim.nextTask({ states: ["running", "done"] });
    const result = await provider().generate(
      falCall({
        model: "fal-ai/flux-2-pro",
        size: "576x1024",
        outputFormat: "jpeg",
        style: "vivid",
        extra: { safety_tolerance: "3" },
      }),
    );
    const body = sim.requests[0]?.body as Record<string, unknown>;
    assert.equal(body.image_size, "portrait_16_9");
    assert.equal(body.safety_tolerance, "3");
    assert.equal("num_images" in body, false);
    assert.deepEqual(result.warnings, [
      "fal-ai/flux-2-pro takes no 'style'; 'vivid' was not sent.",
    ]);
    const image = result.images[0];
    assert.equal(image?.kind, "bytes");
    const metadata = await sharp(image.bytes).metadata();
    assert.deepEqual([metadata.width, metadata.height, metadata.format], [576, 1024, "jpeg"]);
  });

  it("a failed task is a 502 and is not cancelled", async () => {
    sim.nextTask({ states: ["running", "failed"] });
    await assert.rejects(provider().generate(falCall()), hubError("upstream_error", 502));
    assert.equal([...sim.tasks.values()].at(-1)?.cancelled, false);
  });

  it("a task refused by the content checker is a content-policy violation", async () => {
    sim.nextTask({ states: ["queued", "moderated"] });
    await assert.rejects(provider().generate(falCall()), hubError("content_policy_violation", 400));
  });

  it("an image the safety checker flagged (black) is never delivered", async () => {
    sim.nextTask({ states: ["running", "nsfw"] });
    await assert.rejects(provider().generate(falCall()), hubError("content_policy_violation", 400));
    const fetched = sim.requests.filter((r) => r.path.startsWith("/files/"));
    assert.equal(fetched.length, 0, "the black image was not even fetched");
  });

  it("a task that outlives the budget is cancelled upstream, 504, and nothing is sent after", async () => {
    sim.nextTask({ states: ["queued"] });
    await assert.rejects(
      provider().generate(falCall({ timeoutMs: 300 })),
      hubError("upstream_timeout", 504),
    );
    const task = [...sim.tasks.values()].at(-1);
    assert.equal(task?.cancelled, true);
    const last = sim.requests.at(-1);
    assert.equal(`${last?.method} ${last?.path}`, `PUT /fal-ai/flux/requests/${task?.id}/cancel`);
    assert.ok((task?.polls ?? 0) <= 300 / POLL.firstMs, `few polls: ${task?.polls}`);
    const seen = sim.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(sim.requests.length, seen, "no request after the cancel");
  });

  it("a client that leaves mid-task cancels it upstream", async () => {
    sim.nextTask({ states: ["queued", "queued", "queued", "queued", "queued", "done"] });
    const controller = new AbortController();
    const reason = new Error("client gone");
    const pending = provider().generate(falCall({ signal: controller.signal }));
    setTimeout(() => controller.abort(reason), 60);
    await assert.rejects(pending, (error) => error === reason);
    const task = [...sim.tasks.values()].at(-1);
    assert.equal(task?.cancelled, true);
    assert.ok((task?.polls ?? 0) < 6, "stopped before the task was done");
  });

  it("an expired result image is upstream_result_expired", async () => {
    sim.nextTask({ states: ["done"] });
    sim.expireFiles();
    await assert.rejects(provider().generate(falCall()), hubError("upstream_result_expired", 502));
  });

  it("a result fal no longer holds is upstream_result_expired", async () => {
    sim.nextTask({ states: ["running", "expired"] });
    await assert.rejects(provider().generate(falCall()), hubError("upstream_result_expired", 502));
  });

  it("a wrong key is the hub's credentials refused", async () => {
    const start = sim.requests.length;
    await assert.rejects(
      provider("fal-wrong-key:000").generate(falCall()),
      (error) =>
        hubError("upstream_auth_failed", 502)(error) && (error as HubError).upstreamStatus === 401,
    );
    assert.deepEqual(pathsAfter(start), ["POST/fal-ai/flux/schnell"]);
  });

  it("429 on submit passes on Retry-After, and nothing is polled", async () => {
    sim.failNext({
      status: 429,
      body: { detail: "Too many concurrent requests" },
      headers: { "retry-after": "7" },
    });
    await assert.rejects(provider().generate(falCall()), (error) => {
      hubError("upstream_rate_limited", 429)(error);
      assert.equal((error as HubError).retryAfterSeconds, 7);
      return true;
    });
    assert.equal(sim.requests.length, 1);
  });

  it("a validation error is the client's 400, with fal's message", async () => {
    await assert.rejects(
      provider().generate(falCall({ extra: { num_inference_steps: 40 } })),
      (error) => {
        hubError("upstream_rejected", 400)(error);
        assert.match((error as HubError).message, /num_inference_steps: Input should be between/);
        return true;
      },
    );
  });

  it("never follows task URLs off the base URL's origin (the key would go there)", async () => {
    sim.foreignOrigin = "http://169.254.169.254";
    await assert.rejects(
      provider().generate(falCall()),
      hubError("upstream_invalid_response", 502),
    );
    assert.equal(sim.requests.length, 1, "only the submit was sent");
  });

  it("refuses a size that is not one of fal's presets before sending anything", async () => {
    await assert.rejects(
      provider().generate(falCall({ size: "1536x1024" })),
      hubError("invalid_value"),
    );
    assert.equal(sim.requests.length, 0);
  });

  it("a passing fault on a poll is looked at again, not the task's end", async () => {
    sim.nextTask({ states: ["queued", "queued", "done"] });
    const provider503 = createTaskProvider(
      createFalTaskApi({ apiKey: sim.apiKey, baseURL: sim.baseURL }),
      {
        fetchResult,
        poll: POLL,
        sleep: async (ms, signal) => {
          if (sim.requests.length === 2) sim.failNext({ status: 503, body: { detail: "busy" } });
          await new Promise((resolve) => setTimeout(resolve, ms));
          signal.throwIfAborted();
        },
      },
    );
    const result = await provider503.generate(falCall());
    assert.equal(result.images.length, 1);
    assert.ok(sim.requests.some((r) => r.reply?.status === 503));
  });
});
