/**
 * AIGNE's client re-POSTs a request that timed out (after 1, 2 and 4 s), with no
 * Idempotency-Key. The hub derives one from the key and the body, so a retry joins the request
 * still running, and one that comes just after it ended gets its answer: one upstream call, one
 * charge, for however many tries. A deliberate repeat after AIGNE_RETRY_GRACE_SECONDS is a new
 * request.
 *
 * The client's timeout is the TIMEOUT environment variable, read when its modules load: this
 * file sets it before importing them, and runs in a process of its own (node --test does that
 * for every file).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { issueKey } from "../../src/auth/issue.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import {
  OPENAI_SHUT_DOWN_MODELS,
  type OpenAISimulator,
  startOpenAISimulator,
} from "../sim/openai.ts";

const CLIENT_TIMEOUT_MS = 1500;
process.env.TIMEOUT = String(CLIENT_TIMEOUT_MS);
const { AIGNEHubImageModel } = await import("@aigne/aigne-hub");
const { AIGNE } = await import("@aigne/core");

/** What each POST the client made was answered: its idempotency header, or how it failed. */
const posts: string[] = [];
const realFetch = globalThis.fetch;
// The client calls through globalThis.fetch; this watches its POSTs without changing them.
globalThis.fetch = async (input, init) => {
  if (init?.method !== "POST") return realFetch(input, init);
  try {
    const response = await realFetch(input, init);
    posts.push(response.headers.get("x-image-hub-idempotency") ?? "none");
    return response;
  } catch (error) {
    posts.push("failed");
    throw error;
  }
};

const GRACE_SECONDS = 15;
let sim: OpenAISimulator;
let hub: TestHub;
let paying: { id: string; key: string };
const CREDIT_MICROS = 10_000_000;

before(async () => {
  sim = await startOpenAISimulator({ shutDown: OPENAI_SHUT_DOWN_MODELS });
  hub = await startTestHub({
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    AIGNE_RETRY_GRACE_SECONDS: String(GRACE_SECONDS),
  });
  paying = await issueKey(hub.db, {
    name: "aigne app",
    role: "client",
    balanceMicros: CREDIT_MICROS,
  });
});

after(async () => {
  await hub?.close();
  await sim?.close();
});

function generations(from: number) {
  return sim.requests.slice(from).filter((request) => request.path === "/v1/images/generations");
}

async function balance(): Promise<number | null | undefined> {
  return (await hub.db.findKey(paying.id))?.balanceMicros;
}

const invoke = (prompt: string) =>
  new AIGNE().invoke(
    new AIGNEHubImageModel({ baseURL: hub.url, apiKey: paying.key, model: "gpt-image-2" }),
    { prompt, outputFileType: "url", modelOptions: { size: "1024x1024", quality: "low" } },
  );

describe("a client retry after a timeout", { timeout: 60_000 }, () => {
  it("joins the request still running: one upstream call, one charge", async () => {
    // Longer than the client waits (1.5 s), shorter than its first retry's wait ends (2.5 + 1.5 s).
    sim.delayMs = 3000;
    const before = sim.requests.length;
    const credit = await balance();
    posts.length = 0;
    try {
      const result = await invoke("a slow painting of a harbour");
      assert.equal(result.images.length, 1);
      assert.equal(result.model, "gpt-image-2");
    } finally {
      sim.delayMs = 0;
    }
    assert.deepEqual(
      posts,
      ["failed", "derived; joined"],
      "the client timed out, then its retry joined",
    );
    assert.equal(generations(before).length, 1, "the provider was called once");
    const records = await hub.db.listUsage({ keyId: paying.id, limit: 10 });
    assert.equal(records.length, 1, "one usage record");
    const [record] = records;
    assert.equal(record?.status, "succeeded");
    assert.ok(record && record.costMicros > 0);
    assert.equal(await balance(), (credit ?? 0) - record.costMicros, "charged once");
  });

  it("the same prompt sent again after the grace is a new request, charged again", async () => {
    const before = sim.requests.length;
    await invoke("the same prompt twice");
    hub.advanceClock((GRACE_SECONDS + 1) * 1000);
    await invoke("the same prompt twice");
    assert.equal(generations(before).length, 2);
    const records = await hub.db.listUsage({ keyId: paying.id, limit: 10 });
    assert.equal(records.length, 3);
  });
});
