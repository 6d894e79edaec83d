/**
 * Every way an upstream can fail, through the real hub against a loopback upstream that fails on
 * request (test/sim/faults.ts). For each fault the client gets the documented error and nothing
 * about the upstream's address or key, the hub hangs up on the upstream where it should, the
 * request costs nothing and leaves no reservation open, the usage record names the error, and
 * the next request is served as usual.
 *
 * Retries are off (`UPSTREAM_MAX_ATTEMPTS=1`) so each fault is met exactly once; retries have
 * tests of their own.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import sharp from "sharp";
import { upstreamRateLimited } from "../../src/errors.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import {
  type Fault,
  type FaultyUpstream,
  type Outcome,
  outcomeWithin,
  startFaultyUpstream,
} from "../sim/faults.ts";

const UPSTREAM_KEY = "sk-upstream-secret-9f8e7d6c5b4a";
const TIMEOUT_MS = 400;
const MAX_REPLY_BYTES = 65_536;
const INITIAL_CREDIT_USD = 1;
/** Long enough for any hang-up on loopback; only reached when the hub never hangs up. */
const SETTLE_CAP_MS = 5000;

/** The OpenAI error type of every upstream failure but a rate limit, as OpenAI types its 5xx. */
const SERVER_ERROR = "server_error";

const HUB_SETTINGS = {
  OPENAI_API_KEY: UPSTREAM_KEY,
  UPSTREAM_MAX_ATTEMPTS: "1",
  UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS),
  MAX_UPSTREAM_REPLY_BYTES: String(MAX_REPLY_BYTES),
};

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: unknown;
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

interface FaultCase {
  name: string;
  fault: Fault;
  status: number;
  code: string;
  type: string;
  retryAfter?: string;
  /** How the upstream saw the exchange end; unchecked where the kernel's buffers decide it. */
  upstreamSees?: Outcome;
}

const FAULTS: FaultCase[] = [
  {
    name: "a 500",
    fault: { kind: "status", status: 500 },
    status: 502,
    code: "upstream_error",
    type: SERVER_ERROR,
    upstreamSees: "answered",
  },
  {
    name: "a 502",
    fault: { kind: "status", status: 502 },
    status: 502,
    code: "upstream_error",
    type: SERVER_ERROR,
    upstreamSees: "answered",
  },
  {
    name: "a 503 with Retry-After",
    fault: { kind: "status", status: 503, retryAfter: 7 },
    status: 503,
    code: "upstream_unavailable",
    type: SERVER_ERROR,
    retryAfter: "7",
    upstreamSees: "answered",
  },
  {
    name: "a 200 whose body is not JSON",
    fault: { kind: "malformedJson" },
    status: 502,
    code: "upstream_invalid_response",
    type: SERVER_ERROR,
    upstreamSees: "answered",
  },
  {
    name: "a body cut short of its Content-Length",
    fault: { kind: "truncated" },
    status: 502,
    code: "upstream_connection_lost",
    type: SERVER_ERROR,
    upstreamSees: "cut",
  },
  {
    name: "headers later than the timeout",
    fault: { kind: "slowHeaders", ms: 10 * TIMEOUT_MS },
    status: 504,
    code: "upstream_timeout",
    type: SERVER_ERROR,
    upstreamSees: "aborted",
  },
  {
    name: "a body trickling past the timeout (each gap shorter than it)",
    fault: { kind: "slowBody", ms: 10 * TIMEOUT_MS },
    status: 504,
    code: "upstream_timeout",
    type: SERVER_ERROR,
    upstreamSees: "aborted",
  },
  {
    name: "a body stalling past the timeout",
    fault: { kind: "slowBody", ms: 10 * TIMEOUT_MS, stall: true },
    status: 504,
    code: "upstream_timeout",
    type: SERVER_ERROR,
    upstreamSees: "aborted",
  },
  {
    name: "a connection reset before any reply",
    fault: { kind: "reset" },
    status: 502,
    code: "upstream_connection_lost",
    type: SERVER_ERROR,
    upstreamSees: "cut",
  },
  {
    name: "a reply over the cap, declared by Content-Length",
    fault: { kind: "oversized", bytes: 16 * MAX_REPLY_BYTES },
    status: 502,
    code: "upstream_reply_too_large",
    type: SERVER_ERROR,
  },
  {
    // Refused on its header alone: reading first would mean allocating what it declares.
    name: "a Content-Length of petabytes",
    fault: { kind: "oversized", bytes: 2 ** 52 },
    status: 502,
    code: "upstream_reply_too_large",
    type: SERVER_ERROR,
  },
  {
    name: "a reply over the cap, chunked without a Content-Length",
    fault: { kind: "oversized", bytes: 16 * MAX_REPLY_BYTES, chunked: true },
    status: 502,
    code: "upstream_reply_too_large",
    type: SERVER_ERROR,
  },
];

let upstream: FaultyUpstream;
let hub: TestHub;
let png: Buffer;

before(async () => {
  upstream = await startFaultyUpstream();
  hub = await startTestHub({ ...HUB_SETTINGS, OPENAI_BASE_URL: upstream.baseURL });
  png = await sharp({
    create: { width: 64, height: 64, channels: 3, background: { r: 10, g: 90, b: 200 } },
  })
    .png()
    .toBuffer();
});

afterEach(() => upstream.clearFaults());

after(async () => {
  await hub?.close();
  await upstream?.close();
});

async function call(
  target: TestHub,
  path: string,
  key: string,
  body?: Record<string, unknown>,
): Promise<Reply> {
  const response = await fetch(`${target.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Kept as text.
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** A client key with credit, made through the admin API, so its balance can be checked. */
async function fundedKey(target: TestHub, name: string): Promise<{ id: string; key: string }> {
  const reply = await call(target, "/api/admin/keys", target.adminKey, {
    name,
    balance: INITIAL_CREDIT_USD,
  });
  assert.equal(reply.status, 201, shown(reply));
  return reply.body as { id: string; key: string };
}

function generate(target: TestHub, key: string, extra: Record<string, unknown> = {}) {
  return call(target, "/api/images/generations", key, {
    model: "dall-e-3",
    prompt: "a lighthouse in a storm",
    response_format: "b64_json",
    ...extra,
  });
}

/** The start of a reply, for assertion messages (a wrongly accepted oversized reply is 1 MiB). */
function shown(reply: Reply): string {
  return reply.text.length > 300 ? `${reply.text.slice(0, 300)}…` : reply.text;
}

function errorOf(reply: Reply, status: number, code: string): ErrorBody["error"] {
  assert.equal(reply.status, status, shown(reply));
  const error = (reply.body as Partial<ErrorBody>).error;
  assert.ok(error, `an OpenAI error body: ${shown(reply)}`);
  assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"]);
  assert.equal(error.code, code, shown(reply));
  assert.ok(error.message.length > 0);
  return error;
}

/** Nothing in the reply tells the client where the upstream is or which key the hub uses. */
function assertNothingLeaks(reply: Reply, port: number) {
  assert.ok(!/127\.0\.0\.1|localhost/.test(reply.text), `no upstream address: ${shown(reply)}`);
  assert.ok(!reply.text.includes(String(port)), `no upstream port: ${shown(reply)}`);
  assert.ok(!reply.text.includes(UPSTREAM_KEY), "no upstream key");
  for (const [name, value] of reply.headers) {
    assert.ok(!value.includes(UPSTREAM_KEY), `no upstream key in ${name}`);
  }
}

/** The failed request cost nothing, holds nothing, and left one record naming its error. */
async function assertSettledAsFailed(target: TestHub, keyId: string, code: string) {
  const records = await target.db.listUsage({ keyId, limit: 10 });
  assert.equal(records.length, 1, "one usage record");
  const [record] = records;
  assert.equal(record?.status, "failed");
  assert.equal(record?.errorCode, code);
  assert.equal(record?.costMicros, 0);
  assert.equal(record?.imagesDelivered, 0);
  const key = await call(target, `/api/admin/keys/${keyId}`, target.adminKey);
  assert.equal(key.status, 200, shown(key));
  assert.equal((key.body as { balance: number }).balance, INITIAL_CREDIT_USD, "credit is back");
  assert.equal(
    await target.db.releaseReservations(Date.now() + 60_000),
    0,
    "no reservation left open",
  );
}

/** The hub is alive and serves the next request normally, on the same key. */
async function assertServesNext(target: TestHub, key: string) {
  const reply = await generate(target, key);
  assert.equal(reply.status, 200, shown(reply));
  const [image] = (reply.body as { data: Array<{ b64_json: string }> }).data;
  const metadata = await sharp(Buffer.from(image?.b64_json ?? "", "base64")).metadata();
  assert.equal(metadata.format, "png");
}

describe("upstream faults reach the client as documented errors", () => {
  for (const fault of FAULTS) {
    it(`${fault.name} → ${fault.status} ${fault.code}`, async () => {
      const { id, key } = await fundedKey(hub, fault.name);
      const from = upstream.requests.length;
      upstream.inject(fault.fault);

      const reply = await generate(hub, key);

      const error = errorOf(reply, fault.status, fault.code);
      assert.equal(error.type, fault.type);
      assert.equal(reply.headers.get("retry-after"), fault.retryAfter ?? null);
      assertNothingLeaks(reply, upstream.port);
      const calls = upstream.requests.slice(from);
      assert.equal(calls.length, 1, "one upstream call: retries are off");
      const [upstreamCall] = calls;
      assert.ok(upstreamCall);
      assert.equal(upstreamCall.path, "/v1/images/generations");
      const outcome = await outcomeWithin(upstreamCall, SETTLE_CAP_MS);
      if (fault.upstreamSees) assert.equal(outcome, fault.upstreamSees);
      else assert.notEqual(outcome, "pending", "the exchange with the upstream ended");
      await assertSettledAsFailed(hub, id, fault.code);
      await assertServesNext(hub, key);
    });
  }

  it("a connection reset during an edit (multipart upload) → 502 upstream_connection_lost", async () => {
    const { id, key } = await fundedKey(hub, "reset during an edit");
    const from = upstream.requests.length;
    upstream.inject({ kind: "reset" });

    const reply = await generate(hub, key, {
      model: "dall-e-2",
      size: "256x256",
      image: `data:image/png;base64,${png.toString("base64")}`,
    });

    const error = errorOf(reply, 502, "upstream_connection_lost");
    assert.equal(error.type, SERVER_ERROR);
    assertNothingLeaks(reply, upstream.port);
    const [upstreamCall] = upstream.requests.slice(from);
    assert.equal(upstreamCall?.path, "/v1/images/edits");
    assert.ok((upstreamCall?.bodyBytes ?? 0) > png.byteLength, "the upload was read whole");
    await assertSettledAsFailed(hub, id, "upstream_connection_lost");
    await assertServesNext(hub, key);
  });

  // A proxy or gateway in front of the provider may name itself in its error; the hub passes a
  // 5xx's message on (README: "its message where safe to show"), so it must cut such details.
  it("a 5xx whose message names the upstream's address and the hub's key leaks neither", async () => {
    const { id, key } = await fundedKey(hub, "echoing upstream");
    const echo = `upstream 127.0.0.1:${upstream.port} (${upstream.baseURL}) refused key ${UPSTREAM_KEY}`;
    upstream.inject({
      kind: "status",
      status: 500,
      body: { error: { message: echo, type: "server_error", param: null, code: null } },
    });

    const reply = await generate(hub, key);

    errorOf(reply, 502, "upstream_error");
    assertNothingLeaks(reply, upstream.port);
    await assertSettledAsFailed(hub, id, "upstream_error");
  });

  it("a 503 without Retry-After sends none either", async () => {
    const { key } = await fundedKey(hub, "503 without retry-after");
    upstream.inject({ kind: "status", status: 503 });
    const reply = await generate(hub, key);
    errorOf(reply, 503, "upstream_unavailable");
    assert.equal(reply.headers.get("retry-after"), null);
  });
});

// A 429 cools the hub's credential down for the wait the upstream asked (src/credentials/
// registry.ts), so each of these tests has a hub of its own: the others need a usable credential.
describe("rate limiting by the upstream", () => {
  it("a 429 with Retry-After → 429 upstream_rate_limited, the wait passed on and kept", async () => {
    const target = await startTestHub({ ...HUB_SETTINGS, OPENAI_BASE_URL: upstream.baseURL });
    try {
      const { id, key } = await fundedKey(target, "429");
      const from = upstream.requests.length;
      upstream.inject({ kind: "status", status: 429, retryAfter: 7 });

      const reply = await generate(target, key);

      const error = errorOf(reply, 429, "upstream_rate_limited");
      assert.equal(error.type, upstreamRateLimited("any").type);
      assert.equal(reply.headers.get("retry-after"), "7");
      assertNothingLeaks(reply, upstream.port);
      assert.equal(upstream.requests.length - from, 1, "one upstream call: retries are off");
      assert.equal(
        await outcomeWithin(upstream.requests[from] ?? assert.fail("no call"), SETTLE_CAP_MS),
        "answered",
      );
      await assertSettledAsFailed(target, id, "upstream_rate_limited");

      // Within the wait the upstream asked for, the hub does not call it again.
      const again = await generate(target, key);
      errorOf(again, 429, "upstream_rate_limited");
      const wait = Number(again.headers.get("retry-after"));
      assert.ok(wait >= 1 && wait <= 7, `Retry-After ${wait} within the upstream's 7 s`);
      assert.equal(upstream.requests.length - from, 1, "the cooling credential was not used");
      // Alive: a model that needs no upstream is served.
      const local = await generate(target, key, { model: "local/placeholder" });
      assert.equal(local.status, 200, shown(local));
    } finally {
      await target.close();
    }
  });

  it("a 429 without Retry-After sends none", async () => {
    const target = await startTestHub({ ...HUB_SETTINGS, OPENAI_BASE_URL: upstream.baseURL });
    try {
      const { key } = await fundedKey(target, "429 without retry-after");
      upstream.inject({ kind: "status", status: 429 });
      const reply = await generate(target, key);
      errorOf(reply, 429, "upstream_rate_limited");
      assert.equal(reply.headers.get("retry-after"), null);
    } finally {
      await target.close();
    }
  });
});

describe("an upstream that is not there", () => {
  it("connection refused → 502 upstream_unreachable, then served once it listens", async () => {
    const port = await freePort();
    const target = await startTestHub({
      ...HUB_SETTINGS,
      OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`,
    });
    let late: FaultyUpstream | undefined;
    try {
      const { id, key } = await fundedKey(target, "refused");
      const reply = await generate(target, key);
      const error = errorOf(reply, 502, "upstream_unreachable");
      assert.equal(error.type, SERVER_ERROR);
      assertNothingLeaks(reply, port);
      await assertSettledAsFailed(target, id, "upstream_unreachable");

      late = await startFaultyUpstream({ port });
      await assertServesNext(target, key);
    } finally {
      await target.close();
      await late?.close();
    }
  });
});

/** A loopback port nothing listens on (it was free a moment ago). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
