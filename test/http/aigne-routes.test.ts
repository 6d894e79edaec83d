/**
 * AIGNE Hub's routes over HTTP (discovery, model list, status, /api/v2/image and
 * /api/v2/image/generations), and the Idempotency-Key every image route honours, against a
 * running hub and the OpenAI simulator.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import sharp from "sharp";
import { buildApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { requestOverSocket } from "../helpers/leaving-request.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

let sim: OpenAISimulator;
let hub: TestHub;

before(async () => {
  sim = await startOpenAISimulator();
  hub = await startTestHub({ OPENAI_API_KEY: sim.apiKey, OPENAI_BASE_URL: sim.baseURL });
});

after(async () => {
  await hub?.close();
  await sim?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  options: { body?: unknown; key?: string | null; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const key = options.key === undefined ? hub.key : options.key;
  const response = await fetch(`${hub.url}${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

const records = (app?: string) => hub.db.listUsage({ keyId: undefined, app, limit: 1000 });
const upstreamCalls = () =>
  sim.requests.filter((request) => request.path === "/v1/images/generations").length;

function errorOf(answer: Answer) {
  return (answer.body as { error: { code: string; param: string | null; message: string } }).error;
}

describe("discovery", () => {
  it("serves the blocklet document without a key, AIGNE Hub's DID mounted at the root", async () => {
    const answer = await call("GET", "/__blocklet__.js?type=json", { key: null });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.componentMountPoints, [
      {
        did: "z8ia3xzq2tMq8CRHfaXj1BTYJyYnEcHbqP8cJ",
        name: "image-hub",
        title: "AIGNE Hub API",
        mountPoint: "/",
        status: "running",
      },
    ]);
    const script = await fetch(`${hub.url}/__blocklet__.js`);
    assert.match(script.headers.get("content-type") ?? "", /javascript/);
    assert.match(await script.text(), /^window\.blocklet = \{.*"mountPoint":"\/"/);
  });

  it("mounts at PUBLIC_URL's path when the hub is served under a prefix", async () => {
    const { app } = await buildApp(
      loadConfig({
        DATA_DIR: `${hub.dataDir}/prefixed`,
        PUBLIC_URL: "https://images.example.com/tools/hub/",
        LOG_LEVEL: "silent",
      }),
      { logger: false },
    );
    try {
      const reply = await app.inject({ url: "/__blocklet__.js?type=json" });
      const document = reply.json() as {
        appUrl: string;
        componentMountPoints: Array<{ mountPoint: string }>;
      };
      assert.equal(document.appUrl, "https://images.example.com");
      assert.equal(document.componentMountPoints[0]?.mountPoint, "/tools/hub");
    } finally {
      await app.close();
    }
  });
});

describe("GET /api/ai/models and /api/v2/status", () => {
  it("lists the servable image models without a key, credit fields as text; [] for chat", async () => {
    const images = await call("GET", "/api/ai/models?type=image", { key: null });
    assert.equal(images.status, 200);
    const list = images.body as unknown as Array<Record<string, unknown>>;
    const gpt = list.find((model) => model.model === "gpt-image-2");
    assert.ok(gpt, JSON.stringify(list.map((model) => model.model)));
    assert.equal(gpt.key, "aignehub/gpt-image-2");
    assert.equal(gpt.provider, "openai");
    assert.equal(typeof gpt.input_credits_per_token, "string");
    assert.equal(typeof gpt.output_credits_per_token, "string");
    assert.deepEqual(gpt.status, { available: true });
    assert.ok(!list.some((model) => model.provider === "google"), "google has no credentials");
    const chat = await call("GET", "/api/ai/models?type=chat", { key: null });
    assert.deepEqual(chat.body, []);
  });

  it("says whether the hub, or one model, can serve", async () => {
    assert.deepEqual((await call("GET", "/api/v2/status", { key: null })).body, {
      available: true,
    });
    const known = await call("GET", "/api/v2/status?model=aignehub/local/placeholder", {
      key: null,
    });
    assert.deepEqual(known.body, { available: true });
    const google = await call("GET", "/api/v2/status?model=gemini-3-pro-image", { key: null });
    assert.equal(google.body.available, false);
    const unknown = await call("GET", "/api/v2/status?model=nope", { key: null });
    assert.equal(unknown.body.available, false);
    assert.match(String(unknown.body.error), /nope/);
  });
});

describe("POST /api/v2/image", () => {
  const invoke = (input: Record<string, unknown>) => ({
    input: { prompt: "a kite", ...input },
    agent: "ChatModel",
    options: { streaming: false },
  });

  it("names in the warnings header what it did not use, and answers with the images", async () => {
    const answer = await call("POST", "/api/v2/image", {
      body: invoke({
        seed: 3,
        modelOptions: { model: "local/placeholder", size: "96x64", topK: 1 },
      }),
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.match(
      answer.headers.get("x-image-hub-warnings") ?? "",
      /ignored: input\.modelOptions\.topK, input\.seed|ignored: input\.seed, input\.modelOptions\.topK/,
    );
    const images = answer.body.images as Array<{ type: string; url: string; mimeType: string }>;
    assert.equal(images[0]?.type, "url");
    assert.equal(images[0]?.mimeType, "image/png");
    const bytes = Buffer.from(await (await fetch(images[0]?.url ?? "")).arrayBuffer());
    const { width, height } = await sharp(bytes).metadata();
    assert.deepEqual({ width, height }, { width: 96, height: 64 });
    assert.deepEqual(answer.body.usage, {
      inputTokens: 0,
      outputTokens: 0,
      aigneHubCredits: 0,
      creditPrefix: "$",
    });
  });

  it("refuses what the OpenAI route refuses, naming the parameter", async () => {
    const tooMany = await call("POST", "/api/v2/image", {
      body: invoke({ n: 11, modelOptions: { model: "local/placeholder" } }),
    });
    assert.equal(tooMany.status, 400);
    assert.equal(errorOf(tooMany).param, "input[n]");
    const badSize = await call("POST", "/api/v2/image", {
      body: invoke({ modelOptions: { model: "local/placeholder", size: "big" } }),
    });
    assert.equal(badSize.status, 400);
    assert.equal(errorOf(badSize).param, "size");
    const noPrompt = await call("POST", "/api/v2/image", { body: { input: {} } });
    assert.equal(noPrompt.status, 400);
    const noKey = await call("POST", "/api/v2/image", { body: invoke({}), key: null });
    assert.equal(noKey.status, 401);
  });

  it("records the client's DID as the app, and the usage API filters by it", async () => {
    const answer = await call("POST", "/api/v2/image", {
      body: invoke({ prompt: "app test", modelOptions: { model: "local/placeholder" } }),
      headers: { "x-aigne-hub-client-did": "zNKappDid123" },
    });
    assert.equal(answer.status, 200);
    const [record] = await records("zNKappDid123");
    assert.equal(record?.id, answer.headers.get("x-image-hub-record-id"));
    const listed = await call("GET", "/api/usage?app=zNKappDid123");
    const rows = listed.body.data as Array<{ id: string; app: string }>;
    assert.deepEqual(
      rows.map((row) => [row.id, row.app]),
      [[record?.id, "zNKappDid123"]],
    );
    const tooLong = await call("POST", "/api/v2/image", {
      body: invoke({ modelOptions: { model: "local/placeholder" } }),
      headers: { "x-aigne-hub-client-did": "z".repeat(300) },
    });
    assert.equal(tooLong.status, 400);
    assert.equal(errorOf(tooLong).param, "x-aigne-hub-client-did");
  });
});

describe("POST /api/v2/image/generations", () => {
  it("answers OpenAI's reply with images, model and the credits charged", async () => {
    const answer = await call("POST", "/api/v2/image/generations", {
      body: { prompt: "p", model: "gpt-image-2", size: "1024x1024", responseFormat: "b64_json" },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const data = answer.body.data as Array<{ b64_json: string }>;
    assert.deepEqual(answer.body.images, data);
    assert.equal(answer.body.model, "gpt-image-2");
    const { width } = await sharp(Buffer.from(data[0]?.b64_json ?? "", "base64")).metadata();
    assert.equal(width, 1024);
    const usage = answer.body.usage as { aigneHubCredits: number; creditPrefix: string };
    const record = (await records()).find(
      (row) => row.id === answer.headers.get("x-image-hub-record-id"),
    );
    assert.ok(record && record.costMicros > 0);
    assert.equal(usage.aigneHubCredits, record.costMicros / 1_000_000);
  });
});

describe("Idempotency-Key on the image routes", () => {
  const body = (prompt: string) => ({ prompt, model: "gpt-image-2", size: "1024x1024" });

  it("replays the first answer to a retry, charging once", async () => {
    const headers = { "idempotency-key": "order-1" };
    const before = upstreamCalls();
    const first = await call("POST", "/v1/images/generations", { body: body("one"), headers });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("x-image-hub-idempotency"), "key; first");
    const again = await call("POST", "/v1/images/generations", { body: body("one"), headers });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("x-image-hub-idempotency"), "key; replayed");
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(again.body, first.body);
    assert.equal(
      again.headers.get("x-image-hub-record-id"),
      first.headers.get("x-image-hub-record-id"),
    );
    assert.equal(upstreamCalls(), before + 1);
  });

  it("the same key with another body is a 409, and the key is per API key", async () => {
    const headers = { "idempotency-key": "order-2" };
    await call("POST", "/v1/images/generations", { body: body("two"), headers });
    const conflict = await call("POST", "/v1/images/generations", { body: body("three"), headers });
    assert.equal(conflict.status, 409);
    assert.equal(errorOf(conflict).code, "idempotency_key_reused");
    assert.equal(
      conflict.headers.get("x-should-retry"),
      "false",
      "the openai SDK will not retry it",
    );
    const elsewhere = await call("POST", "/api/v2/image/generations", {
      body: body("two"),
      headers,
    });
    assert.equal(elsewhere.status, 409, "another route is another request");
    const viaApi = await call("POST", "/api/images/generations", { body: body("two"), headers });
    assert.equal(
      viaApi.headers.get("x-image-hub-idempotency"),
      "key; replayed",
      "/api and /v1 are one",
    );
  });

  it("refuses a key that is too long or not visible ASCII", async () => {
    const long = await call("POST", "/v1/images/generations", {
      body: body("x"),
      headers: { "idempotency-key": "k".repeat(256) },
    });
    assert.equal(long.status, 400);
    assert.equal(errorOf(long).code, "invalid_idempotency_key");
  });

  it("a retry while the first runs waits for it: one upstream call", async () => {
    sim.delayMs = 400;
    const headers = { "idempotency-key": "order-3" };
    const before = upstreamCalls();
    try {
      const first = call("POST", "/v1/images/generations", { body: body("slow"), headers });
      await sleep(100);
      const retry = await call("POST", "/v1/images/generations", { body: body("slow"), headers });
      assert.equal(retry.headers.get("x-image-hub-idempotency"), "key; joined");
      assert.deepEqual(retry.body, (await first).body);
    } finally {
      sim.delayMs = 0;
    }
    assert.equal(upstreamCalls(), before + 1);
  });

  it("a failure is not kept: the retry runs again", async () => {
    const headers = { "idempotency-key": "order-4" };
    sim.failNext({
      status: 400,
      body: { error: { message: "bad", type: "invalid_request_error" } },
    });
    const failed = await call("POST", "/v1/images/generations", { body: body("f"), headers });
    assert.equal(failed.status, 400);
    const retried = await call("POST", "/v1/images/generations", { body: body("f"), headers });
    assert.equal(retried.status, 200);
    assert.equal(retried.headers.get("x-image-hub-idempotency"), "key; first");
  });

  it("a request with a key runs on when its client leaves, and the retry gets its answer", async () => {
    sim.delayMs = 500;
    const headers = { "idempotency-key": "order-5" };
    const before = upstreamCalls();
    try {
      const leaving = requestOverSocket(hub.url, hub.key, body("left"), headers);
      await sleep(150);
      leaving.leave();
      assert.equal(await leaving.answered, false);
      const retry = await call("POST", "/v1/images/generations", { body: body("left"), headers });
      assert.equal(retry.status, 200);
      assert.match(retry.headers.get("x-image-hub-idempotency") ?? "", /^key; (joined|replayed)$/);
      const record = (await records()).find(
        (row) => row.id === retry.headers.get("x-image-hub-record-id"),
      );
      assert.equal(record?.status, "succeeded", "the request that lost its client was delivered");
    } finally {
      sim.delayMs = 0;
    }
    assert.equal(upstreamCalls(), before + 1);
  });

  it("the openai SDK sends one as a request header, and its retry is answered from the first", async () => {
    const client = new OpenAI({ apiKey: hub.key, baseURL: `${hub.url}/v1`, maxRetries: 0 });
    const send = () =>
      client.images
        .generate(
          { prompt: "sdk", model: "local/placeholder", size: "64x64" },
          { headers: { "Idempotency-Key": "sdk-order-1" } },
        )
        .withResponse();
    const first = await send();
    const again = await send();
    assert.equal(first.response.headers.get("x-image-hub-idempotency"), "key; first");
    assert.equal(again.response.headers.get("x-image-hub-idempotency"), "key; replayed");
    assert.deepEqual(again.data, first.data);
  });
});
