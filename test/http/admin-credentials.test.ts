import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance, type InjectOptions } from "fastify";
import { issueKey } from "../../src/auth/issue.ts";
import { createAuthenticator } from "../../src/auth/principal.ts";
import { instancesFromEnv } from "../../src/credentials/instances.ts";
import { createProviderRegistry, type ProviderRegistry } from "../../src/credentials/registry.ts";
import { createVault } from "../../src/credentials/vault.ts";
import { registerCredentialRoutes } from "../../src/http/admin-credentials.ts";
import { createAuthHooks } from "../../src/http/auth.ts";
import { registerErrorHandling } from "../../src/http/errors.ts";
import { openSqliteDatabase } from "../../src/storage/db/sqlite.ts";
import type { Database } from "../../src/storage/db/types.ts";
import { startTestHub } from "../helpers/hub.ts";
import { providerCall } from "../helpers/provider-call.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const ADMIN_KEY = "test-admin-key-0123456789";
const SECRET = "sk-proj-secretsecretsecretsecret-ab12";
const ENV_SECRET = "sk-env-openai-key-0123456789-wxyz";
const SIM_KEY = "sk-sim-credential-route-0123456789";

interface TestApp {
  app: FastifyInstance;
  db: Database;
  registry: ProviderRegistry;
  clientKey: string;
}

/** Every body any test received, to check that no secret ever left. */
const bodies: string[] = [];
const apps: TestApp[] = [];
let dataDir: string;
let sim: OpenAISimulator;

/** A small app with the hub's error handling and authentication, and the credential routes. */
async function buildTestApp(
  masterKey: string | undefined,
  /** null for none: the OpenAI provider then has only what the test stores. */
  envOpenAIKey: string | null = ENV_SECRET,
): Promise<TestApp> {
  const app = Fastify({ logger: false, ajv: { customOptions: { coerceTypes: false } } });
  registerErrorHandling(app);
  const db = openSqliteDatabase(path.join(dataDir, `hub-${apps.length}.sqlite`));
  const vault = createVault(masterKey);
  const registry = createProviderRegistry({
    db,
    vault,
    instances: instancesFromEnv({
      OPENAI_API_KEY: envOpenAIKey ?? undefined,
      OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
    }),
    timeoutMs: 10_000,
  });
  await registry.reload();
  const auth = createAuthHooks(createAuthenticator({ db, adminKey: ADMIN_KEY }));
  registerCredentialRoutes(app, { db, vault, registry, auth });
  await app.ready();
  const { key } = await issueKey(db, { name: "client", role: "client" });
  const built = { app, db, registry, clientKey: key };
  apps.push(built);
  return built;
}

async function call(
  target: TestApp,
  options: InjectOptions & { key?: string | null },
): Promise<{
  status: number;
  body: Record<string, unknown> & { data?: Record<string, unknown>[] };
}> {
  const { key = ADMIN_KEY, ...rest } = options;
  const response = await target.app.inject({
    ...rest,
    headers: key === null ? {} : { authorization: `Bearer ${key}` },
  });
  bodies.push(response.body);
  return { status: response.statusCode, body: response.json() };
}

function errorCodeOf(body: Record<string, unknown>): unknown {
  return (body.error as { code?: unknown } | undefined)?.code;
}

let hub: TestApp;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-credentials-"));
  sim = await startOpenAISimulator({ apiKey: SIM_KEY });
  hub = await buildTestApp("admin-credentials-test-master-key");
});

after(async () => {
  for (const built of apps) {
    await built.app.close();
    await built.db.close();
  }
  await sim.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe("POST /api/admin/credentials", () => {
  it("stores the key encrypted and answers 201 with it masked", async () => {
    const { status, body } = await call(hub, {
      method: "POST",
      url: "/api/admin/credentials",
      payload: { provider: "openai", name: "team A", api_key: SECRET, weight: 3 },
    });
    assert.equal(status, 201);
    assert.match(String(body.id), /^cred_[0-9a-f]{16}$/);
    assert.equal(typeof body.created_at, "number");
    assert.deepEqual(
      { ...body, id: undefined, created_at: undefined },
      {
        id: undefined,
        object: "provider_credential",
        provider: "openai",
        name: "team A",
        key: "sk-proj-…ab12",
        base_url: null,
        weight: 3,
        created_at: undefined,
        disabled: false,
        source: "database",
        status: "active",
        status_detail: null,
        last_error: null,
        status_since: null,
        status_until: null,
      },
    );
    const stored = (await hub.db.listCredentials()).find((record) => record.id === body.id);
    assert.ok(stored);
    assert.ok(!JSON.stringify(stored).includes(SECRET));
    assert.ok(!stored.encryptedKey.includes(Buffer.from(SECRET).toString("base64url")));
    assert.match(stored.encryptedKey, /^v1\./);
    assert.equal(stored.keyHint, "sk-proj-…ab12");
  });

  it("makes the credential usable at once: calls go to its base URL with its key", async () => {
    const fresh = await buildTestApp("another-master-key-for-this-test", null);
    assert.equal(fresh.registry.isConfigured("openai"), false);
    const created = await call(fresh, {
      method: "POST",
      url: "/api/admin/credentials",
      payload: {
        provider: "openai",
        name: "simulator",
        api_key: SIM_KEY,
        base_url: `${sim.baseURL}/`,
      },
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.base_url, sim.baseURL);
    const provider = fresh.registry.get("openai");
    assert.ok(provider, "the registry reloaded");
    const result = await provider.generate(providerCall({ model: "dall-e-2", size: "256x256" }));
    assert.equal(result.images.length, 1);
    assert.equal(sim.requests.at(-1)?.headers.authorization, `Bearer ${SIM_KEY}`);

    const deleted = await call(fresh, {
      method: "DELETE",
      url: `/api/admin/credentials/${created.body.id}`,
    });
    assert.equal(deleted.status, 200);
    assert.equal(fresh.registry.get("openai"), undefined);
  });

  it("refuses to store a key without MASTER_KEY: 400 master_key_required", async () => {
    const bare = await buildTestApp(undefined);
    const { status, body } = await call(bare, {
      method: "POST",
      url: "/api/admin/credentials",
      payload: { provider: "openai", name: "nope", api_key: SECRET },
    });
    assert.equal(status, 400);
    assert.equal(errorCodeOf(body), "master_key_required");
    assert.match(String((body.error as { message: string }).message), /MASTER_KEY/);
    assert.deepEqual(await bare.db.listCredentials(), []);
  });

  it("validates the body", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ provider: "local", name: "x", api_key: SECRET }, "provider"],
      [{ provider: "nosuch", name: "x", api_key: SECRET }, "provider"],
      [{ provider: "Bad Id", name: "x", api_key: SECRET }, "provider"],
      // An instance of one's own needs its kind and, where the kind has no vendor URL, a URL.
      [{ provider: "myserver", kind: "openai-compatible", name: "x", api_key: SECRET }, "provider"],
      [{ provider: "openai", kind: "xai", name: "x", api_key: SECRET }, "provider"],
      [{ provider: "myserver", kind: "local", name: "x", api_key: SECRET }, "kind"],
      [{ provider: "openai", name: "x" }, "api_key"],
      [{ provider: "openai", name: "x", api_key: SECRET, weight: 1001 }, "weight"],
      [{ provider: "openai", name: "x", api_key: SECRET, weight: -1 }, "weight"],
      [{ provider: "openai", name: "x", api_key: SECRET, weight: "2" }, "weight"],
      [{ provider: "openai", name: "x", api_key: "two words" }, "api_key"],
      [{ provider: "openai", name: "x", api_key: SECRET, base_url: "ftp://host/v1" }, "base_url"],
      [{ provider: "openai", name: "x", api_key: SECRET, base_url: "not a url" }, "base_url"],
      [
        { provider: "openai", name: "x", api_key: SECRET, base_url: "https://u:p@host/v1" },
        "base_url",
      ],
      [
        { provider: "openai", name: "x", api_key: SECRET, base_url: "https://host/v1?key=1" },
        "base_url",
      ],
    ];
    const storedBefore = (await hub.db.listCredentials()).length;
    for (const [payload, param] of cases) {
      const { status, body } = await call(hub, {
        method: "POST",
        url: "/api/admin/credentials",
        payload,
      });
      assert.equal(status, 400, JSON.stringify(payload));
      assert.equal((body.error as { param: unknown }).param, param, JSON.stringify(payload));
    }
    assert.equal((await hub.db.listCredentials()).length, storedBefore);
  });

  it("defaults the weight to 1 and takes google credentials", async () => {
    const { status, body } = await call(hub, {
      method: "POST",
      url: "/api/admin/credentials",
      payload: { provider: "google", name: "gemini", api_key: "AIzaSyA-0123456789abcdefghijkl" },
    });
    assert.equal(status, 201);
    assert.equal(body.weight, 1);
    assert.equal(body.key, "AIza…ijkl");
    assert.equal(hub.registry.isConfigured("google"), true);
  });
});

describe("admin credential routes", () => {
  it("need an admin key: 401 without a key, 403 with a client key", async () => {
    const requests: InjectOptions[] = [
      {
        method: "POST",
        url: "/api/admin/credentials",
        payload: { provider: "openai", name: "x", api_key: SECRET },
      },
      { method: "GET", url: "/api/admin/credentials" },
      { method: "PATCH", url: "/api/admin/credentials/cred_x", payload: { weight: 2 } },
      { method: "DELETE", url: "/api/admin/credentials/cred_x" },
    ];
    for (const request of requests) {
      const anonymous = await call(hub, { ...request, key: null });
      assert.equal(anonymous.status, 401, `${request.method}`);
      const client = await call(hub, { ...request, key: hub.clientKey });
      assert.equal(client.status, 403, `${request.method}`);
      assert.equal(errorCodeOf(client.body), "permission_denied");
    }
  });

  it("list, change and remove credentials, the environment's listed but read-only", async () => {
    const target = await buildTestApp("list-patch-delete-master-key");
    const created = await call(target, {
      method: "POST",
      url: "/api/admin/credentials",
      payload: { provider: "openai", name: "first", api_key: SECRET },
    });
    const id = String(created.body.id);

    const listed = await call(target, { method: "GET", url: "/api/admin/credentials" });
    assert.equal(listed.status, 200);
    assert.equal(listed.body.object, "list");
    assert.deepEqual(
      listed.body.data?.map((item) => [item.id, item.source, item.key]),
      [
        ["env:openai", "environment", "sk-…wxyz"],
        [id, "database", "sk-proj-…ab12"],
      ],
    );

    const patched = await call(target, {
      method: "PATCH",
      url: `/api/admin/credentials/${id}`,
      payload: { name: "renamed", weight: 7, disabled: true },
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.name, "renamed");
    assert.equal(patched.body.weight, 7);
    assert.equal(patched.body.disabled, true);
    assert.equal(patched.body.status, "disabled");
    assert.equal(
      target.registry.list().find((view) => view.id === id)?.status,
      "disabled",
      "the registry reloaded",
    );

    const enabled = await call(target, {
      method: "PATCH",
      url: `/api/admin/credentials/${id}`,
      payload: { disabled: false },
    });
    assert.equal(enabled.body.disabled, false);
    assert.equal(enabled.body.status, "active");
    assert.equal(enabled.body.name, "renamed");

    for (const [payload, code] of [
      [{}, "invalid_value"],
      [{ weight: 5000 }, "invalid_value"],
    ] as const) {
      const invalid = await call(target, {
        method: "PATCH",
        url: `/api/admin/credentials/${id}`,
        payload,
      });
      assert.equal(invalid.status, 400, JSON.stringify(payload));
      assert.equal(errorCodeOf(invalid.body), code);
    }

    const environment = await call(target, {
      method: "PATCH",
      url: "/api/admin/credentials/env:openai",
      payload: { weight: 2 },
    });
    assert.equal(environment.status, 400);
    assert.equal(errorCodeOf(environment.body), "environment_credential");
    const deleteEnvironment = await call(target, {
      method: "DELETE",
      url: "/api/admin/credentials/env:openai",
    });
    assert.equal(deleteEnvironment.status, 400);

    const unknown = await call(target, {
      method: "PATCH",
      url: "/api/admin/credentials/cred_unknown",
      payload: { weight: 2 },
    });
    assert.equal(unknown.status, 404);
    assert.equal(errorCodeOf(unknown.body), "credential_not_found");

    const deleted = await call(target, { method: "DELETE", url: `/api/admin/credentials/${id}` });
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.body, { id, object: "provider_credential", deleted: true });
    const again = await call(target, { method: "DELETE", url: `/api/admin/credentials/${id}` });
    assert.equal(again.status, 404);
    const remaining = await call(target, { method: "GET", url: "/api/admin/credentials" });
    assert.deepEqual(
      remaining.body.data?.map((item) => item.id),
      ["env:openai"],
    );
    assert.deepEqual(await target.db.listCredentials(), []);
  });
});

describe("through the hub (app.ts)", () => {
  it("routes image requests to a credential added through the admin API", async () => {
    const hubSim = await startOpenAISimulator({ apiKey: SIM_KEY });
    const testHub = await startTestHub({ MASTER_KEY: "hub-test-master-key-0123456789" });
    try {
      const headers = { authorization: `Bearer ${testHub.adminKey}` };
      const unconfigured = await testHub.app.inject({
        method: "POST",
        url: "/api/images/generations",
        headers: { authorization: `Bearer ${testHub.key}` },
        payload: { model: "dall-e-2", prompt: "a fox", size: "256x256" },
      });
      assert.equal(unconfigured.statusCode, 404, unconfigured.body);

      const created = await testHub.app.inject({
        method: "POST",
        url: "/api/admin/credentials",
        headers,
        payload: { provider: "openai", name: "sim", api_key: SIM_KEY, base_url: hubSim.baseURL },
      });
      bodies.push(created.body);
      assert.equal(created.statusCode, 201, created.body);

      const generated = await testHub.app.inject({
        method: "POST",
        url: "/api/images/generations",
        headers: { authorization: `Bearer ${testHub.key}` },
        payload: { model: "dall-e-2", prompt: "a fox", size: "256x256" },
      });
      assert.equal(generated.statusCode, 200, generated.body);
      assert.equal(hubSim.requests.at(-1)?.headers.authorization, `Bearer ${SIM_KEY}`);
      const stored = await testHub.db.listCredentials();
      assert.ok(!JSON.stringify(stored).includes(SIM_KEY));
    } finally {
      await testHub.close();
      await hubSim.close();
    }
  });
});

// Last in the file, so it sees every reply of the tests above.
describe("every reply", () => {
  it("never carried a secret", () => {
    assert.ok(bodies.length > 30);
    for (const body of bodies) {
      for (const secret of [SECRET, ENV_SECRET, SIM_KEY]) {
        assert.ok(!body.includes(secret), `a reply contained a secret: ${body}`);
      }
    }
  });
});
