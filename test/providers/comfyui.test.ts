/**
 * The comfyui provider through the task engine, against the loopback ComfyUI simulator: what it
 * sends, how it polls, how it cancels, and the images it returns, decoded and measured.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import {
  checkComfyWorkflow,
  createComfyUITaskApi,
  nodeErrorSummary,
} from "../../src/providers/comfyui.ts";
import { createTaskProvider } from "../../src/providers/tasks.ts";
import type { ImageProvider, ProviderImage } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { inputImageOf, providerCall } from "../helpers/provider-call.ts";
import { type ComfyUISimulator, SDXL_WORKFLOW, startComfyUISimulator } from "../sim/comfyui.ts";

const TOKEN = "comfy-proxy-token-0123456789";
const POLL = { firstMs: 20, factor: 1.5, maxMs: 100 };

async function measure(image: ProviderImage | undefined) {
  assert.equal(image?.kind, "bytes");
  const metadata = await sharp(image.bytes).metadata();
  return {
    mimeType: image.mimeType,
    format: metadata.format,
    width: metadata.width,
    height: metadata.height,
  };
}

function workflowSent(sim: ComfyUISimulator) {
  const submit = sim.requests.find((request) => request.path === "/prompt");
  return submit?.json?.prompt as Record<string, { inputs: Record<string, unknown> }>;
}

describe("ComfyUI provider", () => {
  let sim: ComfyUISimulator;
  let provider: ImageProvider;
  const fetched: string[] = [];
  const call = (overrides: Parameters<typeof providerCall>[0] = {}) =>
    providerCall({
      model: "sdxl",
      template: SDXL_WORKFLOW,
      size: "832x1216",
      timeoutMs: 10_000,
      ...overrides,
    });

  before(async () => {
    sim = await startComfyUISimulator({ token: TOKEN });
    const api = createComfyUITaskApi({ apiKey: TOKEN, baseURL: `${sim.baseURL}/` });
    provider = createTaskProvider(api, {
      poll: POLL,
      // ComfyUI's files are read from the configured server, never through the guarded fetch.
      fetchResult: async (url) => {
        fetched.push(url);
        return Buffer.from(await (await fetch(url)).arrayBuffer());
      },
    });
  });
  after(() => sim.close());
  afterEach(() => {
    sim.requests.length = 0;
    sim.historyPolls.clear();
    sim.script(["queued", "running", "done"]);
    sim.delayMs = 0;
  });

  it("queues the filled workflow, polls until done and returns the images measured", async () => {
    sim.script(["queued", "queued", "running", "running", "done"]);
    const result = await provider.generate(
      call({ count: 2, extra: { negative_prompt: "blurry" } }),
    );

    const workflow = workflowSent(sim);
    const submit = sim.requests[0];
    assert.equal(submit?.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(typeof submit?.json?.client_id, "string");
    assert.deepEqual(workflow["5"]?.inputs, { width: 832, height: 1216, batch_size: 2 });
    assert.equal(workflow["6"]?.inputs.text, "a red fox in the snow");
    assert.equal(workflow["7"]?.inputs.text, "blurry");
    assert.equal(workflow["3"]?.inputs.steps, 25, "the workflow's default");
    assert.ok(Number.isInteger(workflow["3"]?.inputs.seed), "a random seed, as a number");

    assert.equal(result.images.length, 2);
    for (const image of result.images) {
      assert.deepEqual(await measure(image), {
        mimeType: "image/png",
        format: "png",
        width: 832,
        height: 1216,
      });
    }
    assert.deepEqual(result.warnings, []);
    const [promptId] = [...sim.historyPolls.keys()];
    assert.equal(
      sim.historyPolls.get(promptId as string),
      4,
      "one poll per state change: no busy loop",
    );
    assert.equal(sim.requests.filter((request) => request.path.startsWith("/view?")).length, 2);
    assert.deepEqual(fetched, []);
  });

  it("passes the client's seed and steps, and reports hints it cannot honour", async () => {
    const result = await provider.generate(call({ quality: "hd", extra: { seed: 42, steps: 30 } }));
    const workflow = workflowSent(sim);
    assert.equal(workflow["3"]?.inputs.seed, 42);
    assert.equal(workflow["3"]?.inputs.steps, 30);
    assert.deepEqual(result.warnings, ["ComfyUI takes no 'quality'; 'hd' was not sent."]);
  });

  it("gives each call its own random seed", async () => {
    await provider.generate(call());
    const first = workflowSent(sim)["3"]?.inputs.seed;
    sim.requests.length = 0;
    await provider.generate(call());
    assert.notEqual(workflowSent(sim)["3"]?.inputs.seed, first);
  });

  it("a repeated seed is answered from ComfyUI's cache, and expired files are a clear error", async () => {
    const first = await provider.generate(call({ extra: { seed: 7 }, size: "512x512" }));
    const made = sim.imagesMade;
    const again = await provider.generate(call({ extra: { seed: 7 }, size: "512x512" }));
    assert.equal(sim.imagesMade, made, "no new image");
    assert.deepEqual(again.images[0], first.images[0], "the same image");

    sim.expireFiles();
    const error = await hubErrorOf(
      provider.generate(call({ extra: { seed: 7 }, size: "512x512" })),
    );
    assert.equal(error.code, "upstream_result_expired");
  });

  it("a failed run names the node and its error, and is not cancelled", async () => {
    sim.script(["queued", "running", "error"]);
    const error = await hubErrorOf(provider.generate(call()));
    assert.equal(error.status, 502);
    assert.match(error.message, /node 3 \(KSampler\): Allocation on device/);
    assert.equal(sim.deleted.length + sim.interrupted.length, 0);
  });

  it("an invalid workflow is a 502 that says why", async () => {
    const broken = structuredClone(SDXL_WORKFLOW) as Record<
      string,
      { inputs: Record<string, unknown> }
    >;
    (broken["4"] as { inputs: Record<string, unknown> }).inputs.ckpt_name = "missing.safetensors";
    const error = await hubErrorOf(provider.generate(call({ template: broken })));
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_workflow_invalid");
    assert.match(error.message, /refused the workflow of model .sdxl.: /);
    assert.equal(sim.historyPolls.size, 0, "nothing queued, nothing polled");
  });

  it("an invalid workflow's error names the node at fault", async () => {
    const broken = structuredClone(SDXL_WORKFLOW) as Record<
      string,
      { inputs: Record<string, unknown> }
    >;
    (broken["4"] as { inputs: Record<string, unknown> }).inputs.ckpt_name = "missing.safetensors";
    const error = await hubErrorOf(provider.generate(call({ template: broken })));
    assert.match(error.message, /node 4 \(CheckpointLoaderSimple\): Value not in list/);
  });

  it("summarises node_errors naming each node", () => {
    const text = JSON.stringify({
      error: {
        type: "prompt_outputs_failed_validation",
        message: "Prompt outputs failed validation",
      },
      node_errors: {
        "4": {
          class_type: "CheckpointLoaderSimple",
          errors: [{ message: "Value not in list", details: "ckpt_name: 'x' not in [...]" }],
        },
      },
    });
    assert.equal(
      nodeErrorSummary(text),
      "node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'x' not in [...]",
    );
  });

  it("a task that outlives the budget is interrupted upstream and answers 504", async () => {
    sim.script(["queued", ...Array(100).fill("running")]);
    const error = await hubErrorOf(provider.generate(call({ timeoutMs: 400 })));
    assert.equal(error.status, 504);
    const [promptId] = [...sim.historyPolls.keys()];
    assert.deepEqual(sim.interrupted, [promptId]);
    assert.equal(sim.globalInterrupts, 0, "never an interrupt of whatever runs");
    const sent = sim.requests.length;
    await sleep(200);
    assert.equal(sim.requests.length, sent, "nothing sent after the cancel");
    assert.ok((sim.historyPolls.get(promptId as string) ?? 0) < 12, "polls stay few");
  });

  it("a task still queued when the budget ends is deleted from the queue, not interrupted", async () => {
    sim.script(Array(100).fill("queued"));
    const error = await hubErrorOf(provider.generate(call({ timeoutMs: 250 })));
    assert.equal(error.code, "upstream_timeout");
    const [promptId] = [...sim.historyPolls.keys()];
    assert.ok(sim.deleted.includes(promptId as string));
    assert.equal(sim.interrupted.includes(promptId as string), false);
    assert.equal(sim.prompts.get(promptId as string)?.state, "cancelled");
  });

  it("a client that leaves cancels the task upstream", async () => {
    sim.script(["running", ...Array(100).fill("running")]);
    const controller = new AbortController();
    const reason = new Error("client gone");
    setTimeout(() => controller.abort(reason), 150);
    await assert.rejects(
      provider.generate(call({ signal: controller.signal })),
      (error) => error === reason,
    );
    const [promptId] = [...sim.historyPolls.keys()];
    assert.deepEqual(sim.interrupted.slice(-1), [promptId]);
  });

  it("a task ComfyUI lost (restart, cleared queue) fails instead of waiting out the budget", async () => {
    sim.script(["queued", "lost"]);
    const error = await hubErrorOf(provider.generate(call()));
    assert.equal(error.code, "upstream_task_lost");
  });

  it("edits: uploads the input image and loads it by the name ComfyUI gave", async () => {
    const template = {
      "1": { class_type: "LoadImage", inputs: { image: "{{image}}" } },
      "2": {
        class_type: "CheckpointLoaderSimple",
        inputs: { ckpt_name: "sd_xl_base_1.0.safetensors" },
      },
      "3": { class_type: "VAEEncode", inputs: { pixels: ["1", 0], vae: ["2", 2] } },
      "4": { class_type: "CLIPTextEncode", inputs: { text: "{{prompt}}", clip: ["2", 1] } },
      "5": {
        class_type: "KSampler",
        inputs: {
          ...SDXL_WORKFLOW["3"].inputs,
          steps: 20,
          model: ["2", 0],
          positive: ["4", 0],
          negative: ["4", 0],
          latent_image: ["3", 0],
        },
      },
      "6": { class_type: "VAEDecode", inputs: { samples: ["5", 0], vae: ["2", 2] } },
      "7": { class_type: "SaveImage", inputs: { filename_prefix: "edit", images: ["6", 0] } },
    };
    const image = await inputImageOf(320, 240, "jpeg");
    const result = await provider.generate(call({ template, images: [image], size: undefined }));
    const upload = sim.requests.find((request) => request.path === "/upload/image");
    const file = upload?.form?.get("image");
    assert.ok(file instanceof File);
    assert.match(file.name, /^image-hub-[0-9a-f-]+\.jpg$/);
    assert.equal(upload?.form?.get("type"), "input");
    assert.equal(workflowSent(sim)["1"]?.inputs.image, file.name);
    assert.deepEqual(await measure(result.images[0]), {
      mimeType: "image/png",
      format: "png",
      width: 320,
      height: 240,
    });
  });

  it("refuses a batch from a workflow without {{count}}, and an edit of one without {{image}}", async () => {
    const single = structuredClone(SDXL_WORKFLOW) as Record<
      string,
      { inputs: Record<string, unknown> }
    >;
    (single["5"] as { inputs: Record<string, unknown> }).inputs.batch_size = 1;
    const batch = await hubErrorOf(provider.generate(call({ template: single, count: 2 })));
    assert.equal(batch.code, "model_misconfigured");
    const edit = await hubErrorOf(
      provider.generate(call({ images: [await inputImageOf(64, 64)] })),
    );
    assert.equal(edit.status, 400);
    assert.equal(sim.requests.length, 0, "nothing sent");
  });

  it("a wrong key is the hub's credentials failing, and a 429 on submit keeps its Retry-After", async () => {
    const wrong = createTaskProvider(
      createComfyUITaskApi({ apiKey: "wrong-token-123456", baseURL: sim.baseURL }),
      {
        poll: POLL,
      },
    );
    const auth = await hubErrorOf(wrong.generate(call()));
    assert.equal(auth.code, "upstream_auth_failed");
    assert.equal(auth.upstreamStatus, 401);

    sim.failNext({ status: 429, body: "Too Many Requests", headers: { "retry-after": "7" } });
    const limited = await hubErrorOf(provider.generate(call()));
    assert.equal(limited.status, 429);
    assert.equal(limited.retryAfterSeconds, 7);
  });
});

describe("checkComfyWorkflow", () => {
  it("takes the SDXL default workflow with placeholders", () => {
    assert.equal(checkComfyWorkflow(SDXL_WORKFLOW), undefined);
  });

  it("says what is wrong with a bad one", () => {
    const without = (node: string, input: string, value: unknown) => {
      const copy = structuredClone(SDXL_WORKFLOW) as Record<
        string,
        { inputs: Record<string, unknown> }
      >;
      (copy[node] as { inputs: Record<string, unknown> }).inputs[input] = value;
      return checkComfyWorkflow(copy);
    };
    assert.match(String(without("6", "text", "a cat")), /no \{\{prompt\}\}/);
    assert.match(String(without("3", "seed", 5)), /no \{\{seed\}\}.*cache/);
    assert.match(String(without("3", "cfg", "{{cfg}}")), /\{\{cfg\}\} without a default/);
    assert.match(String(without("8", "vae", ["40", 2])), /node 40, which the workflow lacks/);
    assert.match(String(checkComfyWorkflow({ nodes: [], links: [] })), /UI format/);
    assert.match(String(checkComfyWorkflow([])), /API format/);
  });
});
