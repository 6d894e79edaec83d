/**
 * The HTTP surface of the hub as a plain HTTP client sees it: health, the OpenAPI document,
 * authentication, error shapes, the admin API, the model list, the spec's two examples sent
 * verbatim, body limits, and the usage record each image request leaves behind.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import type { UsageRecord } from "../../src/storage/db/types.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { requestOverSocket } from "../helpers/leaving-request.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

let sim: OpenAISimulator;
let hub: TestHub;

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

/** A request to the hub; `body` is sent as is when a string, as JSON otherwise. */
async function call(
  path: string,
  options: {
    method?: string;
    key?: string | null;
    body?: unknown;
    headers?: Record<string, string>;
    target?: TestHub;
  } = {},
): Promise<Reply> {
  const target = options.target ?? hub;
  const key = options.key === undefined ? target.key : options.key;
  const headers: Record<string, string> = { ...options.headers };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | Buffer | undefined;
  if (options.body !== undefined) {
    body =
      typeof options.body === "string" || Buffer.isBuffer(options.body)
        ? options.body
        : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const response = await fetch(`${target.url}${path}`, {
    method: options.method ?? (body === undefined ? "GET" : "POST"),
    headers,
    body,
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: kept as text.
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Checks the OpenAI error shape, exactly its four fields, and returns the error. */
function errorOf(reply: Reply, status: number, code: string): ErrorBody["error"] {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  const error = (reply.body as Partial<ErrorBody>).error;
  assert.ok(error, `an OpenAI error body: ${JSON.stringify(reply.body)}`);
  assert.deepEqual(Object.keys(reply.body as object), ["error"]);
  assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"]);
  assert.equal(typeof error.message, "string");
  assert.ok(error.message.length > 0);
  assert.equal(error.code, code);
  return error;
}

/** A fresh client key from the admin API, so usage records can be read by key. */
async function newClientKey(name: string): Promise<{ id: string; key: string }> {
  const reply = await call("/api/admin/keys", { key: hub.adminKey, body: { name } });
  assert.equal(reply.status, 201);
  return reply.body as { id: string; key: string };
}

async function usageOf(keyId: string): Promise<UsageRecord[]> {
  return hub.db.listUsage({ keyId, limit: 10 });
}

async function dimensionsOfBase64(base64: string | undefined) {
  assert.ok(base64);
  const { width, height } = await sharp(Buffer.from(base64, "base64")).metadata();
  return { width, height };
}

before(async () => {
  sim = await startOpenAISimulator();
  hub = await startTestHub({ OPENAI_API_KEY: sim.apiKey, OPENAI_BASE_URL: sim.baseURL });
});

after(async () => {
  await hub?.close();
  await sim?.close();
});

describe("health and OpenAPI", () => {
  it("GET /healthz answers 200 without a key", async () => {
    const reply = await call("/healthz", { key: null });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { status: "ok" });
  });

  it("GET /openapi.json is OpenAPI 3.1 with both generation paths and the prompt", async () => {
    const reply = await call("/openapi.json", { key: null });
    assert.equal(reply.status, 200);
    const document = reply.body as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody?: {
              content: Record<
                string,
                { schema: { properties: Record<string, unknown>; required?: string[] } }
              >;
            };
          }
        >
      >;
    };
    assert.match(document.openapi, /^3\.1\./);
    for (const path of ["/api/images/generations", "/v1/images/generations"]) {
      const post = document.paths[path]?.post;
      assert.ok(post, `POST ${path} documented`);
      const schema = post.requestBody?.content["application/json"]?.schema;
      assert.ok(schema?.properties.prompt, `${path} documents prompt`);
      assert.ok(schema?.required?.includes("prompt"));
    }
    assert.ok(document.paths["/api/images/edits"]?.post);
    assert.ok(document.paths["/api/models"]?.get);
    assert.equal(document.paths["/healthz"], undefined, "hidden routes stay hidden");
  });

  it("echoes a sane X-Request-Id", async () => {
    const reply = await call("/healthz", { key: null, headers: { "x-request-id": "trace-42" } });
    assert.equal(reply.headers.get("x-request-id"), "trace-42");
  });
});

describe("authentication and error shapes", () => {
  it("answers 401 in the OpenAI shape without an Authorization header", async () => {
    const reply = await call("/api/images/generations", {
      key: null,
      body: { prompt: "a cat" },
    });
    const error = errorOf(reply, 401, "invalid_api_key");
    assert.equal(error.type, "authentication_error");
  });

  it("answers 401 before looking at the body, even when it is not JSON", async () => {
    const reply = await call("/v1/images/generations", { key: null, body: "{not json" });
    errorOf(reply, 401, "invalid_api_key");
  });

  it("answers 401 for an unknown key and for a non-bearer scheme", async () => {
    errorOf(
      await call("/api/images/generations", { key: "sk-unknown", body: { prompt: "x" } }),
      401,
      "invalid_api_key",
    );
    errorOf(
      await call("/api/images/generations", {
        key: null,
        headers: { authorization: `Basic ${Buffer.from(`u:${hub.key}`).toString("base64")}` },
        body: { prompt: "x" },
      }),
      401,
      "invalid_api_key",
    );
  });

  it("answers 400 invalid_json for a body that is not JSON", async () => {
    const reply = await call("/api/images/generations", { body: "{not json" });
    const error = errorOf(reply, 400, "invalid_json");
    assert.equal(error.type, "invalid_request_error");
  });

  it("answers 400 invalid_json for an empty JSON body", async () => {
    const reply = await call("/api/images/generations", { method: "POST", body: "" });
    errorOf(reply, 400, "invalid_json");
  });

  it("answers 400 naming a missing prompt", async () => {
    const error = errorOf(
      await call("/api/images/generations", { body: { model: "local/placeholder" } }),
      400,
      "missing_required_parameter",
    );
    assert.equal(error.param, "prompt");
  });

  it("answers 400 naming response_format with the allowed values", async () => {
    const error = errorOf(
      await call("/api/images/generations", {
        body: { model: "local/placeholder", prompt: "x", response_format: "jpeg" },
      }),
      400,
      "invalid_value",
    );
    assert.equal(error.param, "response_format");
    assert.match(error.message, /url/);
    assert.match(error.message, /b64_json/);
  });

  it("answers 415 for a body that is neither JSON nor multipart", async () => {
    const reply = await call("/api/images/generations", {
      body: "prompt=a+cat",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    errorOf(reply, 415, "unsupported_media_type");
  });

  it("answers a text/plain body with 415 in the OpenAI shape", async () => {
    const reply = await call("/api/images/generations", {
      body: "a cat",
      headers: { "content-type": "text/plain" },
    });
    errorOf(reply, 415, "unsupported_media_type");
  });

  it("points a multipart request to the edits endpoint", async () => {
    const form = new FormData();
    form.append("prompt", "a cat");
    const encoded = new Response(form);
    const reply = await call("/api/images/generations", {
      body: Buffer.from(await encoded.arrayBuffer()),
      headers: { "content-type": encoded.headers.get("content-type") ?? "" },
    });
    errorOf(reply, 415, "unsupported_media_type");
    assert.match((reply.body as ErrorBody).error.message, /\/images\/edits/);
  });

  it("takes types as sent: a string n is a 400 naming n", async () => {
    const reply = await call("/api/images/generations", {
      body: { model: "local/placeholder", prompt: "a cat", n: "2" },
    });
    errorOf(reply, 400, "invalid_value");
    assert.equal((reply.body as ErrorBody).error.param, "n");
  });

  it("answers an unknown route with 404 in the OpenAI shape", async () => {
    errorOf(await call("/api/no/such/route"), 404, "unknown_url");
    errorOf(await call("/v1/chat/completions", { body: {} }), 404, "unknown_url");
  });
});

describe("admin API", () => {
  it("creates a client key with the admin key (201), and the new key generates", async () => {
    const reply = await call("/api/admin/keys", {
      key: hub.adminKey,
      body: { name: "integration" },
    });
    assert.equal(reply.status, 201);
    const created = reply.body as Record<string, unknown>;
    assert.equal(typeof created.key, "string");
    assert.equal(created.object, "api_key");
    assert.equal(created.name, "integration");
    assert.equal(created.role, "client");
    assert.equal(typeof created.id, "string");
    assert.ok(Number.isInteger(created.created_at));

    const generation = await call("/api/images/generations", {
      key: created.key as string,
      body: { model: "local/placeholder", prompt: "hello", size: "64x64" },
    });
    assert.equal(generation.status, 200);
  });

  it("refuses a client key with 403 in the OpenAI shape", async () => {
    const reply = await call("/api/admin/keys", { body: { name: "sneaky" } });
    const error = errorOf(reply, 403, "permission_denied");
    assert.equal(error.type, "permission_error");
  });

  it("refuses no key with 401", async () => {
    errorOf(
      await call("/api/admin/keys", { key: null, body: { name: "anon" } }),
      401,
      "invalid_api_key",
    );
  });

  it("answers 400 naming a missing name", async () => {
    const error = errorOf(
      await call("/api/admin/keys", { key: hub.adminKey, body: {} }),
      400,
      "missing_required_parameter",
    );
    assert.equal(error.param, "name");
  });

  it("an admin key created through the API may create keys too", async () => {
    const reply = await call("/api/admin/keys", {
      key: hub.adminKey,
      body: { name: "second admin", role: "admin" },
    });
    assert.equal(reply.status, 201);
    const admin = reply.body as { key: string; role: string };
    assert.equal(admin.role, "admin");
    const nested = await call("/api/admin/keys", { key: admin.key, body: { name: "by admin" } });
    assert.equal(nested.status, 201);
  });
});

describe("GET /api/models", () => {
  for (const path of ["/api/models", "/v1/models"]) {
    it(`${path} lists the placeholder and the OpenAI models, not Google's`, async () => {
      const reply = await call(path);
      assert.equal(reply.status, 200);
      const list = reply.body as {
        object: string;
        data: Array<{ id: string; object: string; kind: string; provider: string }>;
      };
      assert.equal(list.object, "list");
      const ids = list.data.map((model) => model.id);
      const placeholder = list.data.find((model) => model.id === "local/placeholder");
      assert.equal(placeholder?.kind, "placeholder");
      assert.ok(ids.includes("dall-e-2"));
      assert.ok(ids.includes("dall-e-3"));
      assert.ok(ids.includes("gpt-image-1"));
      assert.deepEqual(
        list.data.filter((model) => model.provider === "google").map((model) => model.id),
        [],
      );
      assert.ok(!ids.some((id) => /gemini|imagen/.test(id)));
      for (const model of list.data) assert.equal(model.object, "model");
    });
  }

  it("needs a key", async () => {
    errorOf(await call("/api/models", { key: null }), 401, "invalid_api_key");
  });

  it("a Google model is 404 on a hub without Gemini credentials", async () => {
    const error = errorOf(
      await call("/api/images/generations", {
        body: { model: "gemini-2.5-flash-image", prompt: "x" },
      }),
      404,
      "model_not_found",
    );
    assert.equal(error.param, "model");
  });
});

describe("the spec's examples, verbatim", () => {
  it("Basic Image Generation: default model dall-e-2, a URL", async () => {
    const from = sim.requests.length;
    const before = Date.now();
    const reply = await call("/api/images/generations", {
      body: `{
    "prompt": "A photorealistic image of a cat programming on a laptop",
    "n": 1,
    "size": "1024x1024"
}`,
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const body = reply.body as { created: number; data: Array<Record<string, string>> };
    assert.deepEqual(Object.keys(body), ["created", "data"]);
    assert.ok(Number.isInteger(body.created));
    assert.ok(body.created >= Math.floor(before / 1000) - 1);
    assert.ok(body.created <= Math.ceil(Date.now() / 1000));
    assert.equal(body.data.length, 1);
    assert.deepEqual(Object.keys(body.data[0] ?? {}), ["url"]);

    const calls = sim.requests.slice(from).filter((r) => r.path === "/v1/images/generations");
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.json?.model, "dall-e-2");
    assert.equal(calls[0]?.json?.size, "1024x1024");
    assert.equal(reply.headers.get("x-image-hub-model"), "dall-e-2");

    const image = await fetch(body.data[0]?.url ?? "");
    assert.equal(image.status, 200);
    assert.equal(image.headers.get("content-type"), "image/png");
    const { width, height } = await sharp(Buffer.from(await image.arrayBuffer())).metadata();
    assert.deepEqual([width, height], [1024, 1024]);
  });

  it("Generating with DALL·E 3 and Base64 Response", async () => {
    const reply = await call("/api/images/generations", {
      body: `{
    "model": "dall-e-3",
    "prompt": "An oil painting of a futuristic city skyline at sunset, with flying cars",
    "n": 1,
    "size": "1792x1024",
    "quality": "hd",
    "style": "vivid",
    "response_format": "b64_json"
}`,
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const body = reply.body as { created: number; data: Array<Record<string, string>> };
    assert.deepEqual(Object.keys(body), ["created", "data"]);
    assert.ok(Number.isInteger(body.created));
    assert.ok(Math.abs(body.created - Date.now() / 1000) < 60);
    assert.equal(body.data.length, 1);
    assert.equal(body.data[0]?.url, undefined);
    assert.ok(body.data[0]?.b64_json?.startsWith("iVBORw0KGgo"), "PNG base64");
    assert.deepEqual(await dimensionsOfBase64(body.data[0]?.b64_json), {
      width: 1792,
      height: 1024,
    });
  });
});

describe("body limits", () => {
  let small: TestHub;

  before(async () => {
    small = await startTestHub({ MAX_BODY_BYTES: "100000" });
  });

  after(async () => {
    await small?.close();
  });

  it("answers 413 in the OpenAI shape for a body over MAX_BODY_BYTES", async () => {
    const reply = await call("/api/images/generations", {
      target: small,
      key: small.key,
      body: { model: "local/placeholder", prompt: "x", image: "A".repeat(200_000) },
    });
    errorOf(reply, 413, "payload_too_large");
  });

  it("answers 401, not 413, to an oversized body without a key", async () => {
    const response = await small.app.inject({
      method: "POST",
      url: "/api/images/generations",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({ prompt: "x".repeat(200_000) }),
    });
    assert.equal(response.statusCode, 401);
  });

  // MAX_BODY_BYTES holds for multipart too, which the multipart plugin does not apply itself.
  it("answers 413 for a multipart edit over MAX_BODY_BYTES", async () => {
    // Random pixels do not compress: about 480 KB of PNG.
    const noisy = await sharp(randomBytes(400 * 400 * 3), {
      raw: { width: 400, height: 400, channels: 3 },
    })
      .png()
      .toBuffer();
    assert.ok(noisy.length > 300_000, `the image alone is over the limit: ${noisy.length}`);
    const form = new FormData();
    form.append("model", "local/placeholder");
    form.append("prompt", "x");
    form.append("size", "16x16");
    form.append("image", new Blob([noisy], { type: "image/png" }), "big.png");
    const encoded = new Response(form);
    const response = await small.app.inject({
      method: "POST",
      url: "/api/images/edits",
      headers: {
        authorization: `Bearer ${small.key}`,
        "content-type": encoded.headers.get("content-type") ?? "",
      },
      payload: Buffer.from(await encoded.arrayBuffer()),
    });
    errorOf(
      { status: response.statusCode, headers: new Headers(), body: response.json() },
      413,
      "payload_too_large",
    );
  });

  it("accepts a body under the limit", async () => {
    const reply = await call("/api/images/generations", {
      target: small,
      key: small.key,
      body: { model: "local/placeholder", prompt: "x".repeat(30_000), size: "32x32" },
    });
    assert.equal(reply.status, 200);
  });
});

describe("input image URLs", () => {
  it("refuses loopback, link-local and file: URLs when IMAGE_FETCH_ALLOW_CIDRS is unset", async () => {
    for (const image of [
      `${hub.url}/healthz`,
      "http://169.254.169.254/latest/meta-data/",
      "http://[::1]:9/x.png",
      "file:///etc/passwd",
    ]) {
      const error = errorOf(
        await call("/api/images/generations", {
          body: { model: "local/placeholder", prompt: "x", image },
        }),
        400,
        "invalid_image_url",
      );
      assert.equal(error.param, "image");
      assert.ok(!error.message.includes("127.0.0.1"), "the message names no address");
    }
  });
});

describe("usage records", () => {
  it("writes one record per request with what was delivered", async () => {
    const { id, key } = await newClientKey("usage-success");
    const reply = await call("/api/images/generations", {
      key,
      body: { model: "dall-e-2", prompt: "two owls", n: 2, size: "512x512" },
    });
    assert.equal(reply.status, 200);
    assert.equal((reply.body as { data: unknown[] }).data.length, 2);
    const records = await usageOf(id);
    assert.equal(records.length, 1);
    const [record] = records;
    assert.equal(record?.keyId, id);
    assert.equal(record?.model, "dall-e-2");
    assert.equal(record?.provider, "openai");
    assert.equal(record?.imagesRequested, 2);
    assert.equal(record?.imagesDelivered, 2);
    assert.equal(record?.size, "512x512");
    assert.equal(record?.responseFormat, "url");
    assert.equal(record?.status, "succeeded");
    assert.equal(record?.errorCode, null);
    assert.ok((record?.latencyMs ?? -1) >= 0);
    assert.ok(record?.upstreamLatencyMs !== null);
  });

  it("records a failed upstream call as failed with its error code", async () => {
    const { id, key } = await newClientKey("usage-failure");
    sim.failNext({
      status: 500,
      body: { error: { message: "boom", type: "server_error", param: null, code: null } },
    });
    const reply = await call("/api/images/generations", {
      key,
      body: { model: "dall-e-2", prompt: "an owl", response_format: "b64_json" },
    });
    errorOf(reply, 502, "upstream_error");
    const [record] = await usageOf(id);
    assert.equal(record?.status, "failed");
    assert.equal(record?.errorCode, "upstream_error");
    assert.equal(record?.imagesDelivered, 0);
    assert.equal(record?.responseFormat, "b64_json");
  });

  it("records a request the plan refuses as failed with the refusal's code", async () => {
    const { id, key } = await newClientKey("usage-refused");
    const reply = await call("/api/images/generations", {
      key,
      body: { model: "dall-e-3", prompt: "an owl", size: "512x512" },
    });
    errorOf(reply, 400, "invalid_size");
    const [record] = await usageOf(id);
    assert.equal(record?.status, "failed");
    assert.equal(record?.errorCode, "invalid_size");
    assert.equal(record?.imagesDelivered, 0);
  });

  it("answers a partial fan-out with the images made, a header and a partial record", async () => {
    const { id, key } = await newClientKey("usage-partial");
    const png = await sharp({
      create: { width: 1024, height: 1024, channels: 3, background: { r: 1, g: 2, b: 3 } },
    })
      .png()
      .toBuffer();
    const from = sim.requests.length;
    // Scripted replies go to requests in the order they arrive: the first gets a good image,
    // the second a 500, and the third is served by the simulator as usual.
    sim.failNext({
      status: 200,
      body: { created: 1, data: [{ b64_json: png.toString("base64"), revised_prompt: "x" }] },
    });
    sim.failNext({
      status: 500,
      body: { error: { message: "boom", type: "server_error", param: null, code: null } },
    });
    const reply = await call("/api/images/generations", {
      key,
      body: { model: "dall-e-3", prompt: "three owls", n: 3, response_format: "b64_json" },
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const data = (reply.body as { data: Array<{ b64_json?: string }> }).data;
    assert.equal(data.length, 2);
    assert.ok(data.some((image) => image.b64_json === png.toString("base64")));
    const calls = sim.requests.slice(from).filter((r) => r.path === "/v1/images/generations");
    assert.equal(calls.length, 3);
    const partial = reply.headers.get("x-image-hub-partial") ?? "";
    assert.match(partial, /requested=3/);
    assert.match(partial, /delivered=2/);
    assert.match(partial, /error=upstream_error/);

    const [record] = await usageOf(id);
    assert.equal(record?.status, "partial");
    assert.equal(record?.imagesRequested, 3);
    assert.equal(record?.imagesDelivered, 2);
    assert.equal(record?.errorCode, "upstream_error");
  });

  it("fails the whole request when every call of a fan-out fails", async () => {
    const { id, key } = await newClientKey("usage-all-failed");
    for (let index = 0; index < 2; index++) {
      sim.failNext({
        status: 500,
        body: { error: { message: "boom", type: "server_error", param: null, code: null } },
      });
    }
    const reply = await call("/api/images/generations", {
      key,
      body: { model: "dall-e-3", prompt: "two owls", n: 2 },
    });
    errorOf(reply, 502, "upstream_error");
    assert.equal(reply.headers.get("x-image-hub-partial"), null);
    const [record] = await usageOf(id);
    assert.equal(record?.status, "failed");
    assert.equal(record?.imagesDelivered, 0);
  });

  it("cancels the upstream calls and records client_disconnected when the client leaves", async () => {
    const { id, key } = await newClientKey("usage-disconnect");
    const from = sim.requests.length;
    sim.delayMs = 1000;
    try {
      const request = requestOverSocket(hub.url, key, {
        model: "dall-e-3",
        prompt: "slow owls",
        n: 2,
      });
      while (sim.requests.length < from + 2) await sleep(10);
      request.leave();
      assert.equal(await request.answered, false);
      let records: UsageRecord[] = [];
      for (let waited = 0; records.length === 0 && waited < 900; waited += 20) {
        await sleep(20);
        records = await usageOf(id);
      }
      const [record] = records;
      assert.ok(record, "recorded before the upstream would have answered");
      assert.equal(record.status, "failed");
      assert.equal(record.errorCode, "client_disconnected");
      assert.equal(record.imagesDelivered, 0);
      for (const upstream of sim.requests.slice(from)) {
        assert.equal(upstream.reply, undefined, "the upstream call was cancelled");
      }
    } finally {
      sim.delayMs = 0;
    }
  });
});

describe("shutdown", () => {
  // A connection that was opened but never sent a request (a load balancer's pre-warmed socket)
  // must not hold shutdown until Node's headers timeout, 60 s or more.
  it("closes promptly although a client holds a connection that sent no request", async () => {
    const target = await startTestHub();
    const { hostname, port } = new URL(target.url);
    const socket = connect(Number(port), hostname);
    await once(socket, "connect");
    const started = Date.now();
    const closing = target.close().then(() => Date.now() - started);
    try {
      const outcome = await Promise.race([closing, sleep(2000).then(() => "still open")]);
      assert.equal(typeof outcome, "number", "the hub closed within 2 s");
    } finally {
      socket.destroy();
      await closing;
    }
  });

  // A keep-alive connection whose request was in flight when close began becomes idle after its
  // reply; it must not stay open until Fastify's keepAliveTimeout (72 s).
  it("finishes an in-flight request and then closes promptly", async () => {
    const slowSim = await startOpenAISimulator();
    const target = await startTestHub({
      OPENAI_API_KEY: slowSim.apiKey,
      OPENAI_BASE_URL: slowSim.baseURL,
    });
    slowSim.delayMs = 300;
    try {
      const inFlight = call("/api/images/generations", {
        target,
        key: target.key,
        body: { model: "dall-e-2", prompt: "an owl at closing time", size: "256x256" },
      });
      // The hub read the model list at start; wait for the image request itself.
      while (!slowSim.requests.some((request) => request.path.startsWith("/v1/images"))) {
        await sleep(10);
      }
      const started = Date.now();
      const closing = target.close().then(() => Date.now() - started);
      try {
        assert.equal((await inFlight).status, 200, "the request in flight is answered");
        const outcome = await Promise.race([closing, sleep(2000).then(() => "still open")]);
        assert.equal(typeof outcome, "number", "the hub closed within 2 s");
      } finally {
        // Whatever the outcome, do not leave the connection to hold the test run open.
        target.app.server.closeAllConnections();
        await closing;
      }
    } finally {
      await slowSim.close();
    }
  });
});
