/**
 * What the console reads from the API, added for it and open to any script: a model's options as
 * data (size limits, defaults, mask, background, typical time), the usage filter by status, and
 * the credential test (a call that costs nothing). Against a running hub and the OpenAI simulator.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { callHub } from "../helpers/hub-process.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

let hub: TestHub;
let sim: OpenAISimulator;

const get = (path: string, key = hub.adminKey) => callHub(hub, "GET", path, { key });
const post = (path: string, body: unknown, key = hub.adminKey) =>
  callHub(hub, "POST", path, { key, body });

before(async () => {
  sim = await startOpenAISimulator();
  hub = await startTestHub({
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    MODEL_LIST_REFRESH_SECONDS: "0",
  });
});

after(async () => {
  await hub?.close();
  await sim?.close();
});

type ModelEntry = Record<string, unknown> & { id: string };
const modelsOf = async () => (await get("/api/models")).body.data as ModelEntry[];

describe("the model list says what a form needs", () => {
  it("gives a rule-sized model its limits as numbers, and a listed one null", async () => {
    const models = await modelsOf();
    const placeholder = models.find((model) => model.id === "local/placeholder");
    assert.deepEqual(placeholder?.size_limits, {
      multiple_of: 1,
      max_side: 4096,
      min_pixels: 1,
      max_pixels: 16_777_216,
      min_ratio: 1 / 16,
      max_ratio: 16,
      auto: true,
    });
    const gptImage = models.find((model) => model.id === "gpt-image-2");
    assert.equal(gptImage?.size_limits === null || typeof gptImage?.size_limits === "object", true);
    const dalle2 = models.find((model) => model.id === "dall-e-2");
    assert.equal(dalle2?.size_limits, null);
    assert.deepEqual(dalle2?.sizes, ["256x256", "512x512", "1024x1024"]);
  });

  it("says which options apply: mask, background, compression, defaults", async () => {
    const models = await modelsOf();
    const byId = (id: string) => models.find((model) => model.id === id);
    assert.equal(byId("dall-e-2")?.mask, true);
    assert.equal(byId("dall-e-2")?.background, false);
    assert.equal(byId("dall-e-2")?.default_quality, "standard");
    assert.equal(byId("dall-e-3")?.mask, false, "dall-e-3 makes no edits");
    assert.equal(byId("gpt-image-2")?.background, true);
    assert.equal(byId("gpt-image-2")?.compression, true);
    for (const model of models) {
      assert.ok("default_style" in model && "typical_ms" in model, model.id);
    }
  });

  it("learns a model's typical time from its successful requests", async () => {
    const before = (await modelsOf()).find((model) => model.id === "local/placeholder");
    assert.equal(before?.typical_ms, null);
    for (let i = 0; i < 3; i++) {
      const made = await post("/api/images/generations", {
        model: "local/placeholder",
        prompt: `typical ${i}`,
        size: "64x64",
        response_format: "b64_json",
      });
      assert.equal(made.status, 200);
    }
    const after = (await modelsOf()).find((model) => model.id === "local/placeholder");
    assert.equal(typeof after?.typical_ms, "number");
    assert.ok((after?.typical_ms as number) >= 0 && (after?.typical_ms as number) < 10_000);
  });
});

describe("X-Image-Hub-Cost", () => {
  it("says what the request cost, as its ledger row does", async () => {
    const response = await fetch(`${hub.url}/api/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-image-2", prompt: "priced", size: "1024x1024", n: 2 }),
    });
    assert.equal(response.status, 200);
    const cost = response.headers.get("x-image-hub-cost");
    assert.match(cost ?? "", /^\d+\.\d{6}$/);
    const recordId = response.headers.get("x-image-hub-record-id");
    const rows = (await get("/api/usage?limit=100")).body.data as { id: string; cost: number }[];
    const row = rows.find((candidate) => candidate.id === recordId);
    assert.ok(row && row.cost > 0, "gpt-image-2 has a price");
    assert.equal(Number(cost), row.cost);
  });
});

describe("GET /api/usage?status=", () => {
  it("lists only the requests that ended so", async () => {
    // A refusal the hub does not retry: the request fails and leaves a failed row.
    sim.failNext({
      status: 400,
      body: { error: { message: "Your request was rejected", type: "invalid_request_error" } },
    });
    const failed = await post("/api/images/generations", {
      model: "gpt-image-2",
      prompt: "fails upstream",
      size: "1024x1024",
    });
    assert.notEqual(failed.status, 200);
    const all = (await get("/api/usage?limit=100")).body.data as { status: string }[];
    const succeeded = (await get("/api/usage?status=succeeded&limit=100")).body.data as {
      status: string;
    }[];
    const failedRows = (await get("/api/usage?status=failed&limit=100")).body.data as {
      status: string;
    }[];
    assert.ok(succeeded.length >= 3);
    assert.ok(succeeded.every((row) => row.status === "succeeded"));
    assert.ok(failedRows.length >= 1 && failedRows.every((row) => row.status === "failed"));
    assert.equal(
      succeeded.length + failedRows.length,
      all.filter((row) => row.status !== "partial").length,
    );
    const csv = await fetch(`${hub.url}/api/usage/export?status=succeeded`, {
      headers: { authorization: `Bearer ${hub.adminKey}` },
    });
    const lines = (await csv.text()).trim().split("\n");
    assert.equal(lines.length - 1, succeeded.length, "the export takes the same filter");
  });

  it("refuses a status it does not know, naming the param", async () => {
    const answer = await get("/api/usage?status=done");
    assert.equal(answer.status, 400);
    assert.equal((answer.body.error as { param: string }).param, "status");
  });
});

describe("POST /api/admin/credentials/{id}/test", () => {
  const credentialId = async () => {
    const listed = (await get("/api/admin/credentials")).body.data as {
      id: string;
      provider: string;
    }[];
    const openai = listed.find((credential) => credential.provider === "openai");
    assert.ok(openai, "the environment's OpenAI key is listed");
    return openai.id;
  };

  it("answers ok with the provider's model list, and costs nothing", async () => {
    const id = await credentialId();
    const before = sim.requests.length;
    const checked = await post(`/api/admin/credentials/${encodeURIComponent(id)}/test`, {});
    assert.equal(checked.status, 200);
    assert.equal(checked.body.ok, true);
    assert.equal(checked.body.status, "active");
    assert.equal(typeof checked.body.latency_ms, "number");
    const sent = sim.requests.slice(before).map((request) => `${request.method} ${request.path}`);
    assert.deepEqual(sent, ["GET /v1/models"]);
  });

  it("reports a refusal and the quarantine it causes, then clears it when it works", async () => {
    const id = await credentialId();
    sim.failNext({
      status: 401,
      body: { error: { message: "Incorrect API key provided", type: "invalid_request_error" } },
    });
    const refused = await post(`/api/admin/credentials/${encodeURIComponent(id)}/test`, {});
    assert.equal(refused.status, 200);
    assert.equal(refused.body.ok, false);
    assert.match(String(refused.body.detail), /key|refused|401/i);
    assert.equal(refused.body.status, "auth_failed");
    const again = await post(`/api/admin/credentials/${encodeURIComponent(id)}/test`, {});
    assert.equal(again.body.ok, true, "a quarantined credential is tested anyway");
    assert.equal(again.body.status, "active", "and an answer clears the quarantine");
  });

  it("is 404 for an unknown id and 403 for a client key", async () => {
    const unknown = await post("/api/admin/credentials/cred_nope/test", {});
    assert.equal(unknown.status, 404);
    assert.equal((unknown.body.error as { code: string }).code, "credential_not_found");
    const client = await post(`/api/admin/credentials/${await credentialId()}/test`, {}, hub.key);
    assert.equal(client.status, 403);
  });
});
