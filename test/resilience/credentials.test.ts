/**
 * Credential health through the real hub: two stored OpenAI credentials, each on its own
 * simulator. A 429 cools one down and the request moves to the other at once; a 401 disables one
 * (in the database too) and the admin API says so, until an admin enables it again.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";
import { backends, freshPostgresStore } from "../storage/db/backends.ts";

const MASTER_KEY = "test-master-key-for-credential-health";

interface CredentialView {
  id: string;
  status: string;
  disabled: boolean;
  status_detail: string | null;
  last_error: string | null;
  status_since: number | null;
  status_until: number | null;
}

const open: Array<{ close(): Promise<void> }> = [];
/** PostgreSQL stores made for hubs, dropped once the hubs are closed. */
const stores: Array<{ drop(): Promise<void> }> = [];
after(async () => {
  await Promise.all(open.map((item) => item.close()));
  for (const store of stores) await store.drop();
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

/** Two simulators for credentials to be added on, no environment credential; `env` adds settings. */
async function setUp(env: Record<string, string> = {}) {
  const [a, b] = await Promise.all([startOpenAISimulator(), startOpenAISimulator()]);
  const hub = await startTestHub({ MASTER_KEY, ...env });
  open.push(hub, a, b);
  return { hub, a, b };
}

/** A 401 in OpenAI's words, for one call. */
const REFUSAL = {
  status: 401,
  body: {
    error: {
      message:
        "Incorrect API key provided: sk-abc***wxyz. You can find your API key at https://platform.openai.com/account/api-keys.",
      type: "invalid_request_error",
      param: null,
      code: "invalid_api_key",
    },
  },
};

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

  test("with every credential cooling down briefly, the request waits for the first back and is served", async () => {
    const { hub, a, b } = await setUp();
    await addCredential(hub, "A", a);
    await addCredential(hub, "B", b);
    for (const sim of [a, b]) {
      sim.failNext({ status: 429, headers: { "retry-after": "1" }, body: "rate limited" });
    }
    const started = performance.now();
    const reply = await generate(hub);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.ok(performance.now() - started >= 1000, "it waited for the cool-down to end");
    assert.equal(posts(a) + posts(b), 3, "each credential once, then the one back first");
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

const postgresSkip = backends.find((backend) => backend.name === "postgres")?.skip;

for (const backend of ["sqlite", "postgres"] as const) {
  describe(`a credential the upstream refuses (401), healing by itself (${backend})`, {
    skip: backend === "postgres" ? postgresSkip : undefined,
  }, () => {
    /** The hub on this backend: SQLite in its DATA_DIR, or a fresh PostgreSQL schema. */
    async function onBackend() {
      if (backend === "sqlite") return setUp();
      const store = await freshPostgresStore();
      stores.push(store);
      return setUp({ DATABASE_URL: store.databaseUrl });
    }

    test("one credential refused once: served again after the back-off, no admin call; a restart serves at once", async () => {
      const { hub, a } = await onBackend();
      const id = await addCredential(hub, "A", a);
      a.failNext(REFUSAL);
      const refused = await generate(hub);
      assert.equal(refused.status, 502);
      assert.equal(refused.body.error.code, "upstream_auth_failed");
      assert.doesNotMatch(refused.body.error.message, /sk-/);
      const quarantined = await view(hub, id);
      assert.equal(quarantined.status, "auth_failed");
      assert.equal(quarantined.disabled, false);
      assert.match(String(quarantined.last_error), /Incorrect API key/);
      assert.equal((quarantined.status_until ?? 0) - (quarantined.status_since ?? 0), 30);

      for (let request = 0; request < 5; request++) {
        const reply = await generate(hub);
        assert.equal(reply.status, 502);
        assert.match(reply.body.error.message, /tried again in \d+ s/);
      }
      assert.equal(posts(a), 1, "no upstream call per client request during the back-off");

      hub.advanceClock(30_000);
      assert.equal((await generate(hub)).status, 200, "served again, without an admin");
      assert.equal((await view(hub, id)).status, "active");

      a.failNext(REFUSAL);
      assert.equal((await generate(hub)).status, 502);
      await hub.restart();
      assert.equal((await generate(hub)).status, 200, "a restart tries it at once");
    });

    test("a key refused always costs one upstream call per back-off step, the step doubling", async () => {
      const { hub, a } = await onBackend();
      await addCredential(hub, "A", a, "sk-revoked-000000000000");
      const callsAfter = async (advanceMs: number, requests = 3) => {
        hub.advanceClock(advanceMs);
        for (let request = 0; request < requests; request++) {
          assert.equal((await generate(hub)).status, 502);
        }
        return posts(a);
      };
      assert.equal(await callsAfter(0), 1);
      assert.equal(await callsAfter(29_000), 1, "within the first 30 s");
      assert.equal(await callsAfter(1_000), 2, "one probe when it ends");
      assert.equal(await callsAfter(59_000), 2, "the next wait is 60 s");
      assert.equal(await callsAfter(1_000), 3);
      assert.equal(await callsAfter(120_000), 4, "then 120 s");
    });

    test("two credentials, one refused: all traffic moves to the other, and the first comes back", async () => {
      const { hub, a, b } = await onBackend();
      const idA = await addCredential(hub, "A", a);
      await addCredential(hub, "B", b);
      a.failNext(REFUSAL);
      for (let request = 0; request < 40 && posts(a) === 0; request++) {
        assert.equal((await generate(hub)).status, 200, "a refused call moves on to B at once");
      }
      assert.equal(posts(a), 1);
      const servedByB = posts(b);
      for (let request = 0; request < 6; request++) assert.equal((await generate(hub)).status, 200);
      assert.equal(posts(a), 1, "no traffic to A while it is quarantined");
      assert.equal(posts(b), servedByB + 6);

      hub.advanceClock(30_000);
      assert.equal((await generate(hub)).status, 200);
      assert.equal(posts(a), 2, "A is tried first once its wait ends, and accepted");
      assert.equal((await view(hub, idA)).status, "active");
      for (let request = 0; request < 40 && posts(a) === 2; request++) await generate(hub);
      assert.ok(posts(a) > 2, "A takes its share again");
    });

    test("an admin's disabled keeps it off for good; enabling clears its quarantine", async () => {
      const { hub, a } = await onBackend();
      const id = await addCredential(hub, "A", a, "sk-revoked-000000000000");
      assert.equal((await generate(hub)).status, 502);
      assert.equal((await view(hub, id)).status, "auth_failed");
      const disabled = await admin(hub, "PATCH", `/api/admin/credentials/${id}`, {
        disabled: true,
      });
      assert.equal(disabled.body.status, "disabled");
      hub.advanceClock(3_600_000);
      assert.equal((await generate(hub)).status, 404, "a provider without usable credentials");
      assert.equal(posts(a), 1);

      const enabled = await admin(hub, "PATCH", `/api/admin/credentials/${id}`, {
        disabled: false,
      });
      assert.equal(enabled.body.status, "active");
      assert.equal(enabled.body.status_detail, null);
      await generate(hub);
      assert.equal(posts(a), 2, "back in the rotation at once");
    });
  });
}
