/**
 * The key lifecycle against a real (in-memory) SQLite database: what create stores, how update,
 * credit, revoke and rotate change a key, and the values each refuses before changing anything.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createKeyService, type KeyService } from "../../src/auth/key-service.ts";
import { createAuthenticator } from "../../src/auth/principal.ts";
import { createCatalog } from "../../src/images/catalog.ts";
import { openSqliteDatabase } from "../../src/storage/db/sqlite.ts";
import type { Database } from "../../src/storage/db/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";

const T0 = Date.UTC(2025, 0, 15, 12, 0, 0);

let db: Database;
let now: number;
let keys: KeyService;

beforeEach(() => {
  db = openSqliteDatabase(":memory:");
  now = T0;
  keys = createKeyService(db, { clock: () => now });
});

afterEach(async () => {
  await db.close();
});

async function authenticates(key: string): Promise<boolean> {
  const authenticator = createAuthenticator({ db, adminKey: undefined });
  try {
    await authenticator.authenticate(`Bearer ${key}`);
    return true;
  } catch {
    return false;
  }
}

describe("create", () => {
  it("stores the settings, shows USD and unix seconds, and hands the secret back once", async () => {
    const { view, key } = await keys.create({
      name: "  my app ",
      balanceUsd: 10.5,
      models: ["gpt-image-1", "dall-e-3"],
      rpm: 60,
      ipm: 20,
    });
    assert.match(key, /^sk-ih-[0-9a-f]{12}-[A-Za-z0-9_-]{43}$/);
    assert.ok(key.startsWith(`sk-ih-${view.id}-`));
    assert.deepEqual(view, {
      id: view.id,
      object: "api_key",
      name: "my app",
      role: "client",
      models: ["gpt-image-1", "dall-e-3"],
      rpm: 60,
      ipm: 20,
      balance: 10.5,
      created_at: T0 / 1000,
      last_used_at: null,
      revoked_at: null,
    });
    const record = await db.findKey(view.id);
    assert.equal(record?.balanceMicros, 10_500_000);
    assert.ok(!JSON.stringify(record).includes(key.slice(-43)), "the secret is not stored");
    assert.ok(await authenticates(key));
  });

  it("defaults to a client key with every model, no limits and an unlimited balance", async () => {
    const { view } = await keys.create({ name: "plain" });
    assert.equal(view.role, "client");
    assert.equal(view.models, null);
    assert.equal(view.rpm, null);
    assert.equal(view.ipm, null);
    assert.equal(view.balance, null);
  });

  it("creates admin keys", async () => {
    const { view } = await keys.create({ name: "ops", role: "admin" });
    assert.equal(view.role, "admin");
  });

  it("stores canonical ids for aliases, without repeats", async () => {
    const catalog = createCatalog();
    const spec = catalog.models.find((model) => model.aliases.length > 0);
    assert.ok(spec, "the catalog has a model with an alias");
    const alias = spec.aliases[0] as string;
    const { view } = await keys.create({
      name: "aliases",
      models: [alias, spec.id, `${spec.provider}/${spec.id}`],
    });
    assert.deepEqual(view.models, [spec.id]);
  });

  it("follows operator aliases when given the hub's catalog", async () => {
    const withAliases = createKeyService(db, {
      catalog: createCatalog(undefined, { fast: "gpt-image-1" }),
    });
    const { view } = await withAliases.create({ name: "fast", models: ["fast"] });
    assert.deepEqual(view.models, ["gpt-image-1"]);
  });

  const refusals: Array<[string, Parameters<KeyService["create"]>[0], string]> = [
    ["an empty name", { name: "   " }, "name"],
    ["a long name", { name: "x".repeat(101) }, "name"],
    ["an unknown role", { name: "a", role: "root" as "admin" }, "role"],
    ["an unknown model", { name: "a", models: ["no-such-model"] }, "models"],
    ["an empty model list", { name: "a", models: [] }, "models"],
    ["rpm 0", { name: "a", rpm: 0 }, "rpm"],
    ["a fractional rpm", { name: "a", rpm: 1.5 }, "rpm"],
    ["a negative ipm", { name: "a", ipm: -1 }, "ipm"],
    ["a negative balance", { name: "a", balanceUsd: -1 }, "balance"],
    ["a NaN balance", { name: "a", balanceUsd: Number.NaN }, "balance"],
    ["an absurd balance", { name: "a", balanceUsd: 1e12 }, "balance"],
  ];
  for (const [what, input, param] of refusals) {
    it(`refuses ${what} with a 400 naming '${param}', creating nothing`, async () => {
      const error = await hubErrorOf(keys.create(input));
      assert.equal(error.status, 400);
      assert.equal(error.param, param);
      assert.equal((await keys.list()).length, 0);
    });
  }
});

describe("list and show", () => {
  it("lists every key, revoked ones too", async () => {
    const first = await keys.create({ name: "one" });
    const second = await keys.create({ name: "two" });
    await keys.revoke(first.view.id);
    const views = await keys.list();
    assert.deepEqual(views.map((view) => view.name).sort(), ["one", "two"]);
    assert.ok(views.find((view) => view.id === first.view.id)?.revoked_at);
    assert.equal(views.find((view) => view.id === second.view.id)?.revoked_at, null);
  });

  it("answers 404 key_not_found for an unknown id", async () => {
    for (const call of [
      keys.show("000000000000"),
      keys.update("000000000000", { name: "x" }),
      keys.credit("000000000000", 1),
      keys.revoke("000000000000"),
      keys.rotate("000000000000"),
    ]) {
      const error = await hubErrorOf(call);
      assert.equal(error.status, 404);
      assert.equal(error.code, "key_not_found");
    }
  });

  it("shows last_used_at once the tracker has written it", async () => {
    const { view } = await keys.create({ name: "used" });
    await db.touchKeys(new Map([[view.id, T0 + 90_000]]));
    assert.equal((await keys.show(view.id)).last_used_at, T0 / 1000 + 90);
  });
});

describe("update", () => {
  it("changes only the fields given; null clears a limit and makes the balance unlimited", async () => {
    const { view } = await keys.create({
      name: "before",
      balanceUsd: 5,
      models: ["gpt-image-1"],
      rpm: 10,
      ipm: 5,
    });
    const renamed = await keys.update(view.id, { name: "after", rpm: 20 });
    assert.equal(renamed.name, "after");
    assert.equal(renamed.rpm, 20);
    assert.equal(renamed.ipm, 5);
    assert.equal(renamed.balance, 5);
    assert.deepEqual(renamed.models, ["gpt-image-1"]);

    const cleared = await keys.update(view.id, { models: null, ipm: null, balanceUsd: null });
    assert.equal(cleared.models, null);
    assert.equal(cleared.ipm, null);
    assert.equal(cleared.balance, null);
    assert.equal(cleared.rpm, 20);

    const limited = await keys.update(view.id, { balanceUsd: 2.25 });
    assert.equal(limited.balance, 2.25);
  });

  it("checks every value first: one bad field leaves the key as it was", async () => {
    const { view } = await keys.create({ name: "steady", rpm: 10 });
    const error = await hubErrorOf(keys.update(view.id, { name: "changed", ipm: 0 }));
    assert.equal(error.param, "ipm");
    assert.deepEqual(await keys.show(view.id), view);
  });
});

describe("credit", () => {
  it("adds and takes back credit in USD, exactly, stopping at zero", async () => {
    const { view } = await keys.create({ name: "wallet", balanceUsd: 1 });
    assert.equal((await keys.credit(view.id, 0.1)).balance, 1.1);
    assert.equal((await keys.credit(view.id, 0.2)).balance, 1.3);
    assert.equal((await db.findKey(view.id))?.balanceMicros, 1_300_000);
    assert.equal((await keys.credit(view.id, -0.3)).balance, 1);
    assert.equal((await keys.credit(view.id, -5)).balance, 0);
  });

  it("refuses to credit an unlimited key (409 key_unlimited): it stays unlimited", async () => {
    const { view } = await keys.create({ name: "open" });
    const error = await hubErrorOf(keys.credit(view.id, 3));
    assert.equal(error.status, 409);
    assert.equal(error.code, "key_unlimited");
    assert.equal((await keys.show(view.id)).balance, null);
  });

  it("refuses zero and amounts that are not numbers", async () => {
    const { view } = await keys.create({ name: "wallet", balanceUsd: 1 });
    for (const amount of [0, Number.NaN, Number.POSITIVE_INFINITY]) {
      const error = await hubErrorOf(keys.credit(view.id, amount));
      assert.equal(error.status, 400);
      assert.equal(error.param, "amount");
    }
  });
});

describe("revoke and rotate", () => {
  it("revoke stops the key at once and is idempotent", async () => {
    const { view, key } = await keys.create({ name: "short-lived" });
    now = T0 + 5000;
    const revoked = await keys.revoke(view.id);
    assert.equal(revoked.revoked_at, T0 / 1000 + 5);
    assert.equal(await authenticates(key), false);
    now = T0 + 9000;
    assert.equal((await keys.revoke(view.id)).revoked_at, T0 / 1000 + 5);
  });

  it("rotate keeps the id and settings; the old secret stops working, the new one works", async () => {
    const { view, key: old } = await keys.create({ name: "rotating", rpm: 7, balanceUsd: 2 });
    const rotated = await keys.rotate(view.id);
    assert.equal(rotated.view.id, view.id);
    assert.equal(rotated.view.rpm, 7);
    assert.equal(rotated.view.balance, 2);
    assert.notEqual(rotated.key, old);
    assert.ok(rotated.key.startsWith(`sk-ih-${view.id}-`));
    assert.equal(await authenticates(old), false);
    assert.equal(await authenticates(rotated.key), true);
  });

  it("refuses to rotate a revoked key", async () => {
    const { view } = await keys.create({ name: "gone" });
    await keys.revoke(view.id);
    const error = await hubErrorOf(keys.rotate(view.id));
    assert.equal(error.status, 409);
    assert.equal(error.code, "key_revoked");
  });
});
