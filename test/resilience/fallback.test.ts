/**
 * Model routes' fallbacks through the real hub: OpenAI and Google simulators behind it, routes set
 * through the admin API. A fallback serves only when the model made nothing and its failure says
 * nothing was made upstream (or the route allows it); the serving model is what the ledger
 * records and charges; the reservation never lets a fallback charge more than was reserved.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type GoogleSimulator, startGoogleSimulator } from "../sim/google.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const IMAGEN = "imagen-4.0-generate-001";

interface Reply {
  status: number;
  headers: Headers;
  body: {
    data?: Array<{ url?: string }>;
    error?: { code: string | null; message: string };
  };
}

const open: Array<{ close(): Promise<void> }> = [];
after(async () => {
  await Promise.all(open.map((item) => item.close()));
});

interface Setup {
  hub: TestHub;
  openai: OpenAISimulator;
  google: GoogleSimulator;
}

async function setUp(): Promise<Setup> {
  const [openai, google] = await Promise.all([startOpenAISimulator(), startGoogleSimulator()]);
  const hub = await startTestHub({
    OPENAI_API_KEY: openai.apiKey,
    OPENAI_BASE_URL: openai.baseURL,
    GEMINI_API_KEY: google.apiKey,
    GEMINI_BASE_URL: google.baseURL,
    MASTER_KEY: "test-master-key-for-fallbacks",
    UPSTREAM_MAX_ATTEMPTS: "1",
  });
  open.push(hub, openai, google);
  return { hub, openai, google };
}

async function admin(hub: TestHub, method: string, path: string, body?: unknown) {
  const response = await fetch(`${hub.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${hub.adminKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  assert.ok(response.status < 300, JSON.stringify(json));
  return json;
}

const putRoute = (hub: TestHub, model: string, route: Record<string, unknown>) =>
  admin(hub, "PUT", `/api/admin/routes/${model}`, route);

/** A client key with `balance` USD of credit (and `models`, if given). */
async function clientKey(hub: TestHub, balance: number | null, models?: string[]) {
  const created = await admin(hub, "POST", "/api/admin/keys", {
    name: "fallback client",
    balance,
    ...(models ? { models } : {}),
  });
  return { id: String(created.id), key: String(created.key) };
}

async function generate(hub: TestHub, key: string, body: Record<string, unknown>): Promise<Reply> {
  const response = await fetch(`${hub.url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ prompt: "a lighthouse at dusk", size: "1024x1024", ...body }),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Reply["body"],
  };
}

async function recordOf(hub: TestHub, keyId: string) {
  const [record] = await hub.db.listUsage({ keyId, limit: 1 });
  assert.ok(record);
  return record;
}

async function balanceOf(hub: TestHub, keyId: string): Promise<number | null | undefined> {
  return (await hub.db.findKey(keyId))?.balanceMicros;
}

const posts = (sim: { requests: Array<{ method: string }> }) =>
  sim.requests.filter((request) => request.method === "POST").length;

describe("a model whose calls fail, with a fallback on another provider", () => {
  test("a 503 from OpenAI: Imagen serves, the reply says so, the ledger charges Imagen", async () => {
    const { hub, openai, google } = await setUp();
    await putRoute(hub, "dall-e-3", { fallbacks: [{ model: IMAGEN }] });
    const client = await clientKey(hub, 1);
    openai.failNext({ status: 503, body: "overloaded" });

    const reply = await generate(hub, client.key, { model: "dall-e-3", quality: "hd" });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.data?.length, 1);
    assert.equal(posts(openai), 1);
    assert.equal(posts(google), 1);
    assert.match(String(reply.headers.get("x-image-hub-warnings")), /dall-e-3 failed.*imagen/);

    assert.equal(reply.headers.get("x-image-hub-model"), IMAGEN);
    const record = await recordOf(hub, client.id);
    assert.equal(reply.headers.get("x-image-hub-record-id"), record.id);
    assert.equal(record.model, IMAGEN);
    assert.equal(record.provider, "google");
    assert.equal(record.status, "succeeded");
    assert.equal(record.costMicros, 40_000, "Imagen's $0.04, not dall-e-3 hd's $0.08");
    assert.equal(await balanceOf(hub, client.id), 1_000_000 - 40_000);
    assert.equal(await hub.db.releaseReservations(Date.now() + 60_000), 0);
  });

  test("a content-policy refusal does not fall back: the request itself is at fault", async () => {
    const { hub, google } = await setUp();
    await putRoute(hub, "dall-e-3", { fallbacks: [{ model: IMAGEN }] });
    const reply = await generate(hub, hub.key, {
      model: "dall-e-3",
      prompt: "forbidden-content",
    });
    assert.equal(reply.status, 400);
    assert.equal(reply.body.error?.code, "content_policy_violation");
    assert.equal(posts(google), 0);
  });

  test("a timeout does not fall back (the image may be made and billed), unless the route allows it", async () => {
    const { hub, openai, google } = await setUp();
    await putRoute(hub, "dall-e-3", { fallbacks: [{ model: IMAGEN }], timeout_ms: 1000 });
    openai.delayMs = 1500;
    const timedOut = await generate(hub, hub.key, { model: "dall-e-3" });
    assert.equal(timedOut.status, 504);
    assert.equal(timedOut.body.error?.code, "upstream_timeout");
    assert.equal(posts(google), 0);

    await putRoute(hub, "dall-e-3", { retry_billable: true });
    const served = await generate(hub, hub.key, { model: "dall-e-3" });
    assert.equal(served.status, 200, JSON.stringify(served.body));
    assert.equal(posts(google), 1);
  });

  test("a fallback that cannot take the request (a size it lacks) is skipped", async () => {
    const { hub, openai, google } = await setUp();
    await putRoute(hub, "dall-e-3", { fallbacks: [{ model: IMAGEN }] });
    openai.failNext({ status: 503, body: "overloaded" });
    const reply = await generate(hub, hub.key, { model: "dall-e-3", size: "1792x1024" });
    assert.equal(reply.status, 503);
    assert.equal(reply.body.error?.code, "upstream_unavailable");
    assert.equal(posts(google), 0);
  });

  test("a fallback model the key may not use is skipped", async () => {
    const { hub, openai, google } = await setUp();
    await putRoute(hub, "dall-e-3", { fallbacks: [{ model: IMAGEN }] });
    const client = await clientKey(hub, null, ["dall-e-3"]);
    openai.failNext({ status: 503, body: "overloaded" });
    const reply = await generate(hub, client.key, { model: "dall-e-3" });
    assert.equal(reply.status, 503);
    assert.equal(posts(google), 0);
  });
});

describe("a fallback to another model of the same provider", () => {
  test("dall-e-3 unavailable: gpt-image-1 serves, charged from its token usage", async () => {
    const { hub, openai } = await setUp();
    await putRoute(hub, "dall-e-3", { fallbacks: [{ model: "gpt-image-1" }] });
    const client = await clientKey(hub, 1);
    openai.failNext({ status: 503, body: "overloaded" });
    const reply = await generate(hub, client.key, { model: "dall-e-3" });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const sent = openai.requests.filter((request) => request.method === "POST");
    assert.deepEqual(
      sent.map((request) => request.json?.model),
      ["dall-e-3", "gpt-image-1"],
    );
    const record = await recordOf(hub, client.id);
    assert.equal(record.model, "gpt-image-1");
    assert.ok(record.outputTokens && record.outputTokens > 0, "priced from the tokens it used");
    assert.equal(await balanceOf(hub, client.id), 1_000_000 - record.costMicros);
  });
});

describe("the reservation and fallbacks", () => {
  test("credit for the model but not its dearer fallback: served without the fallback", async () => {
    const { hub, openai, google } = await setUp();
    // dall-e-2 1024² is $0.02; Imagen $0.04. The key has $0.03.
    await putRoute(hub, "dall-e-2", { fallbacks: [{ model: IMAGEN }] });
    const client = await clientKey(hub, 0.03);

    const served = await generate(hub, client.key, { model: "dall-e-2" });
    assert.equal(served.status, 200, "never a 402 because of a fallback");
    assert.equal(await balanceOf(hub, client.id), 30_000 - 20_000);

    await admin(hub, "POST", `/api/admin/keys/${client.id}/credit`, { amount: 0.02 });
    openai.failNext({ status: 503, body: "overloaded" });
    const failed = await generate(hub, client.key, { model: "dall-e-2" });
    assert.equal(failed.status, 503, "the $0.04 fallback was not affordable up front");
    assert.equal(posts(google), 0);
    assert.equal(await balanceOf(hub, client.id), 30_000);
  });

  test("with enough credit the reservation covers the dearer fallback, and it serves", async () => {
    const { hub, openai, google } = await setUp();
    await putRoute(hub, "dall-e-2", { fallbacks: [{ model: IMAGEN }] });
    const client = await clientKey(hub, 0.05);
    openai.failNext({ status: 503, body: "overloaded" });
    const reply = await generate(hub, client.key, { model: "dall-e-2" });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(posts(google), 1);
    assert.equal(await balanceOf(hub, client.id), 50_000 - 40_000);
  });
});

describe("a fallback on another credential of the same model", () => {
  test("a credential of weight 0, out of the rotation, serves when the pool fails", async () => {
    const { hub, openai } = await setUp();
    const reserve = await startOpenAISimulator({ apiKey: "sk-reserve-credential-0123" });
    open.push(reserve);
    const credential = await admin(hub, "POST", "/api/admin/credentials", {
      provider: "openai",
      name: "reserve account",
      api_key: reserve.apiKey,
      base_url: reserve.baseURL,
      weight: 0,
    });
    await putRoute(hub, "dall-e-2", {
      fallbacks: [{ model: "dall-e-2", credential: credential.id }],
    });

    assert.equal((await generate(hub, hub.key, { model: "dall-e-2" })).status, 200);
    assert.equal(posts(reserve), 0, "weight 0: not in the rotation");

    openai.failNext({ status: 500, body: { error: { message: "The server had an error" } } });
    const reply = await generate(hub, hub.key, { model: "dall-e-2" });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(posts(reserve), 1);
    assert.equal(posts(openai), 2);
  });
});
