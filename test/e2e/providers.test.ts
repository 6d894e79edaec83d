/**
 * Every provider kind through the whole pipeline once: one hub configured by the environment
 * for each kind's simulator (and two OpenAI-compatible servers side by side, each with its own
 * key), a key with credit, the spec's request on each kind's model, the images hosted and
 * decoded, the ledger and the balance. What each adapter does with its vendor's API in detail is
 * in test/providers/<kind>.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { issueKey } from "../../src/auth/issue.ts";
import { OPENAI_COMPATIBLE_PRESETS } from "../../src/providers/openai-compatible.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type A1111Simulator, startA1111Simulator } from "../sim/a1111.ts";
import { type AzureSimulator, startAzureSimulator } from "../sim/azure.ts";
import { type CompatibleSimulator, startCompatibleSimulator } from "../sim/openai-compatible.ts";
import { type OpenRouterSimulator, startOpenRouterSimulator } from "../sim/openrouter.ts";
import { type StabilitySimulator, startStabilitySimulator } from "../sim/stability.ts";
import { startXaiSimulator, type XaiSimulator } from "../sim/xai.ts";

const LOCALAI_KEY = "sk-localai-0123456789";
const OWN_KEY = "sk-own-server-0123456789";
const TOGETHER_KEY = "tg-together-0123456789";
const CREDIT_MICROS = 50_000_000;

let a1111: A1111Simulator;
let xai: XaiSimulator;
let openrouter: OpenRouterSimulator;
let stability: StabilitySimulator;
let azure: AzureSimulator;
let localai: CompatibleSimulator;
let together: CompatibleSimulator;
/** A server only the admin API knows of. */
let own: CompatibleSimulator;
let hub: TestHub;
let paying: { id: string; key: string };

before(async () => {
  a1111 = await startA1111Simulator();
  xai = await startXaiSimulator();
  openrouter = await startOpenRouterSimulator();
  stability = await startStabilitySimulator();
  azure = await startAzureSimulator({ deployments: { "gpt-image-2": "gpt-image-2" } });
  localai = await startCompatibleSimulator({
    quirks: OPENAI_COMPATIBLE_PRESETS.localai,
    apiKey: LOCALAI_KEY,
    extraFields: ["seed"],
  });
  together = await startCompatibleSimulator({
    quirks: OPENAI_COMPATIBLE_PRESETS.together,
    apiKey: TOGETHER_KEY,
  });
  own = await startCompatibleSimulator({
    quirks: OPENAI_COMPATIBLE_PRESETS.localai,
    apiKey: OWN_KEY,
  });
  hub = await startTestHub({
    A1111_BASE_URL: a1111.baseURL,
    XAI_API_KEY: xai.apiKey,
    XAI_BASE_URL: xai.baseURL,
    OPENROUTER_API_KEY: openrouter.apiKey,
    OPENROUTER_BASE_URL: openrouter.baseURL,
    STABILITY_API_KEY: stability.apiKey,
    STABILITY_BASE_URL: stability.baseURL,
    AZURE_OPENAI_API_KEY: azure.apiKey,
    AZURE_OPENAI_ENDPOINT: azure.endpoint,
    OPENAI_COMPATIBLE_LOCALAI_BASE_URL: localai.baseURL,
    OPENAI_COMPATIBLE_LOCALAI_API_KEY: LOCALAI_KEY,
    OPENAI_COMPATIBLE_LOCALAI_PRESET: "localai",
    OPENAI_COMPATIBLE_TOGETHER_BASE_URL: together.baseURL,
    OPENAI_COMPATIBLE_TOGETHER_API_KEY: TOGETHER_KEY,
    OPENAI_COMPATIBLE_TOGETHER_PRESET: "together",
    MASTER_KEY: "providers-test-master-key",
  });
  paying = await issueKey(hub.db, { name: "apps", role: "client", balanceMicros: CREDIT_MICROS });
  // OpenAI-compatible servers have no built-in models: the operator defines each, with a price.
  for (const [id, provider, upstream, extra] of [
    ["localai/sd-1.5", "localai", "stablediffusion", { seed: { type: "integer", minimum: 0 } }],
    ["together/flux-schnell", "together", "black-forest-labs/FLUX.1-schnell", {}],
  ] as const) {
    const created = await call("POST", "/api/admin/models", hub.adminKey, {
      id,
      provider,
      upstream_model: upstream,
      sizes: ["512x512", "1024x1024"],
      default_size: "512x512",
      max_per_call: 1,
      extra_options: extra,
      price: 0.003,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
});

after(async () => {
  await hub?.close();
  for (const sim of [a1111, xai, openrouter, stability, azure, localai, together, own]) {
    await sim?.close();
  }
});

async function call(method: string, path: string, key: string, body?: unknown) {
  const response = await fetch(`${hub.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

async function dimensionsOf(bytes: Buffer) {
  const { width, height } = await sharp(bytes).metadata();
  return { width, height };
}

/** The spec's request for `model`; the images as bytes, whichever way they came. */
async function generate(model: string, request: Record<string, unknown>) {
  const answer = await call("POST", "/api/images/generations", paying.key, {
    model,
    prompt: "A photorealistic image of a cat programming on a laptop",
    n: 1,
    ...request,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const data = answer.body.data as Array<{ url?: string; b64_json?: string }>;
  const images = await Promise.all(
    data.map(async (item) => {
      if (item.b64_json) return Buffer.from(item.b64_json, "base64");
      assert.ok(item.url?.startsWith(`${hub.url}/files/images/`), item.url);
      return Buffer.from(await (await fetch(item.url as string)).arrayBuffer());
    }),
  );
  const recordId = answer.headers.get("x-image-hub-record-id");
  const [record] = (await hub.db.listUsage({ keyId: paying.id, limit: 50 })).filter(
    (row) => row.id === recordId,
  );
  assert.ok(record, "the request has its ledger record");
  return { images, record, answer };
}

const CASES = [
  { kind: "a1111", model: "a1111/sd-checkpoint", size: "512x512", free: true },
  { kind: "xai", model: "grok-imagine-image", size: "1024x1024", free: false },
  {
    kind: "openrouter",
    model: "openrouter/gemini-3.1-flash-image",
    size: "1024x1024",
    free: false,
  },
  { kind: "stability", model: "stable-image-core", size: "1344x768", free: false },
  { kind: "azure", model: "azure/gpt-image-2", size: "1024x1024", free: false },
  { kind: "openai-compatible (LocalAI)", model: "localai/sd-1.5", size: "512x512", free: false },
  {
    kind: "openai-compatible (Together)",
    model: "together/flux-schnell",
    size: "1024x1024",
    free: false,
  },
] as const;

describe("every provider kind, the whole pipeline", () => {
  for (const { kind, model, size, free } of CASES) {
    it(`${kind}: url and b64_json, hosted and decoded, recorded and charged`, async () => {
      const [width, height] = size.split("x").map(Number);
      const before = (await hub.db.findKey(paying.id))?.balanceMicros ?? 0;
      const byUrl = await generate(model, { size });
      const byBase64 = await generate(model, { size, response_format: "b64_json" });
      for (const { images, record } of [byUrl, byBase64]) {
        assert.equal(images.length, 1);
        assert.deepEqual(await dimensionsOf(images[0] as Buffer), { width, height });
        assert.deepEqual(
          [record.status, record.model, record.imagesDelivered],
          ["succeeded", model, 1],
        );
        if (free) assert.equal(record.costMicros, 0);
        else assert.ok(record.costMicros > 0, `${model} is charged`);
      }
      const after = (await hub.db.findKey(paying.id))?.balanceMicros ?? 0;
      assert.equal(before - after, byUrl.record.costMicros + byBase64.record.costMicros);
    });
  }

  it("lists each configured kind's models with their provider", async () => {
    const listed = await call("GET", "/api/models", paying.key);
    const providers = new Map(
      (listed.body.data as Array<{ id: string; provider: string }>).map((row) => [
        row.id,
        row.provider,
      ]),
    );
    for (const [model, provider] of [
      ["a1111/sd-checkpoint", "a1111"],
      ["grok-imagine-image", "xai"],
      ["stable-image-ultra", "stability"],
      ["openrouter/gpt-image-2", "openrouter"],
      ["azure/gpt-image-2", "azure"],
      ["localai/sd-1.5", "localai"],
      ["together/flux-schnell", "together"],
    ]) {
      assert.equal(providers.get(model as string), provider, model);
    }
  });

  it("two OpenAI-compatible instances side by side, each reached with its own key", () => {
    const keyOf = (sim: CompatibleSimulator) =>
      sim.requests
        .filter((request) => request.path.endsWith("/images/generations"))
        .map((request) => request.headers.authorization);
    assert.ok(keyOf(localai).length > 0 && keyOf(together).length > 0);
    assert.deepEqual([...new Set(keyOf(localai))], [`Bearer ${LOCALAI_KEY}`]);
    assert.deepEqual([...new Set(keyOf(together))], [`Bearer ${TOGETHER_KEY}`]);
  });

  it("a model that sizes by aspect ratio makes the nearest and the hub resizes to the size asked", async () => {
    const { images, answer } = await generate("grok-imagine-image", { size: "1280x720" });
    assert.deepEqual(await dimensionsOf(images[0] as Buffer), { width: 1280, height: 720 });
    assert.match(
      answer.headers.get("x-image-hub-warnings") ?? "",
      /resized by the hub to 1280x720/,
    );
  });

  it("an instance defined through the admin API serves the models put on it", async () => {
    const credential = await call("POST", "/api/admin/credentials", hub.adminKey, {
      provider: "mine",
      kind: "openai-compatible",
      name: "the team's server",
      base_url: own.baseURL,
      api_key: OWN_KEY,
      options: { preset: "localai" },
    });
    assert.equal(credential.status, 201, JSON.stringify(credential.body));
    const model = await call("POST", "/api/admin/models", hub.adminKey, {
      id: "mine/sdxl",
      provider: "mine",
      upstream_model: "sdxl",
      sizes: ["1024x1024"],
      price: 0.002,
    });
    assert.equal(model.status, 201, JSON.stringify(model.body));
    const { images, record } = await generate("mine/sdxl", { size: "1024x1024" });
    assert.deepEqual(await dimensionsOf(images[0] as Buffer), { width: 1024, height: 1024 });
    assert.deepEqual([record.provider, record.costMicros], ["mine", 2000]);
    assert.equal(own.requests.at(-1)?.headers.authorization, `Bearer ${OWN_KEY}`);
  });

  it("passes a vendor option the model declares, and refuses one it does not", async () => {
    const seeded = await generate("localai/sd-1.5", { size: "512x512", extra: { seed: 42 } });
    assert.equal(seeded.record.status, "succeeded");
    const last = localai.requests.at(-1);
    assert.equal(last?.json?.seed, 42, "the seed reached the server as its own field");
    const refused = await call("POST", "/api/images/generations", paying.key, {
      model: "together/flux-schnell",
      prompt: "p",
      extra: { seed: 42 },
    });
    assert.equal(refused.status, 400);
    assert.equal((refused.body.error as { param: string }).param, "extra.seed");
  });
});
