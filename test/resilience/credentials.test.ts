/**
 * Credential health through the real hub: two stored OpenAI credentials, each on its own
 * simulator. A 429 cools one down and the request moves to the other at once; a 401 disables one
 * (in the database too) and the admin API says so, until an admin enables it again.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const MASTER_KEY = "test-master-key-for-credential-health";

interface CredentialView {
  id: string;
  status: string;
  disabled: boolean;
  status_detail: string | null;
  status_since: number | null;
  status_until: number | null;
}

const open: Array<{ close(): Promise<void> }> = [];
after(async () => {
  await Promise.all(open.map((item) => item.close()));
});

async function admin(hub: TestHub, method: string, path: string, body?: unknown) {
  const response = await fetch(`${hub.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${hub.adminKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function addCredential(
  hub: TestHub,
  name: string,
  sim: OpenAISimulator,
  apiKey = sim.apiKey,
) {
  const created = await admin(hub, "POST", "/api/admin/credentials", {
    provider: "openai",
    name,
    api_key: apiKey,
    base_url: sim.baseURL,
    weight: 1,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return String(created.body.id);
}

async function view(hub: TestHub, id: string): Promise<CredentialView> {
  const { body } = await admin(hub, "GET", "/api/admin/credentials");
  const found = (body.data as CredentialView[]).find((credential) => credential.id === id);
  assert.ok(found);
  return found;
}

async function generate(hub: TestHub) {
  const response = await fetch(`${hub.url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-image-2", prompt: "a lighthouse", size: "1024x1024" }),
  });
  const body = (await response.json()) as { error: { code: string; message: string } };
  return { status: response.status, headers: response.headers, body };
}

const posts = (sim: OpenAISimulator) =>
  sim.requests.filter((request) => request.method === "POST").length;

/** Two credentials on two simulators, no environment credential. */
async function setUp() {
  const [a, b] = await Promise.all([startOpenAISimulator(), startOpenAISimulator()]);
  const hub = await startTestHub({ MASTER_KEY });
  open.push(hub, a, b);
  return { hub, a, b };
}

describe("a credential the upstream rate limits (429)", () => {
  test("cools down for its Retry-After; the request is served by the other at once", async () => {
    const { hub, a, b } = await setUp();
    const idA = await addCredential(hub, "A", a);
    await addCredential(hub, "B", b);
    // The weighted pick is random: keep asking until A has met its 429 (one in two per request).
    for (let request = 0; request < 40 && posts(a) === 0; request++) {
      a.failNext({ status: 429, headers: { "retry-after": "120" }, body: "rate limited" });
      const reply = await generate(hub);
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
    }
    assert.equal(posts(a), 1, "A was picked once, answered 429, and was not retried");

    const cooling = await view(hub, idA);
    assert.equal(cooling.status, "cooling_down");
    assert.equal(cooling.disabled, false);
    assert.match(String(cooling.status_detail), /429/);
    assert.ok(cooling.status_until !== null && cooling.status_since !== null);
    assert.ok(cooling.status_until - cooling.status_since >= 119);

    const servedByB = posts(b);
    for (let request = 0; request < 6; request++) assert.equal((await generate(hub)).status, 200);
    assert.equal(posts(a), 1, "no call goes to A while it cools down");
    assert.equal(posts(b), servedByB + 6);

    hub.advanceClock(121_000);
    assert.equal((await view(hub, idA)).status, "active", "the cool-down ends");
  });

  test("with every credential cooling down, the client gets 429 and no upstream is called", async () => {
    // A wait longer than the model's time budget (gpt-image-2: 5 min) is not waited out.
    const { hub, a, b } = await setUp();
    await addCredential(hub, "A", a);
    await addCredential(hub, "B", b);
    for (const sim of [a, b]) {
      sim.failNext({ status: 429, headers: { "retry-after": "400" }, body: "rate limited" });
    }
    const first = await generate(hub);
    assert.equal(first.status, 429);
    assert.equal(first.body.error.code, "upstream_rate_limited");
    assert.equal(posts(a) + posts(b), 2, "each credential tried once");

    const next = await generate(hub);
    assert.equal(next.status, 429);
    assert.ok(Number(next.headers.get("retry-after")) > 100, "until the soonest cool-down ends");
    assert.equal(posts(a) + posts(b), 2, "no upstream call while all cool down");
  });
});

describe("a credential the upstream refuses (401)", () => {
  test("is disabled, in the database too; the admin API says why; requests go to the other", async () => {
    const { hub, a, b } = await setUp();
    // A's key is wrong: the simulator answers 401 Incorrect API key, as OpenAI does.
    const idA = await addCredential(hub, "A", a, "sk-revoked-000000000000");
    await addCredential(hub, "B", b);
    for (let request = 0; request < 40 && posts(a) === 0; request++) {
      const reply = await generate(hub);
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
    }
    assert.equal(posts(a), 1);

    const refused = await view(hub, idA);
    assert.equal(refused.status, "auth_failed");
    assert.equal(refused.disabled, true);
    assert.match(String(refused.status_detail), /401/);
    const stored = (await hub.db.listCredentials()).find((record) => record.id === idA);
    assert.ok(stored?.disabledAt, "disabled in the database, for restarts and other instances");

    for (let request = 0; request < 6; request++) assert.equal((await generate(hub)).status, 200);
    assert.equal(posts(a), 1, "never called again");

    await hub.restart();
    assert.equal((await view(hub, idA)).disabled, true, "still disabled after a restart");
  });

  test("comes back when an admin enables it again", async () => {
    const { hub, a } = await setUp();
    const id = await addCredential(hub, "A", a, "sk-revoked-000000000000");
    const refused = await generate(hub);
    assert.equal(refused.status, 502);
    assert.equal(refused.body.error.code, "upstream_auth_failed");
    assert.doesNotMatch(refused.body.error.message, /sk-revoked/);
    assert.equal((await view(hub, id)).status, "auth_failed");

    const enabled = await admin(hub, "PATCH", `/api/admin/credentials/${id}`, { disabled: false });
    assert.equal(enabled.status, 200);
    assert.equal(enabled.body.status, "active");
    assert.equal(enabled.body.status_detail, null);
    // Back in the rotation: the next request calls it (and, its key still wrong, is refused).
    await generate(hub);
    assert.equal(posts(a), 2);
  });
});
