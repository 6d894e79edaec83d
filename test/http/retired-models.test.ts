/**
 * The spec's examples against today's OpenAI: a simulator that, like OpenAI now, answers 404
 * model_not_found for every shut-down model and enforces gpt-image-2's size rule. Requests for
 * dall-e-2 and dall-e-3 are served by gpt-image-2, exactly at the size asked, and nothing is
 * ever sent upstream with a shut-down model id.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import sharp from "sharp";
import { issueKey } from "../../src/auth/issue.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import {
  OPENAI_SHUT_DOWN_MODELS,
  type OpenAISimulator,
  startOpenAISimulator,
} from "../sim/openai.ts";

let sim: OpenAISimulator;
let hub: TestHub;

before(async () => {
  sim = await startOpenAISimulator({ shutDown: OPENAI_SHUT_DOWN_MODELS });
  hub = await startTestHub({ OPENAI_API_KEY: sim.apiKey, OPENAI_BASE_URL: sim.baseURL });
});

after(async () => {
  await hub?.close();
  await sim?.close();
});

beforeEach(() => {
  sim.requests.length = 0;
});

interface ImageReply {
  status: number;
  headers: Headers;
  body: {
    created?: number;
    data?: { url?: string; b64_json?: string }[];
    error?: Record<string, unknown>;
  };
}

/** The spec's request, as its curl examples send it. */
async function generate(body: Record<string, unknown>, key = hub.key): Promise<ImageReply> {
  const response = await fetch(`${hub.url}/api/images/generations`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as ImageReply["body"],
  };
}

/** Decodes every image of a reply (fetching hosted URLs without a key) and returns their sizes. */
async function decodedSizes(reply: ImageReply): Promise<string[]> {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const sizes: string[] = [];
  for (const item of reply.body.data ?? []) {
    let bytes: Buffer;
    if (item.url) {
      const image = await fetch(item.url);
      assert.equal(image.status, 200);
      assert.equal(image.headers.get("content-type"), "image/png");
      bytes = Buffer.from(await image.arrayBuffer());
    } else {
      bytes = Buffer.from(item.b64_json ?? "", "base64");
    }
    const metadata = await sharp(bytes).metadata();
    assert.equal(metadata.format, "png");
    sizes.push(`${metadata.width}x${metadata.height}`);
  }
  return sizes;
}

function upstreamModels(): unknown[] {
  return sim.requests
    .filter((request) => request.path.startsWith("/v1/images"))
    .map((request) => request.json?.model);
}

async function usageRecord(id: string) {
  const response = await fetch(`${hub.url}/api/usage?limit=50`, {
    headers: { authorization: `Bearer ${hub.adminKey}` },
  });
  const body = (await response.json()) as { data: Record<string, unknown>[] };
  const record = body.data.find((row) => row.id === id);
  assert.ok(record, `no usage record ${id}`);
  return record;
}

describe("the spec's two curl examples, as written", () => {
  for (const responseFormat of [undefined, "url", "b64_json"]) {
    it(`basic generation (default model dall-e-2), response_format ${responseFormat ?? "unset"}`, async () => {
      const reply = await generate({
        prompt: "A photorealistic image of a cat programming on a laptop",
        n: 1,
        size: "1024x1024",
        ...(responseFormat ? { response_format: responseFormat } : {}),
      });
      assert.deepEqual(await decodedSizes(reply), ["1024x1024"]);
      assert.equal(reply.headers.get("x-image-hub-model"), "gpt-image-2");
      assert.match(
        reply.headers.get("x-image-hub-warnings") ?? "",
        /dall-e-2 is retired .*gpt-image-2 served/,
      );
      const sent = sim.requests.find((request) => request.path === "/v1/images/generations");
      assert.equal(sent?.json?.model, "gpt-image-2");
      assert.equal(sent?.json?.size, "1024x1024");
      assert.equal(sent?.json?.quality, "medium");
      assert.deepEqual(upstreamModels(), ["gpt-image-2"]);
      const record = await usageRecord(reply.headers.get("x-image-hub-record-id") ?? "");
      assert.equal(record.model, "gpt-image-2");
      assert.equal(record.requested_model, "dall-e-2");
      assert.equal(record.status, "succeeded");
    });
  }

  for (const responseFormat of ["b64_json", "url"]) {
    it(`dall-e-3, 1792x1024, hd, vivid, ${responseFormat}`, async () => {
      const reply = await generate({
        model: "dall-e-3",
        prompt: "An oil painting of a futuristic city skyline at sunset, with flying cars",
        n: 1,
        size: "1792x1024",
        quality: "hd",
        style: "vivid",
        response_format: responseFormat,
      });
      assert.deepEqual(await decodedSizes(reply), ["1792x1024"]);
      const sent = sim.requests.find((request) => request.path === "/v1/images/generations")?.json;
      assert.equal(sent?.model, "gpt-image-2");
      assert.equal(sent?.quality, "high");
      assert.equal(sent?.style, undefined);
      assert.match(reply.headers.get("x-image-hub-warnings") ?? "", /style 'vivid' was not sent/);
      const record = await usageRecord(reply.headers.get("x-image-hub-record-id") ?? "");
      assert.equal(record.requested_model, "dall-e-3");
      assert.equal(record.model, "gpt-image-2");
    });
  }
});

describe("sizes and counts the retired models promise", () => {
  for (const size of ["256x256", "512x512"]) {
    for (const responseFormat of ["url", "b64_json"]) {
      it(`dall-e-2 at ${size} (${responseFormat}) gives decoded images of exactly ${size}`, async () => {
        const reply = await generate({
          prompt: "a small icon",
          size,
          n: 2,
          response_format: responseFormat,
        });
        assert.deepEqual(await decodedSizes(reply), [size, size]);
        const sent = sim.requests.find(
          (request) => request.path === "/v1/images/generations",
        )?.json;
        assert.equal(sent?.size, "816x816", "the nearest square gpt-image-2 makes");
        assert.match(
          reply.headers.get("x-image-hub-warnings") ?? "",
          new RegExp(`resized by the hub to ${size}`),
        );
      });
    }
  }

  it("n=3 on dall-e-3 gives 3 images from one gpt-image-2 call", async () => {
    const reply = await generate({
      model: "dall-e-3",
      prompt: "three lighthouses",
      n: 3,
      response_format: "b64_json",
    });
    assert.deepEqual(await decodedSizes(reply), ["1024x1024", "1024x1024", "1024x1024"]);
    assert.deepEqual(upstreamModels(), ["gpt-image-2"]);
  });

  it("what dall-e-3 never took stays a 400, and nothing goes upstream", async () => {
    const small = await generate({ model: "dall-e-3", prompt: "x", size: "256x256" });
    assert.equal(small.status, 400);
    assert.equal(small.body.error?.param, "size");
    const edit = await generate({
      model: "dall-e-3",
      prompt: "x",
      image: "https://example.com/a.png",
    });
    assert.equal(edit.status, 400);
    assert.equal(edit.body.error?.code, "edits_not_supported");
    assert.deepEqual(upstreamModels(), []);
  });

  it("gpt-image-1 and the models shut down on 2026-12-01 are served too; nothing shut down is sent", async () => {
    for (const model of OPENAI_SHUT_DOWN_MODELS) {
      const reply = await generate({ model, prompt: "a kite", response_format: "b64_json" });
      assert.equal(reply.status, 200, `${model}: ${JSON.stringify(reply.body)}`);
      assert.equal(reply.headers.get("x-image-hub-model"), "gpt-image-2");
    }
    for (const model of upstreamModels()) assert.equal(model, "gpt-image-2");
  });
});

describe("keys and prices follow the right model", () => {
  it("a key's models apply to the model named; the price is the serving model's", async () => {
    const { key, id } = await issueKey(hub.db, {
      name: "dall-e-3 only",
      role: "client",
      models: ["dall-e-3"],
      balanceMicros: 1_000_000,
    });
    const served = await generate(
      { model: "dall-e-3", prompt: "a harbour", response_format: "b64_json" },
      key,
    );
    assert.equal(served.status, 200, JSON.stringify(served.body));
    const direct = await generate({ model: "gpt-image-2", prompt: "a harbour" }, key);
    assert.equal(direct.status, 403);
    assert.equal(direct.body.error?.code, "model_not_allowed");
    const record = await usageRecord(served.headers.get("x-image-hub-record-id") ?? "");
    // gpt-image-2 bills tokens; the simulator reports them for a 1024x1024 medium image.
    assert.ok(Number(record.cost) > 0 && Number(record.cost) <= 0.053, `charged ${record.cost}`);
    const keyRow = await hub.db.findKey(id);
    assert.equal(keyRow?.balanceMicros, 1_000_000 - Math.round(Number(record.cost) * 1_000_000));
  });
});

describe("what the hub learned and shows", () => {
  it("GET /api/models lists retired models with status, shutdown_date and successor", async () => {
    const response = await fetch(`${hub.url}/v1/models`, {
      headers: { authorization: `Bearer ${hub.key}` },
    });
    const body = (await response.json()) as { data: Record<string, unknown>[] };
    const byId = new Map(body.data.map((model) => [model.id, model]));
    const dallE2 = byId.get("dall-e-2");
    assert.equal(dallE2?.status, "retired");
    assert.equal(dallE2?.shutdown_date, "2026-05-12");
    assert.equal(dallE2?.successor, "gpt-image-2");
    assert.deepEqual((dallE2?.upstream as { listed: unknown })?.listed, false);
    const current = byId.get("gpt-image-2");
    assert.equal(current?.status, "active");
    assert.equal(current?.shutdown_date, null);
    assert.equal(current?.successor, null);
    for (const model of body.data) {
      for (const key of ["status", "shutdown_date", "successor"])
        assert.ok(key in model, `${model.id} has ${key}`);
    }
  });

  it("turning substitution off gives 410 model_retired naming the successor", async () => {
    const patch = await hub.app.inject({
      method: "PATCH",
      url: "/api/admin/models/dall-e-3",
      headers: { authorization: `Bearer ${hub.adminKey}` },
      payload: { use_successor: false },
    });
    assert.equal(patch.statusCode, 200, patch.body);
    try {
      const reply = await generate({ model: "dall-e-3", prompt: "x" });
      assert.equal(reply.status, 410);
      assert.equal(reply.body.error?.code, "model_retired");
      assert.equal(reply.body.error?.param, "model");
      assert.match(String(reply.body.error?.message), /Use 'gpt-image-2' instead/);
      assert.deepEqual(upstreamModels(), []);
    } finally {
      await hub.app.inject({
        method: "PATCH",
        url: "/api/admin/models/dall-e-3",
        headers: { authorization: `Bearer ${hub.adminKey}` },
        payload: { use_successor: true },
      });
    }
  });
});
