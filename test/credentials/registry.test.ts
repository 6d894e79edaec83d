import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import type { ProviderInstance } from "../../src/credentials/instances.ts";
import {
  createProviderRegistry,
  type ProviderRegistry,
  type ProviderRegistryOptions,
} from "../../src/credentials/registry.ts";
import { createVault, maskSecret, type Vault } from "../../src/credentials/vault.ts";
import { HubError } from "../../src/errors.ts";
import type { ProviderResult } from "../../src/providers/types.ts";
import { openSqliteDatabase } from "../../src/storage/db/sqlite.ts";
import type { Database, ProviderCredentialRecord } from "../../src/storage/db/types.ts";
import { providerCall } from "../helpers/provider-call.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const KEY_A = "sk-sim-key-a-0123456789abcdef";
const KEY_B = "sk-sim-key-b-0123456789abcdef";
const KEY_C = "sk-sim-key-c-0123456789abcdef";
/** The environment's instances, keyless, at an address nothing answers. */
const NO_ENV: ProviderInstance[] = [
  { id: "openai", kind: "openai", apiKey: "", baseURL: "http://127.0.0.1:9/v1", options: {} },
  { id: "google", kind: "google", apiKey: "", baseURL: "http://127.0.0.1:9", options: {} },
];

/** The environment's OpenAI instance at `baseURL`, with OPENAI_API_KEY `apiKey` (or none). */
function openaiAt(baseURL: string, apiKey: string | undefined): ProviderInstance {
  return { id: "openai", kind: "openai", apiKey: apiKey ?? "", baseURL, options: {} };
}

const vault = createVault("registry-test-master-key");
let dataDir: string;
let db: Database;
// One simulator per key: each accepts only its own, so a call reaching one proves which was used.
let sims: Record<"a" | "b" | "c", OpenAISimulator>;
let nextId = 0;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-registry-"));
  const [a, b, c] = await Promise.all(
    [KEY_A, KEY_B, KEY_C].map((apiKey) => startOpenAISimulator({ apiKey })),
  );
  sims = { a: a as OpenAISimulator, b: b as OpenAISimulator, c: c as OpenAISimulator };
});

after(async () => {
  await Promise.all(Object.values(sims).map((sim) => sim.close()));
  await rm(dataDir, { recursive: true, force: true });
});

beforeEach(async () => {
  db = openSqliteDatabase(path.join(dataDir, `hub-${nextId++}.sqlite`));
  for (const sim of Object.values(sims)) {
    sim.requests.length = 0;
    sim.failModelList = undefined;
  }
});

afterEach(async () => {
  await db.close();
});

/** Stores a credential for the simulator `sim` the way the admin API does. */
async function store(
  sim: OpenAISimulator,
  overrides: Partial<ProviderCredentialRecord> = {},
  under: Vault = vault,
): Promise<ProviderCredentialRecord> {
  const id = overrides.id ?? `cred_${nextId++}`;
  const record: ProviderCredentialRecord = {
    id,
    provider: "openai",
    name: `credential ${id}`,
    encryptedKey: under.encrypt(sim.apiKey, id),
    keyHint: maskSecret(sim.apiKey),
    baseUrl: sim.baseURL,
    weight: 1,
    createdAt: Date.now(),
    disabledAt: null,
    kind: null,
    options: null,
    ...overrides,
  };
  await db.createCredential(record);
  return record;
}

/** A random source that walks a uniform grid: `calls` draws cover [0, 1) evenly. */
function gridRandom(calls: number): () => number {
  let index = 0;
  return () => ((index++ % calls) + 0.5) / calls;
}

function registryOf(options: Partial<ProviderRegistryOptions> = {}): ProviderRegistry {
  return createProviderRegistry({ db, vault, instances: NO_ENV, timeoutMs: 10_000, ...options });
}

async function callMany(registry: ProviderRegistry, calls: number): Promise<void> {
  const provider = registry.get("openai");
  assert.ok(provider, "openai is configured");
  for (let index = 0; index < calls; index++) {
    const result: ProviderResult = await provider.generate(
      providerCall({ model: "dall-e-2", size: "256x256" }),
    );
    assert.equal(result.images.length, 1);
  }
}

function callsTo(sim: OpenAISimulator): number {
  return sim.requests.filter((request) => request.path === "/v1/images/generations").length;
}

describe("createProviderRegistry", () => {
  it("serves the environment credential alone, and local always", async () => {
    const registry = registryOf({
      instances: [openaiAt(sims.a.baseURL, KEY_A)],
    });
    await registry.reload();
    assert.equal(registry.isConfigured("openai"), true);
    assert.equal(registry.isConfigured("google"), false);
    assert.equal(registry.isConfigured("local"), true);
    assert.equal(registry.get("google"), undefined);
    assert.equal(registry.get("local")?.name, "local");
    assert.equal(registry.providers.google, undefined);
    assert.equal(registry.providers.openai, registry.get("openai"));
    await callMany(registry, 3);
    assert.equal(callsTo(sims.a), 3);
    assert.deepEqual(registry.list(), [
      {
        id: "env:openai",
        provider: "openai",
        name: "environment",
        key: maskSecret(KEY_A),
        baseUrl: sims.a.baseURL,
        weight: 1,
        createdAt: null,
        disabled: false,
        source: "environment",
        status: "active",
        statusDetail: null,
        lastError: null,
        statusSince: null,
        statusUntil: null,
      },
    ]);
  });

  it("sends each credential its share of calls by weight", async () => {
    await store(sims.a, { weight: 3 });
    await store(sims.b, { weight: 1 });
    const calls = 40;
    const registry = registryOf({ random: gridRandom(calls) });
    await registry.reload();
    await callMany(registry, calls);
    assert.equal(callsTo(sims.a), 30);
    assert.equal(callsTo(sims.b), 10);
    assert.equal(sims.a.requests[0]?.headers.authorization, `Bearer ${KEY_A}`);
    assert.equal(sims.b.requests[0]?.headers.authorization, `Bearer ${KEY_B}`);
  });

  it("shares calls about evenly between equal weights with Math.random", async () => {
    await store(sims.a, { weight: 5 });
    await store(sims.b, { weight: 5 });
    const registry = registryOf();
    await registry.reload();
    await callMany(registry, 60);
    // 60 fair coin flips land within 15..45 with probability > 0.9999.
    assert.ok(callsTo(sims.a) >= 15 && callsTo(sims.b) >= 15, `${callsTo(sims.a)}`);
    assert.equal(callsTo(sims.a) + callsTo(sims.b), 60);
  });

  it("pools the environment credential with stored ones", async () => {
    const stored = await store(sims.c, { weight: 1 });
    const calls = 20;
    const registry = registryOf({
      instances: [openaiAt(sims.a.baseURL, KEY_A)],
      random: gridRandom(calls),
    });
    await registry.reload();
    await callMany(registry, calls);
    assert.equal(callsTo(sims.a), 10);
    assert.equal(callsTo(sims.c), 10);
    assert.deepEqual(
      registry.list().map((view) => [view.id, view.source]),
      [
        ["env:openai", "environment"],
        [stored.id, "database"],
      ],
    );
  });

  it("uses the environment's base URL for a stored credential without one", async () => {
    await store(sims.a, { baseUrl: null });
    const registry = registryOf({
      instances: [openaiAt(sims.a.baseURL, undefined)],
    });
    await registry.reload();
    await callMany(registry, 2);
    assert.equal(callsTo(sims.a), 2);
  });

  it("never uses a credential of weight 0 or a disabled one", async () => {
    await store(sims.a, { weight: 1 });
    const zero = await store(sims.b, { weight: 0 });
    const disabled = await store(sims.c, { weight: 1000, disabledAt: Date.now() });
    const registry = registryOf();
    await registry.reload();
    await callMany(registry, 20);
    assert.equal(callsTo(sims.a), 20);
    assert.equal(callsTo(sims.b), 0);
    assert.equal(callsTo(sims.c), 0);
    const views = new Map(registry.list().map((view) => [view.id, view]));
    assert.equal(views.get(zero.id)?.status, "active");
    assert.equal(views.get(disabled.id)?.status, "disabled");
    assert.equal(views.get(disabled.id)?.disabled, true);
  });

  it("is not configured when its only credentials have weight 0 or are disabled", async () => {
    await store(sims.a, { weight: 0 });
    await store(sims.b, { disabledAt: Date.now() });
    const registry = registryOf();
    await registry.reload();
    assert.equal(registry.isConfigured("openai"), false);
    assert.equal(registry.get("openai"), undefined);
  });

  it("skips a credential stored under another master key, warning with its id only", async () => {
    const foreign = await store(sims.b, {}, createVault("some other master key"));
    await store(sims.a);
    const warnings: { details: Record<string, unknown>; message: string }[] = [];
    const registry = registryOf({
      log: { warn: (details, message) => warnings.push({ details, message }) },
    });
    await registry.reload();
    await callMany(registry, 5);
    assert.equal(callsTo(sims.a), 5);
    assert.equal(callsTo(sims.b), 0);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.details.credentialId, foreign.id);
    assert.ok(!JSON.stringify(warnings).includes(KEY_B));
    assert.ok(!JSON.stringify(warnings).includes(foreign.encryptedKey));
    const view = registry.list().find((candidate) => candidate.id === foreign.id);
    assert.equal(view?.status, "undecryptable");
    // Warned once, not on every reload.
    await registry.reload();
    assert.equal(warnings.length, 1);
  });

  it("picks up new, changed and removed credentials on reload", async () => {
    const registry = registryOf({ random: gridRandom(10) });
    await registry.reload();
    assert.equal(registry.get("openai"), undefined);

    const first = await store(sims.a);
    assert.equal(registry.get("openai"), undefined, "nothing changes before reload");
    await registry.reload();
    const provider = registry.get("openai");
    assert.ok(provider);
    await callMany(registry, 2);
    assert.equal(callsTo(sims.a), 2);

    await store(sims.b, { weight: 1 });
    await db.updateCredential(first.id, { disabledAt: Date.now() });
    await registry.reload();
    // The provider obtained earlier draws from the new pool.
    await provider.generate(providerCall({ model: "dall-e-2", size: "256x256" }));
    assert.equal(callsTo(sims.a), 2);
    assert.equal(callsTo(sims.b), 1);
    assert.equal(registry.list().length, 2);

    await db.deleteCredential(first.id);
    for (const view of registry.list()) await db.deleteCredential(view.id);
    await registry.reload();
    assert.equal(registry.get("openai"), undefined);
    assert.deepEqual(registry.list(), []);
  });

  it("makes Google providers for google credentials", async () => {
    await store(sims.a, { provider: "google", baseUrl: "http://127.0.0.1:9" });
    const registry = registryOf();
    await registry.reload();
    assert.equal(registry.get("google")?.name, "google");
    assert.equal(registry.isConfigured("openai"), false);
  });

  it("quarantines a credential the upstream refuses (401), logs it by id, and moves on", async () => {
    // Stored under B's simulator with A's key: B answers 401 Incorrect API key.
    const refused = await store(sims.b, {
      encryptedKey: vault.encrypt(KEY_A, "cred_refused"),
      id: "cred_refused",
      createdAt: Date.now() - 60_000,
    });
    await store(sims.c, { weight: 1 });
    const warnings: Array<{ details: Record<string, unknown>; message: string }> = [];
    const registry = registryOf({
      // Refused first, then the other: the pick walks [0, 1) from the bottom.
      random: () => 0,
      log: { warn: (details, message) => warnings.push({ details, message }) },
    });
    await registry.reload();
    await callMany(registry, 1);
    assert.equal(callsTo(sims.b), 1);
    assert.equal(callsTo(sims.c), 1, "the same call moved on to the next credential");

    const warning = warnings.find((entry) => entry.details.credentialId === refused.id);
    assert.ok(warning, JSON.stringify(warnings));
    assert.match(warning.message, /quarantined/);
    assert.equal(warning.details.upstreamStatus, 401);
    assert.equal(warning.details.nextTryInSeconds, 30);
    assert.ok(!JSON.stringify(warnings).includes(KEY_A), "the key itself is never logged");
    const view = registry.list().find((entry) => entry.id === refused.id);
    assert.equal(view?.status, "auth_failed");
    assert.equal(view?.disabled, false, "only an admin disables for good");
    assert.match(String(view?.lastError), /Incorrect API key/);
    assert.ok(
      view?.statusUntil && view.statusSince && view.statusUntil - view.statusSince === 30_000,
    );
    assert.equal(
      (await db.listCredentials()).find((r) => r.id === refused.id)?.disabledAt,
      null,
      "nothing stored: a restart tries it again",
    );

    await callMany(registry, 3);
    assert.equal(callsTo(sims.b), 1, "not called again during its quarantine");
  });

  it("a fallback can pin a credential of weight 0, which the rotation never picks", async () => {
    const reserve = await store(sims.b, { weight: 0 });
    await store(sims.a, { weight: 1 });
    const registry = registryOf();
    await registry.reload();
    await callMany(registry, 4);
    assert.equal(callsTo(sims.b), 0);
    const pinned = registry.pinned(reserve.id);
    assert.ok(pinned);
    await pinned.generate(providerCall({ model: "dall-e-2", size: "256x256" }));
    assert.equal(callsTo(sims.b), 1);
    assert.equal(registry.pinned("cred_unknown"), undefined);
  });

  describe("listModels", () => {
    const listOptions = () => ({ signal: new AbortController().signal, timeoutMs: 5_000 });
    const listsAskedOf = (sim: OpenAISimulator) =>
      sim.requests.filter((request) => request.path === "/v1/models").length;

    it("skips a credential the upstream refuses (401) and answers from the next", async () => {
      await store(sims.c);
      const warnings: Record<string, unknown>[] = [];
      const registry = registryOf({
        // The environment's credential is asked first: B's simulator refuses A's key.
        instances: [openaiAt(sims.b.baseURL, KEY_A)],
        log: { warn: (details) => warnings.push(details) },
      });
      await registry.reload();
      const provider = registry.get("openai");
      assert.ok(provider?.listModels);

      const models = await provider.listModels(listOptions());
      assert.equal(listsAskedOf(sims.b), 1);
      assert.equal(listsAskedOf(sims.c), 1);
      assert.ok(models.some((model) => model.id === "gpt-image-2"));
      // A refusal counts as it does for a call: the credential is out until an admin acts.
      assert.equal(registry.list().find((view) => view.id === "env:openai")?.status, "auth_failed");
      assert.ok(warnings.some((details) => details.credentialId === "env:openai"));

      await provider.listModels(listOptions());
      assert.equal(listsAskedOf(sims.b), 1, "the refused credential is not asked again");
      assert.equal(listsAskedOf(sims.c), 2);
    });

    it("moves on past an upstream that fails, and throws the last error when none answers", async () => {
      await store(sims.a, { createdAt: Date.now() - 60_000 });
      await store(sims.c);
      const registry = registryOf();
      await registry.reload();
      const provider = registry.get("openai");
      assert.ok(provider?.listModels);

      sims.a.failModelList = 503;
      assert.ok((await provider.listModels(listOptions())).length > 0);
      assert.equal(listsAskedOf(sims.a), 1);
      assert.equal(listsAskedOf(sims.c), 1);

      sims.c.failModelList = 500;
      await assert.rejects(provider.listModels(listOptions()), (error: unknown) => {
        assert.ok(error instanceof HubError);
        assert.equal(error.upstreamStatus, 500, "the last credential's error");
        return true;
      });
      assert.equal(listsAskedOf(sims.a), 2);
      assert.equal(listsAskedOf(sims.c), 2);
    });

    it("throws when every credential is refused", async () => {
      await store(sims.b, { encryptedKey: vault.encrypt(KEY_A, "cred_wrong"), id: "cred_wrong" });
      const registry = registryOf();
      await registry.reload();
      const provider = registry.get("openai");
      assert.ok(provider?.listModels);
      await assert.rejects(provider.listModels(listOptions()), (error: unknown) => {
        assert.ok(error instanceof HubError);
        assert.equal(error.code, "upstream_auth_failed");
        return true;
      });
      // Asked again, nobody is left to ask: the registry says so without a request.
      await assert.rejects(provider.listModels(listOptions()), { code: "upstream_auth_failed" });
      assert.equal(listsAskedOf(sims.b), 1);
    });

    it("is offered by pinned credentials, not by the local provider", async () => {
      const reserve = await store(sims.b, { weight: 0 });
      const registry = registryOf();
      await registry.reload();
      const pinned = registry.pinned(reserve.id);
      assert.ok(pinned?.listModels);
      assert.ok((await pinned.listModels(listOptions())).length > 0);
      assert.equal(listsAskedOf(sims.b), 1);
      assert.equal(registry.get("local")?.listModels, undefined);
    });
  });
});
