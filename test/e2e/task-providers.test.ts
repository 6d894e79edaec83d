/**
 * The task-based provider kinds (submit, then poll) through the whole pipeline, each against
 * its simulator: the spec's request answered with real images, recorded and charged. Then a hub
 * killed with SIGKILL while a task runs: the next start finds the task, settles it, and the
 * ledger balances.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { issueKey } from "../../src/auth/issue.ts";
import { openDatabase } from "../../src/storage/db/open.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { freePort, type HubProcess, startHubProcess } from "../helpers/hub-process.ts";
import { type BflTask, startBflSimulator } from "../sim/bfl.ts";
import { SDXL_WORKFLOW, startComfyUISimulator } from "../sim/comfyui.ts";
import { startFalSimulator } from "../sim/fal.ts";
import { startIdeogramSimulator } from "../sim/ideogram.ts";
import { startReplicateSimulator } from "../sim/replicate.ts";

const CREDIT = 10_000_000;

async function dimensionsOf(bytes: Buffer) {
  const { width, height } = await sharp(bytes).metadata();
  return { width, height };
}

describe("task-based providers, the whole pipeline", { timeout: 120_000 }, () => {
  let hub: TestHub;
  let paying: { id: string; key: string };
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    const bfl = await startBflSimulator();
    const fal = await startFalSimulator();
    const replicate = await startReplicateSimulator();
    const ideogram = await startIdeogramSimulator();
    const comfyui = await startComfyUISimulator();
    closers.push(bfl.close, fal.close, replicate.close, ideogram.close, comfyui.close);
    hub = await startTestHub({
      BFL_API_KEY: bfl.apiKey,
      BFL_BASE_URL: bfl.baseURL,
      FAL_KEY: fal.apiKey,
      FAL_BASE_URL: fal.baseURL,
      REPLICATE_API_TOKEN: replicate.apiKey,
      REPLICATE_BASE_URL: replicate.baseURL,
      IDEOGRAM_API_KEY: ideogram.apiKey,
      IDEOGRAM_BASE_URL: ideogram.baseURL,
      COMFYUI_BASE_URL: comfyui.baseURL,
      // The simulators serve their results on loopback; a real vendor's CDN needs no such rule.
      IMAGE_FETCH_ALLOW_CIDRS: "127.0.0.1/32",
    });
    paying = await issueKey(hub.db, { name: "apps", role: "client", balanceMicros: CREDIT });
  });

  after(async () => {
    await hub?.close();
    for (const close of closers) await close();
  });

  for (const [kind, model] of [
    ["bfl", "flux-2-pro"],
    ["fal", "fal-ai/flux/schnell"],
    ["replicate", "replicate/flux-schnell"],
    ["ideogram", "ideogram-3"],
    ["comfyui", "comfyui/sdxl"],
  ] as const) {
    it(`${kind}: the spec's request, url and b64_json, decoded, recorded and charged`, async () => {
      for (const response_format of ["url", "b64_json"] as const) {
        const response = await fetch(`${hub.url}/api/images/generations`, {
          method: "POST",
          headers: { authorization: `Bearer ${paying.key}`, "content-type": "application/json" },
          body: JSON.stringify({
            model,
            prompt: "A photorealistic image of a cat programming on a laptop",
            n: 1,
            size: "1024x1024",
            response_format,
          }),
        });
        const body = (await response.json()) as {
          data: Array<{ url?: string; b64_json?: string }>;
        };
        assert.equal(response.status, 200, JSON.stringify(body));
        const item = body.data[0];
        const bytes = item?.b64_json
          ? Buffer.from(item.b64_json, "base64")
          : Buffer.from(await (await fetch(item?.url ?? "")).arrayBuffer());
        assert.deepEqual(await dimensionsOf(bytes), { width: 1024, height: 1024 });
        const recordId = response.headers.get("x-image-hub-record-id");
        const [record] = (await hub.db.listUsage({ keyId: paying.id, limit: 50 })).filter(
          (row) => row.id === recordId,
        );
        assert.deepEqual([record?.status, record?.provider], ["succeeded", kind]);
      }
      assert.deepEqual(await hub.db.listUpstreamTasks(), [], "every task ended and was forgotten");
    });
  }

  it("a ComfyUI workflow becomes a model through the admin API; a broken one is refused", async () => {
    const define = (id: string, template: Record<string, unknown>) =>
      fetch(`${hub.url}/api/admin/models`, {
        method: "POST",
        headers: { authorization: `Bearer ${hub.adminKey}`, "content-type": "application/json" },
        body: JSON.stringify({ like: "comfyui/sdxl", id, request_template: template, price: 0 }),
      });
    const noPrompt = structuredClone(SDXL_WORKFLOW) as Record<
      string,
      { inputs: Record<string, unknown> }
    >;
    for (const node of Object.values(noPrompt)) {
      for (const [name, value] of Object.entries(node.inputs)) {
        if (value === "{{prompt}}") node.inputs[name] = "a fixed prompt";
      }
    }
    const refused = await define("comfyui/broken", noPrompt);
    const error = ((await refused.json()) as { error: { param: string } }).error;
    assert.deepEqual([refused.status, error.param], [400, "request_template"]);
    const made = await define("comfyui/mine", SDXL_WORKFLOW);
    assert.equal(made.status, 201, await made.clone().text());
    const response = await fetch(`${hub.url}/api/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${paying.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "comfyui/mine", prompt: "a lighthouse", size: "768x512" }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const body = (await response.json()) as { data: Array<{ url: string }> };
    const bytes = Buffer.from(await (await fetch(body.data[0]?.url ?? "")).arrayBuffer());
    assert.deepEqual(await dimensionsOf(bytes), { width: 768, height: 512 });
  });
});

describe("a hub killed mid-task", { timeout: 120_000 }, () => {
  let dataDir: string;
  const hubs: HubProcess[] = [];
  let bfl: Awaited<ReturnType<typeof startBflSimulator>>;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-task-crash-"));
    bfl = await startBflSimulator();
  });

  after(async () => {
    for (const hub of hubs) await hub.stop("SIGKILL");
    await bfl?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function start(): Promise<HubProcess> {
    const hub = await startHubProcess(
      {
        DATA_DIR: dataDir,
        BFL_API_KEY: bfl.apiKey,
        BFL_BASE_URL: bfl.baseURL,
        IMAGE_FETCH_ALLOW_CIDRS: "127.0.0.1/32",
        ADMIN_KEY: "task-crash-admin-key-0123456789",
      },
      { port: await freePort() },
    );
    hubs.push(hub);
    return hub;
  }

  async function withStore<T>(work: (db: Awaited<ReturnType<typeof openDatabase>>) => Promise<T>) {
    const db = await openDatabase({ dataDir, databaseUrl: undefined });
    try {
      return await work(db);
    } finally {
      await db.close();
    }
  }

  it("the next start settles the task: charged once for the image made, the ledger balances", async () => {
    const first = await start();
    const key = await withStore((db) =>
      issueKey(db, { name: "app", role: "client", balanceMicros: CREDIT }),
    );
    // The task stays pending until the test says otherwise.
    bfl.script(Array.from({ length: 1000 }, () => "Pending" as const));
    const request = fetch(`${first.url}/api/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "flux-2-pro", prompt: "a lighthouse", size: "1024x1024" }),
    }).catch(() => undefined);
    let task: BflTask | undefined;
    for (let i = 0; i < 200 && !(task && task.polls.length > 0); i += 1) {
      task = [...bfl.tasks.values()][0];
      await sleep(25);
    }
    assert.ok(task, "the hub submitted a task and polls it");
    await first.stop("SIGKILL");
    await request;

    const left = await withStore(async (db) => ({
      tasks: await db.listUpstreamTasks(),
      balance: (await db.findKey(key.id))?.balanceMicros,
    }));
    assert.equal(left.tasks.length, 1, "the task was written down before it was polled");
    assert.ok((left.balance ?? CREDIT) < CREDIT, "its reservation is held");

    // Upstream, the task finishes while no hub is there.
    task.script = ["Ready"];
    const second = await start();
    let settled = false;
    for (let i = 0; i < 400 && !settled; i += 1) {
      settled = await withStore(async (db) => (await db.listUpstreamTasks()).length === 0);
      if (!settled) await sleep(50);
    }
    assert.ok(settled, "the restarted hub settled the task");
    const after = await withStore(async (db) => ({
      records: await db.listUsage({ keyId: key.id, limit: 10 }),
      balance: (await db.findKey(key.id))?.balanceMicros,
    }));
    assert.equal(after.records.length, 1);
    const [record] = after.records;
    assert.deepEqual(
      [record?.status, record?.errorCode, record?.imagesDelivered],
      ["succeeded", "delivered_to_nobody", 1],
    );
    assert.ok(record && record.costMicros > 0, "the image the provider made is charged");
    assert.equal(after.balance, CREDIT - record.costMicros, "charged once, the rest given back");
    assert.equal((await second.stop("SIGTERM")).code, 0);
  });
});
