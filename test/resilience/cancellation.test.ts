/**
 * A client that goes away takes its upstream calls with it: the hub aborts every call in flight
 * (the upstream sees its connection closed long before it would have answered), records the
 * request as `client_disconnected` at no cost, and gives the reservation back.
 *
 * The upstream (test/sim/faults.ts) is made slow, ten seconds, and the hub's own budget is a
 * minute, so only the client's leaving can end the calls within the few seconds each wait allows.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { UsageRecord } from "../../src/storage/db/types.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { requestOverSocket as requestOverSocketTo } from "../helpers/leaving-request.ts";
import {
  type FaultyUpstream,
  type FaultyUpstreamRequest,
  outcomeWithin,
  startFaultyUpstream,
} from "../sim/faults.ts";

const INITIAL_CREDIT_USD = 1;
/** How long the upstream would take; far beyond every wait below. */
const UPSTREAM_DELAY_MS = 10_000;
/** Generous for a hang-up on loopback, and still half the upstream's delay. */
const CAP_MS = 5000;

let upstream: FaultyUpstream;
let hub: TestHub;

before(async () => {
  upstream = await startFaultyUpstream();
  hub = await startTestHub({
    OPENAI_API_KEY: "sk-upstream-cancellation-0123",
    OPENAI_BASE_URL: upstream.baseURL,
    UPSTREAM_MAX_ATTEMPTS: "1",
    UPSTREAM_TIMEOUT_MS: "60000",
  });
});

afterEach(() => upstream.clearFaults());

after(async () => {
  await hub?.close();
  await upstream?.close();
});

async function admin(path: string, body?: Record<string, unknown>): Promise<unknown> {
  const response = await fetch(`${hub.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${hub.adminKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.json();
}

async function fundedKey(name: string): Promise<{ id: string; key: string }> {
  return (await admin("/api/admin/keys", { name, balance: INITIAL_CREDIT_USD })) as {
    id: string;
    key: string;
  };
}

interface Leaving {
  /** Goes away: the socket is destroyed, or the fetch aborted. */
  leave(): void;
  /** Whether the client got a reply at all before it left. */
  answered: Promise<boolean>;
}

/** A request over its own connection (no pool), that the client destroys to go away. */
function requestOverSocket(key: string, body: Record<string, unknown>): Leaving {
  return requestOverSocketTo(hub.url, key, body);
}

/** A request through `fetch`, that the client aborts to go away. */
function requestWithFetch(key: string, body: Record<string, unknown>): Leaving {
  const controller = new AbortController();
  const answered = fetch(`${hub.url}/api/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: controller.signal,
  }).then(
    () => true,
    () => false,
  );
  return { leave: () => controller.abort(), answered };
}

/** The key's usage records once there are `count`; the hub writes them as its calls unwind. */
async function usageOnceWritten(keyId: string, count = 1): Promise<UsageRecord[]> {
  const startedAt = Date.now();
  for (;;) {
    const records = await hub.db.listUsage({ keyId, limit: 10 });
    if (records.length >= count || Date.now() - startedAt > CAP_MS) return records;
    await sleep(20);
  }
}

/** Waits for `promise`, failing the test after CAP_MS instead of hanging it. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(CAP_MS, undefined, { signal: timer.signal }).then(() =>
        assert.fail(`timed out waiting until ${what}`),
      ),
    ]);
  } finally {
    timer.abort();
  }
}

/** Every upstream call was hung up on by the hub, and promptly. */
async function assertAllAborted(calls: FaultyUpstreamRequest[]) {
  const outcomes = await Promise.all(calls.map((call) => outcomeWithin(call, CAP_MS)));
  assert.deepEqual(
    outcomes,
    calls.map(() => "aborted"),
    "every upstream call was aborted by the hub",
  );
}

/** Recorded as a client disconnect, charged nothing, with the credit back and nothing held. */
async function assertReleased(keyId: string) {
  const [record, ...others] = await usageOnceWritten(keyId);
  assert.ok(record, "a usage record was written once the calls were cancelled");
  assert.equal(others.length, 0);
  assert.equal(record.status, "failed");
  assert.equal(record.errorCode, "client_disconnected");
  assert.equal(record.costMicros, 0);
  assert.equal(record.imagesDelivered, 0);
  const key = (await admin(`/api/admin/keys/${keyId}`)) as { balance: number };
  assert.equal(key.balance, INITIAL_CREDIT_USD, "the credit is back");
  assert.equal(await hub.db.releaseReservations(Date.now() + 60_000), 0, "no reservation open");
}

describe("a client that disconnects cancels its upstream calls", () => {
  it("while the upstream has not answered yet: the call is aborted, nothing is charged", async () => {
    const { id, key } = await fundedKey("leaves during slow headers");
    const from = upstream.requests.length;
    upstream.inject({ kind: "slowHeaders", ms: UPSTREAM_DELAY_MS });

    const client = requestOverSocket(key, { model: "dall-e-3", prompt: "a patient owl" });
    await upstream.waitForRequests(from + 1, CAP_MS);
    client.leave();

    assert.equal(await client.answered, false);
    await assertAllAborted(upstream.requests.slice(from));
    await assertReleased(id);
  });

  it("with n=3 fanned out to three calls: all three are aborted", async () => {
    const { id, key } = await fundedKey("leaves during a fan-out");
    const from = upstream.requests.length;
    upstream.inject({ kind: "slowHeaders", ms: UPSTREAM_DELAY_MS }, 3);

    const client = requestWithFetch(key, { model: "dall-e-3", prompt: "three owls", n: 3 });
    await upstream.waitForRequests(from + 3, CAP_MS);
    client.leave();

    assert.equal(await client.answered, false);
    const calls = upstream.requests.slice(from);
    assert.equal(calls.length, 3, "dall-e-3 makes one image per call");
    await assertAllAborted(calls);
    const [record] = await usageOnceWritten(id);
    assert.equal(record?.imagesRequested, 3);
    await assertReleased(id);
  });

  it("while the upstream's reply is still arriving: the body read is aborted", async () => {
    const { id, key } = await fundedKey("leaves during a slow body");
    const from = upstream.requests.length;
    upstream.inject({ kind: "slowBody", ms: UPSTREAM_DELAY_MS });

    const client = requestOverSocket(key, { model: "dall-e-3", prompt: "a slowly drawn owl" });
    await upstream.waitForRequests(from + 1, CAP_MS);
    const [call] = upstream.requests.slice(from);
    assert.ok(call);
    // The hub is reading the body now, not waiting for headers.
    await within(call.replyStarted, "the upstream's reply started");
    client.leave();

    assert.equal(await client.answered, false);
    await assertAllAborted([call]);
    await assertReleased(id);
  });

  it("leaves the hub serving the next request as usual", async () => {
    const { key } = await fundedKey("after the disconnects");
    const response = await fetch(`${hub.url}/api/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "dall-e-3", prompt: "an owl", response_format: "b64_json" }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const body = (await response.json()) as { data: Array<{ b64_json: string }> };
    assert.equal(body.data.length, 1);
  });
});
