/**
 * The hub learns from the provider which models it still offers: from its model list at start
 * (shutdown dates, models left out), and from a call answered model_not_found, after which the
 * same request goes to the successor at once, charged once. A provider that cannot be reached
 * changes nothing.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { issueKey } from "../../src/auth/issue.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

interface ModelEntry {
  id: string;
  status: string;
  shutdown_date: string | null;
  upstream: { listed: boolean | null };
}

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const thing of opened.reverse()) await thing.close();
});

async function hubOn(sim: OpenAISimulator, env: Record<string, string> = {}): Promise<TestHub> {
  const hub = await startTestHub({
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    ...env,
  });
  opened.push(hub);
  return hub;
}

async function simulator(options: Parameters<typeof startOpenAISimulator>[0] = {}) {
  const sim = await startOpenAISimulator(options);
  opened.push(sim);
  return sim;
}

async function get(hub: TestHub, url: string, key = hub.adminKey) {
  const response = await hub.app.inject({
    method: "GET",
    url,
    headers: { authorization: `Bearer ${key}` },
  });
  return { status: response.statusCode, body: response.json() };
}

async function modelView(hub: TestHub, id: string) {
  const reply = await get(hub, `/api/admin/models/${id}`);
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body;
}

function imageCalls(sim: OpenAISimulator) {
  return sim.requests
    .filter((request) => request.path.startsWith("/v1/images"))
    .map((request) => ({
      model: request.json?.model,
      status: request.reply?.status,
    }));
}

describe("the provider's model list", () => {
  it("a shutdown date and a missing model show up in GET /api/models and the admin API", async () => {
    const sim = await simulator({ shutDown: ["gpt-image-1"] });
    sim.shutdownDates = { "gpt-image-2": "2026-12-20" };
    const hub = await hubOn(sim);
    assert.ok(
      sim.requests.some((request) => request.path === "/v1/models"),
      "the list was read at start",
    );

    const list = await get(hub, "/api/models", hub.key);
    const entries = list.body.data as ModelEntry[];
    const byId = new Map(entries.map((model) => [model.id, model]));
    const soon = byId.get("gpt-image-2");
    assert.equal(soon?.status, "deprecated");
    assert.equal(soon?.shutdown_date, "2026-12-20");
    assert.equal(byId.get("gpt-image-1")?.status, "retired");
    assert.equal(byId.get("gpt-image-1")?.upstream.listed, false);
    // dall-e-2 is past its date, but this provider still offers it: called as itself.
    assert.equal(byId.get("dall-e-2")?.status, "active");

    const admin = await modelView(hub, "gpt-image-2");
    assert.equal(admin.upstream.listed, true);
    assert.equal(admin.upstream.shutdown_date, "2026-12-20");
    assert.ok(
      admin.warnings.some((warning: string) => /2026-12-20/.test(warning)),
      admin.warnings.join(" | "),
    );
    const gone = await modelView(hub, "gpt-image-1");
    assert.ok(gone.warnings.some((warning: string) => /does not list 'gpt-image-1'/.test(warning)));

    const reply = await hub.app.inject({
      method: "POST",
      url: "/v1/images/generations",
      headers: { authorization: `Bearer ${hub.key}` },
      payload: { model: "dall-e-2", prompt: "a fox", size: "256x256", response_format: "b64_json" },
    });
    assert.equal(reply.statusCode, 200, reply.body);
    assert.equal(reply.headers["x-image-hub-model"], "dall-e-2");
    assert.deepEqual(imageCalls(sim), [{ model: "dall-e-2", status: 200 }]);
  });

  it("a provider whose list cannot be read leaves the catalog to its dates", async () => {
    const sim = await simulator();
    sim.failModelList = 503;
    const hub = await hubOn(sim);
    const view = await modelView(hub, "dall-e-3");
    assert.equal(view.status, "retired", "the built-in shutdown date decides");
    assert.equal(view.upstream.listed, null);
    assert.equal((await modelView(hub, "gpt-image-2")).status, "active");
  });
});

describe("a call answered model_not_found", () => {
  it("goes to the successor at once, is charged once, and the next request goes there first", async () => {
    const sim = await simulator();
    const hub = await hubOn(sim);
    const { key } = await issueKey(hub.db, {
      name: "metered",
      role: "client",
      balanceMicros: 5_000_000,
    });
    // Listed at start, shut down since: the hub believes dall-e-2 alive and calls it.
    sim.shutDown.add("dall-e-2");

    const first = await hub.app.inject({
      method: "POST",
      url: "/api/images/generations",
      headers: { authorization: `Bearer ${key}` },
      payload: { prompt: "a tidy desk", size: "512x512", response_format: "b64_json" },
    });
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.headers["x-image-hub-model"], "gpt-image-2");
    assert.match(String(first.headers["x-image-hub-warnings"]), /has no model 'dall-e-2'/);
    assert.deepEqual(imageCalls(sim), [
      { model: "dall-e-2", status: 404 },
      { model: "gpt-image-2", status: 200 },
    ]);

    const usage = await get(hub, "/api/usage?limit=10");
    const records = usage.body.data.filter((row: { key_id: string }) => row.key_id !== undefined);
    const record = records.find(
      (row: { id: string }) => row.id === first.headers["x-image-hub-record-id"],
    );
    assert.equal(record.model, "gpt-image-2");
    assert.equal(record.requested_model, "dall-e-2");
    assert.equal(record.images, 1);
    const keyView = await get(hub, "/api/admin/keys");
    const mine = keyView.body.data.find((row: { name: string }) => row.name === "metered");
    const charged = 5 - mine.balance;
    assert.ok(charged > 0, "the image was charged");
    assert.ok(
      Math.abs(charged - record.cost) < 1e-9,
      `balance moved by the record's cost once (${charged})`,
    );

    sim.requests.length = 0;
    const second = await hub.app.inject({
      method: "POST",
      url: "/api/images/generations",
      headers: { authorization: `Bearer ${key}` },
      payload: { prompt: "a tidy desk", size: "512x512", response_format: "b64_json" },
    });
    assert.equal(second.statusCode, 200);
    assert.deepEqual(imageCalls(sim), [{ model: "gpt-image-2", status: 200 }]);
    assert.equal((await modelView(hub, "dall-e-2")).status, "retired");
  });

  it("a model without a successor keeps being called: the provider answers for it", async () => {
    const sim = await simulator();
    const hub = await hubOn(sim);
    sim.shutDown.add("gpt-image-2");
    for (let attempt = 0; attempt < 2; attempt++) {
      const reply = await hub.app.inject({
        method: "POST",
        url: "/api/images/generations",
        headers: { authorization: `Bearer ${hub.key}` },
        payload: { model: "gpt-image-2", prompt: "x", response_format: "b64_json" },
      });
      assert.equal(reply.statusCode, 502, reply.body);
      assert.equal(reply.json().error.code, "upstream_model_not_found");
    }
    assert.deepEqual(imageCalls(sim), [
      { model: "gpt-image-2", status: 404 },
      { model: "gpt-image-2", status: 404 },
    ]);
  });

  it("a passing 404 is undone by the provider's list, read again at once", async () => {
    const sim = await simulator();
    const hub = await hubOn(sim);
    const listReads = () => sim.requests.filter((request) => request.path === "/v1/models").length;
    const readAtStart = listReads();
    sim.failNext({
      status: 404,
      body: {
        error: {
          message: "The model `dall-e-2` does not exist or you do not have access to it.",
          type: "invalid_request_error",
          param: null,
          code: "model_not_found",
        },
      },
    });
    const first = await hub.app.inject({
      method: "POST",
      url: "/api/images/generations",
      headers: { authorization: `Bearer ${hub.key}` },
      payload: { prompt: "a tidy desk", response_format: "b64_json" },
    });
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.headers["x-image-hub-model"], "gpt-image-2");
    // The list, read again after the 404, still has dall-e-2: it is called as itself again.
    for (
      let waited = 0;
      listReads() === readAtStart || (await modelView(hub, "dall-e-2")).status !== "active";
      waited++
    ) {
      assert.ok(waited < 100, "the list was read again and dall-e-2 is back within 5 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    sim.requests.length = 0;
    const again = await hub.app.inject({
      method: "POST",
      url: "/api/images/generations",
      headers: { authorization: `Bearer ${hub.key}` },
      payload: { prompt: "a tidy desk", response_format: "b64_json" },
    });
    assert.equal(again.statusCode, 200);
    assert.deepEqual(imageCalls(sim), [{ model: "dall-e-2", status: 200 }]);
  });
});
