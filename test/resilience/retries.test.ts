/**
 * Retries through the real hub against the OpenAI simulator: only where a retry cannot make a
 * provider produce (and bill) an image twice, inside the request's time budget, at most
 * UPSTREAM_MAX_ATTEMPTS tries; and everything when an admin's route says so.
 *
 * Each test starts its own simulator and hub: a 429 cools the credential down for the wait the
 * upstream asked, which would otherwise leak into the next test.
 */
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import { createCatalog } from "../../src/images/catalog.ts";
import { createImageService } from "../../src/images/generate.ts";
import { createOpenAIProvider } from "../../src/providers/openai.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

interface Reply {
  status: number;
  headers: Headers;
  body: {
    data?: Array<{ b64_json?: string; url?: string }>;
    error?: { message: string; type: string; code: string | null };
  };
}

const open: Array<{ close(): Promise<void> }> = [];
after(async () => {
  await Promise.all(open.map((item) => item.close()));
});

async function setUp(env: Record<string, string> = {}) {
  const sim = await startOpenAISimulator();
  const hub = await startTestHub({
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    ...env,
  });
  open.push(hub, sim);
  return { sim, hub };
}

async function generate(hub: TestHub, body: Record<string, unknown>): Promise<Reply> {
  const response = await fetch(`${hub.url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "dall-e-2", prompt: "a lighthouse", size: "256x256", ...body }),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Reply["body"],
  };
}

async function putRoute(hub: TestHub, model: string, route: Record<string, unknown>) {
  const response = await fetch(`${hub.url}/api/admin/routes/${model}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${hub.adminKey}`, "content-type": "application/json" },
    body: JSON.stringify(route),
  });
  assert.equal(response.status, 200, await response.text());
}

const posts = (sim: OpenAISimulator) =>
  sim.requests.filter((request) => request.method === "POST").length;

async function lastRecord(hub: TestHub) {
  const [record] = await hub.db.listUsage({ limit: 1 });
  assert.ok(record);
  return record;
}

describe("retried, because the upstream made nothing", () => {
  test("a 429 with Retry-After inside the budget: one retry after the wait, then 200", async () => {
    const { sim, hub } = await setUp();
    sim.failNext({
      status: 429,
      headers: { "retry-after": "1" },
      body: { error: { message: "Rate limit reached", type: "requests" } },
    });
    const started = performance.now();
    const reply = await generate(hub, {});
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.data?.length, 1);
    assert.equal(posts(sim), 2);
    assert.ok(performance.now() - started >= 1000, "the retry waited for Retry-After");
    assert.equal((await lastRecord(hub)).status, "succeeded");
  });

  test("a 503 with Retry-After inside the budget: retried, then 200", async () => {
    const { sim, hub } = await setUp();
    sim.failNext({ status: 503, headers: { "retry-after": "1" }, body: "overloaded" });
    const reply = await generate(hub, {});
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(posts(sim), 2);
  });

  test("in a fan-out, only the call that was refused is tried again", async () => {
    const { sim, hub } = await setUp();
    sim.failNext({ status: 503, headers: { "retry-after": "1" }, body: "overloaded" });
    const reply = await generate(hub, { model: "dall-e-3", size: "1024x1024", n: 3 });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.data?.length, 3);
    assert.equal(posts(sim), 4);
  });

  test("UPSTREAM_MAX_ATTEMPTS=1 turns retries off", async () => {
    const { sim, hub } = await setUp({ UPSTREAM_MAX_ATTEMPTS: "1" });
    sim.failNext({ status: 503, headers: { "retry-after": "1" }, body: "overloaded" });
    const reply = await generate(hub, {});
    assert.equal(reply.status, 503);
    assert.equal(reply.body.error?.code, "upstream_unavailable");
    assert.equal(reply.headers.get("retry-after"), "1");
    assert.equal(posts(sim), 1);
  });
});

describe("not retried", () => {
  test("a Retry-After past the request's time budget is passed on to the client", async () => {
    const { sim, hub } = await setUp();
    await putRoute(hub, "dall-e-2", { timeout_ms: 2000 });
    sim.failNext({ status: 503, headers: { "retry-after": "5" }, body: "maintenance" });
    const reply = await generate(hub, {});
    assert.equal(reply.status, 503);
    assert.equal(reply.body.error?.code, "upstream_unavailable");
    assert.equal(reply.headers.get("retry-after"), "5");
    assert.equal(posts(sim), 1);
  });

  test("a 503 without Retry-After", async () => {
    const { sim, hub } = await setUp();
    sim.failNext({ status: 503, body: "overloaded" });
    const reply = await generate(hub, {});
    assert.equal(reply.status, 503);
    assert.equal(posts(sim), 1);
  });

  test("a 500: the upstream failed, and the same call would likely fail again", async () => {
    const { sim, hub } = await setUp();
    sim.failNext({ status: 500, body: { error: { message: "The server had an error" } } });
    const reply = await generate(hub, {});
    assert.equal(reply.status, 502);
    assert.equal(reply.body.error?.code, "upstream_error");
    assert.equal(posts(sim), 1);
  });

  test("a timeout: the upstream may have made and billed the image", async () => {
    const { sim, hub } = await setUp();
    await putRoute(hub, "dall-e-2", { timeout_ms: 1000 });
    sim.delayMs = 1500;
    const reply = await generate(hub, {});
    assert.equal(reply.status, 504);
    assert.equal(reply.body.error?.code, "upstream_timeout");
    assert.equal(posts(sim), 1);
  });

  test("a route with retry_billable retries a 500 and a timeout too", async () => {
    const { sim, hub } = await setUp();
    await putRoute(hub, "dall-e-2", { retry_billable: true });
    sim.failNext({ status: 500, body: { error: { message: "The server had an error" } } });
    const reply = await generate(hub, {});
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(posts(sim), 2);
  });

  test("a client that leaves during the wait ends the request: no retry is sent", async () => {
    const { sim, hub } = await setUp();
    sim.failNext({ status: 429, headers: { "retry-after": "2" }, body: "slow down" });
    const controller = new AbortController();
    const request = fetch(`${hub.url}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "dall-e-2", prompt: "a lighthouse", size: "256x256" }),
      signal: controller.signal,
    });
    while (posts(sim) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    await assert.rejects(request);
    let record = (await hub.db.listUsage({ limit: 1 }))[0];
    while (!record) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      record = (await hub.db.listUsage({ limit: 1 }))[0];
    }
    assert.equal(record.errorCode, "client_disconnected");
    assert.equal(posts(sim), 1, "the request ended before its retry");
  });
});

describe("a connection refused before anything was sent", () => {
  /** A port that refuses connections until `listen()` forwards it to the simulator. */
  async function refusingPort(targetPort: number) {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as { port: number };
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    let forwarder: Server | undefined;
    const sockets = new Set<Socket>();
    return {
      port,
      async listen() {
        forwarder = createServer((client) => {
          const upstream = connect(targetPort, "127.0.0.1");
          sockets.add(client).add(upstream);
          client.pipe(upstream).pipe(client);
          client.on("error", () => upstream.destroy());
          upstream.on("error", () => client.destroy());
        });
        await new Promise<void>((resolve) => forwarder?.listen(port, "127.0.0.1", resolve));
      },
      async close() {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) =>
          forwarder ? forwarder.close(() => resolve()) : resolve(),
        );
      },
    };
  }

  test("is retried after a jittered backoff, and the retry is served", async () => {
    const sim = await startOpenAISimulator();
    open.push(sim);
    const simPort = Number(new URL(sim.baseURL).port);
    const port = await refusingPort(simPort);
    open.push(port);
    const waits: number[] = [];
    const records: unknown[] = [];
    const service = createImageService({
      catalog: createCatalog(),
      providers: {
        openai: createOpenAIProvider({
          apiKey: sim.apiKey,
          baseURL: `http://127.0.0.1:${port.port}/v1`,
        }),
      },
      defaultModel: "dall-e-2",
      fanOutConcurrency: 4,
      loadInputs: async () => [],
      fetchUpstreamImage: async () => Buffer.alloc(0),
      hostImage: async () => ({ url: "unused", name: "unused.png", expiresAt: 0 }),
      // An unlimited key: nothing reserved (billing has tests of its own).
      accounting: {
        reserve: async () => null,
        topUp: async () => true,
        costCeiling: () => 0,
        async record({ record }) {
          records.push(record);
          return { ...record, costMicros: 0 };
        },
      },
      random: () => 0.5,
      // The upstream comes up while the hub waits to try again.
      sleep: async (ms) => {
        waits.push(ms);
        await port.listen();
      },
    });
    const principal = {
      keyId: "key_1",
      role: "client",
      name: "test",
      models: null,
      rpm: null,
      ipm: null,
      balanceMicros: null,
    } as const;
    const result = await service.generate(
      principal as never,
      { prompt: "a lighthouse", size: "256x256", response_format: "b64_json" },
      new AbortController().signal,
    );
    assert.equal(result.data.length, 1);
    assert.deepEqual(waits, [125], "half of the first 250 ms ceiling, with random() = 0.5");
    assert.equal(posts(sim), 1, "the refused try never reached the upstream");
    assert.equal((records[0] as { status: string }).status, "succeeded");
  });
});
