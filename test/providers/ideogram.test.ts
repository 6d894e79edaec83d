/**
 * The Ideogram adapter through the task engine, against the loopback simulator: what is sent,
 * how a task's life is read, and that nothing is sent once a call has ended.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { upstreamFailed } from "../../src/errors.ts";
import { createIdeogramTaskApi } from "../../src/providers/ideogram.ts";
import { createTaskProvider } from "../../src/providers/tasks.ts";
import type { ProviderCall, ProviderImage } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { inputImageOf, providerCall } from "../helpers/provider-call.ts";
import { type IdeogramSimulator, SAFETY_MESSAGE, startIdeogramSimulator } from "../sim/ideogram.ts";

const POLL = { firstMs: 20, factor: 1.5, maxMs: 100 };

async function measure(image: ProviderImage | undefined) {
  assert.equal(image?.kind, "bytes");
  const metadata = await sharp(image.bytes).metadata();
  return { format: metadata.format, width: metadata.width, height: metadata.height };
}

describe("Ideogram provider", () => {
  let sim: IdeogramSimulator;
  const fetched: string[] = [];

  /** The hub's guarded fetch, played by plain fetch against the loopback simulator. */
  async function fetchResult(url: string, signal: AbortSignal): Promise<Buffer> {
    fetched.push(url);
    const response = await fetch(url, { signal });
    if (!response.ok) throw upstreamFailed(`result answered ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  }

  function provider(apiKey = sim.apiKey) {
    const api = createIdeogramTaskApi({ apiKey, baseURL: sim.baseURL });
    return createTaskProvider(api, { fetchResult, poll: POLL });
  }

  const call = (overrides: Partial<ProviderCall> = {}) =>
    providerCall({ model: "ideogram-3", timeoutMs: 10_000, ...overrides });

  /** Requests to the API itself (submits and polls), not result downloads. */
  const apiRequests = () => sim.requests.filter((request) => request.path.startsWith("/v2/"));
  /** The generation id the simulator gave the `index`th submit. */
  function idOf(index = 0): string {
    const body = apiRequests().filter((r) => r.method === "POST")[index]?.reply?.body;
    return (body as { generation_id?: string } | undefined)?.generation_id ?? "";
  }

  before(async () => {
    sim = await startIdeogramSimulator();
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.delayMs = 0;
    sim.linkTtlMs = 60_000;
    sim.script(["pending", "pending", "completed"]);
    fetched.length = 0;
  });

  it("submits asynchronously, polls until done and fetches images of the size asked", async () => {
    sim.script(["pending", "pending", "pending", "completed"]);
    const result = await provider().generate(
      call({
        count: 2,
        size: "1344x768",
        quality: "quality",
        extra: { negative_prompt: "blur", seed: 42, style_type: "design", magic_prompt: "off" },
      }),
    );

    const [submit] = apiRequests();
    assert.equal(submit?.path, "/v2/image/generate/ideogram-3");
    assert.equal(submit?.headers["api-key"], sim.apiKey);
    assert.equal(submit?.headers.authorization, undefined, "the key travels as Api-Key only");
    assert.deepEqual(submit?.fields, {
      prompt: "a red fox in the snow",
      num_images: 2,
      async: true,
      resolution: "1344x768",
      rendering_speed: "quality",
      negative_prompt: "blur",
      seed: 42,
      style_type: "design",
      magic_prompt: "off",
    });
    assert.equal(sim.polls(idOf()), 4, "one poll per step, none after done");
    assert.equal(result.images.length, 2);
    for (const image of result.images) {
      assert.deepEqual(await measure(image), { format: "png", width: 1344, height: 768 });
      assert.equal(image.revisedPrompt, "a red fox in the snow, magic");
    }
    assert.equal(fetched.length, 2);
    assert.deepEqual(result.warnings, []);
  });

  it("remixes an input image: multipart with the image and image_weight", async () => {
    sim.script(["completed"]);
    const input = await inputImageOf(640, 480, "jpeg");
    const result = await provider().generate(
      call({ images: [input], size: "1024x1024", extra: { image_weight: 70 } }),
    );
    const [submit] = apiRequests();
    assert.equal(submit?.path, "/v2/image/remix/ideogram-3");
    assert.match(String(submit?.headers["content-type"]), /^multipart\/form-data; boundary=/);
    assert.deepEqual(submit?.fields, {
      prompt: "a red fox in the snow",
      num_images: "1",
      async: "true",
      resolution: "1024x1024",
      image_weight: "70",
    });
    assert.equal(submit?.files[0]?.field, "image");
    assert.equal(submit?.files[0]?.contentType, "image/jpeg");
    assert.deepEqual(submit?.files[0]?.bytes, input.bytes);
    assert.deepEqual(await measure(result.images[0]), { format: "png", width: 1024, height: 1024 });
  });

  it("a failed task is a 502 and is not polled again", async () => {
    sim.script(["pending", "failed"]);
    const error = await hubErrorOf(provider().generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_task_failed");
    assert.equal(sim.polls(idOf()), 2);
  });

  it("a moderated task, or one whose every image is withheld, is a content-policy refusal", async () => {
    sim.script(["pending", "moderated"]);
    const moderated = await hubErrorOf(provider().generate(call()));
    assert.equal(moderated.code, "content_policy_violation");

    sim.script(["unsafe"]);
    const unsafe = await hubErrorOf(provider().generate(call({ count: 2 })));
    assert.equal(unsafe.code, "content_policy_violation");
    assert.equal(fetched.length, 0, "nothing to fetch");
  });

  it("drops withheld images and says so", async () => {
    sim.script(["partly-unsafe"]);
    const result = await provider().generate(call({ count: 3 }));
    assert.equal(result.images.length, 2);
    assert.match(result.warnings.join(" "), /withheld 1 of 3 images/);
  });

  it("a prompt refused at submit (422 safety) is a content-policy refusal, never polled", async () => {
    const error = await hubErrorOf(provider().generate(call({ prompt: "forbidden-content" })));
    assert.equal(error.code, "content_policy_violation");
    assert.equal(error.message, SAFETY_MESSAGE);
    assert.equal(apiRequests().length, 1);
  });

  it("a task that outlives the budget answers 504, and nothing is sent after", async () => {
    sim.script(["pending"]);
    const error = await hubErrorOf(provider().generate(call({ timeoutMs: 300 })));
    assert.equal(error.status, 504);
    assert.equal(error.code, "upstream_timeout");
    // A poll the budget cut short may still be on its way to the simulator: let it land.
    await sleep(50);
    const seen = sim.requests.length;
    assert.ok(sim.polls(idOf()) <= 8, `polls stay few: ${sim.polls(idOf())}`);
    await sleep(250);
    assert.equal(sim.requests.length, seen, "no cancel endpoint exists, and no poll follows");
  });

  it("a client that leaves mid-task ends the call with its reason, and polling stops", async () => {
    sim.script(["pending"]);
    const controller = new AbortController();
    const reason = new Error("client gone");
    const running = provider().generate(call({ signal: controller.signal }));
    while (apiRequests().filter((r) => r.method === "GET").length < 2) await sleep(5);
    controller.abort(reason);
    await assert.rejects(running, (error) => error === reason);
    await sleep(50);
    const seen = sim.requests.length;
    await sleep(200);
    assert.equal(sim.requests.length, seen);
  });

  it("an expired result link is upstream_result_expired, and is not fetched", async () => {
    sim.script(["expired"]);
    const error = await hubErrorOf(provider().generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_result_expired");
    assert.equal(fetched.length, 0);
  });

  it("polls with back-off, never in a busy loop", async () => {
    sim.script(Array.from({ length: 40 }, () => "pending" as const));
    const started = performance.now();
    await hubErrorOf(provider().generate(call({ timeoutMs: 600 })));
    const elapsed = performance.now() - started;
    const polls = sim.polls(idOf());
    // 20, 30, 45, 67.5, then 100 ms apart: about 9 polls in 600 ms, never one per few ms.
    assert.ok(polls >= 4 && polls <= 10, `${polls} polls in ${Math.round(elapsed)} ms`);
  });

  it("a poll answered 429 waits as told and polls again; the task still completes", async () => {
    sim.script(["pending", "completed"]);
    const api = createIdeogramTaskApi({ apiKey: sim.apiKey, baseURL: sim.baseURL });
    const task = await api.submit(call(), {
      signal: new AbortController().signal,
      timeoutMs: 5000,
    });
    sim.failNext({
      status: 429,
      body: { error: "Too many requests." },
      headers: { "retry-after": "2" },
    });
    const context = { signal: new AbortController().signal, timeoutMs: 5000 };
    assert.deepEqual(await api.poll(task, context), { kind: "pending", retryAfterMs: 2000 });
    assert.equal((await api.poll(task, context)).kind, "pending");
    assert.equal((await api.poll(task, context)).kind, "done");
  });

  it("a wrong key is a 502 upstream_auth_failed, with nothing polled", async () => {
    const error = await hubErrorOf(provider("wrong-key-0123456789").generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_auth_failed");
    assert.equal(error.upstreamStatus, 401);
    assert.equal(apiRequests().length, 1);
  });

  it("a 429 on submit is passed on with its Retry-After", async () => {
    sim.failNext({
      status: 429,
      body: { error: "Too many in-flight requests.", reject_reason: "inflight_limit" },
      headers: { "retry-after": "7" },
    });
    const error = await hubErrorOf(provider().generate(call()));
    assert.equal(error.status, 429);
    assert.equal(error.code, "upstream_rate_limited");
    assert.equal(error.retryAfterSeconds, 7);
  });

  it("402 (the hub's balance) is an upstream failure, not the client's", async () => {
    sim.failNext({
      status: 402,
      body: { error: "Insufficient funds.", reject_reason: "insufficient_funds" },
    });
    const error = await hubErrorOf(provider().generate(call()));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_insufficient_credit");
  });

  it("refuses what Ideogram 3.0 cannot do before sending anything", async () => {
    const mask = await inputImageOf(64, 64);
    const cases: [Partial<ProviderCall>, string][] = [
      [{ size: "1000x1000" }, "size"],
      [{ images: [mask], mask }, "mask"],
      [{ quality: "hd" }, "quality"],
      [{ extra: { style_preset: "not_a_preset" } }, "extra.style_preset"],
    ];
    for (const [overrides, param] of cases) {
      const error = await hubErrorOf(provider().generate(call(overrides)));
      assert.equal(error.status, 400);
      assert.equal(error.param, param);
    }
    assert.equal(sim.requests.length, 0);
  });

  it("reports hints it cannot honour as warnings", async () => {
    sim.script(["completed"]);
    const result = await provider().generate(
      call({ style: "vivid", background: "transparent", extra: { image_weight: 30 } }),
    );
    assert.equal(result.warnings.length, 3);
    assert.match(result.warnings.join(" "), /'style'.*'background'.*image_weight/s);
  });
});
