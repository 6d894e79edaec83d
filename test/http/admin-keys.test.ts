/**
 * The key lifecycle through the admin API of a real hub: create with limits and credit, list,
 * show, update, credit, rotate, revoke; the errors each answers; and the schemas in
 * /openapi.json.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { callHub } from "../helpers/hub-process.ts";

let hub: TestHub;

before(async () => {
  hub = await startTestHub();
});

after(async () => {
  await hub.close();
});

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** A call as the admin, unless another key (or null for none) is given. */
function call(
  method: string,
  path: string,
  options: { key?: string | null; body?: unknown } = {},
): Promise<Reply> {
  const key = options.key === undefined ? hub.adminKey : options.key;
  return callHub(hub, method, path, { key, body: options.body });
}

function errorOf(reply: Reply, status: number, code: string) {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  const error = reply.body.error as { code: string; param: string | null; type: string };
  assert.equal(error.code, code);
  return error;
}

async function generate(key: string, model = "local/placeholder") {
  return call("POST", "/api/images/generations", {
    key,
    body: { model, prompt: "a lighthouse", size: "64x64" },
  });
}

describe("POST /api/admin/keys", () => {
  it("answers 201 with the key's fields and its secret in `key`", async () => {
    const reply = await call("POST", "/api/admin/keys", {
      body: { name: "shop", balance: 10, models: ["dall-e-3", "gpt-image-1"], rpm: 60, ipm: 20 },
    });
    assert.equal(reply.status, 201);
    const { id, key, created_at, ...rest } = reply.body;
    assert.match(String(key), /^sk-ih-[0-9a-f]{12}-/);
    assert.equal(typeof id, "string");
    assert.ok(Number.isInteger(created_at));
    assert.deepEqual(rest, {
      object: "api_key",
      name: "shop",
      role: "client",
      models: ["dall-e-3", "gpt-image-1"],
      rpm: 60,
      ipm: 20,
      balance: 10,
      last_used_at: null,
      revoked_at: null,
    });
  });

  it("defaults: client role, all models, no limits, unlimited balance", async () => {
    const reply = await call("POST", "/api/admin/keys", { body: { name: "defaults" } });
    assert.equal(reply.status, 201);
    assert.equal(reply.body.role, "client");
    assert.equal(reply.body.models, null);
    assert.equal(reply.body.rpm, null);
    assert.equal(reply.body.ipm, null);
    assert.equal(reply.body.balance, null);
  });

  it("the new key works for generation", async () => {
    const created = await call("POST", "/api/admin/keys", { body: { name: "works" } });
    const generated = await generate(created.body.key as string);
    assert.equal(generated.status, 200);
  });

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ["an unknown model", { name: "x", models: ["no-such-model"] }, "models"],
    ["a negative balance", { name: "x", balance: -1 }, "balance"],
    ["rpm 0", { name: "x", rpm: 0 }, "rpm"],
    ["a fractional ipm", { name: "x", ipm: 2.5 }, "ipm"],
    ["a balance as text", { name: "x", balance: "10" }, "balance"],
    ["an unknown role", { name: "x", role: "root" }, "role"],
  ];
  for (const [what, body, param] of invalid) {
    it(`answers 400 naming '${param}' for ${what}`, async () => {
      const reply = await call("POST", "/api/admin/keys", { body });
      assert.equal(reply.status, 400, JSON.stringify(reply.body));
      const error = reply.body.error as { param: string; type: string };
      assert.equal(error.type, "invalid_request_error");
      assert.equal(error.param, param);
    });
  }

  it("refuses an unknown field rather than dropping it (a typo must not make a key unlimited)", async () => {
    const reply = await call("POST", "/api/admin/keys", { body: { name: "typo", balace: 10 } });
    assert.equal(errorOf(reply, 400, "unknown_parameter").param, "balace");
    const patch = await call("PATCH", "/api/admin/keys/000000000000", { body: { rmp: 1 } });
    assert.equal(errorOf(patch, 400, "unknown_parameter").param, "rmp");
  });

  it("refuses a client key (403) and no key (401)", async () => {
    errorOf(
      await call("POST", "/api/admin/keys", { key: hub.key, body: { name: "x" } }),
      403,
      "permission_denied",
    );
    errorOf(await call("GET", "/api/admin/keys", { key: hub.key }), 403, "permission_denied");
    errorOf(await call("GET", "/api/admin/keys", { key: null }), 401, "invalid_api_key");
  });
});

describe("GET /api/admin/keys and /api/admin/keys/{id}", () => {
  it("lists keys without secrets, and shows one with its remaining balance", async () => {
    const created = await call("POST", "/api/admin/keys", {
      body: { name: "listed", balance: 2.5 },
    });
    const id = created.body.id as string;
    const list = await call("GET", "/api/admin/keys");
    assert.equal(list.status, 200);
    assert.equal(list.body.object, "list");
    const data = list.body.data as Array<Record<string, unknown>>;
    const listed = data.find((view) => view.id === id);
    assert.equal(listed?.name, "listed");
    assert.ok(data.every((view) => !("key" in view) && !("secretHash" in view)));

    const shown = await call("GET", `/api/admin/keys/${id}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.balance, 2.5);
    assert.equal(shown.body.id, id);
  });

  it("answers 404 key_not_found for an unknown id", async () => {
    errorOf(await call("GET", "/api/admin/keys/000000000000"), 404, "key_not_found");
    errorOf(
      await call("PATCH", "/api/admin/keys/000000000000", { body: { name: "x" } }),
      404,
      "key_not_found",
    );
    errorOf(await call("DELETE", "/api/admin/keys/000000000000"), 404, "key_not_found");
  });

  it("shows last_used_at once the hub has flushed its last-used times", async () => {
    const created = await call("POST", "/api/admin/keys", { body: { name: "tracked" } });
    const id = created.body.id as string;
    await hub.db.touchKeys(new Map([[id, 1_700_000_000_000]]));
    const shown = await call("GET", `/api/admin/keys/${id}`);
    assert.equal(shown.body.last_used_at, 1_700_000_000);
  });
});

describe("PATCH, credit, rotate, DELETE", () => {
  it("PATCH changes what is given and null clears", async () => {
    const created = await call("POST", "/api/admin/keys", {
      body: { name: "patchy", rpm: 5, balance: 1 },
    });
    const id = created.body.id as string;
    const patched = await call("PATCH", `/api/admin/keys/${id}`, {
      body: { name: "patched", rpm: null, ipm: 3, models: ["gpt-image-1"] },
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.name, "patched");
    assert.equal(patched.body.rpm, null);
    assert.equal(patched.body.ipm, 3);
    assert.deepEqual(patched.body.models, ["gpt-image-1"]);
    assert.equal(patched.body.balance, 1);

    const unlimited = await call("PATCH", `/api/admin/keys/${id}`, { body: { balance: null } });
    assert.equal(unlimited.body.balance, null);
  });

  it("credit tops up and takes back in USD", async () => {
    const created = await call("POST", "/api/admin/keys", { body: { name: "wallet", balance: 1 } });
    const id = created.body.id as string;
    const topped = await call("POST", `/api/admin/keys/${id}/credit`, { body: { amount: 5 } });
    assert.equal(topped.status, 200);
    assert.equal(topped.body.balance, 6);
    const taken = await call("POST", `/api/admin/keys/${id}/credit`, { body: { amount: -2.5 } });
    assert.equal(taken.body.balance, 3.5);
    const missing = await call("POST", `/api/admin/keys/${id}/credit`, { body: {} });
    assert.equal(
      errorOf(missing, 400, "missing_required_parameter").param,
      "amount",
      "amount is required",
    );
  });

  it("credit refuses a key without a limit (409 key_unlimited) rather than making it limited", async () => {
    const created = await call("POST", "/api/admin/keys", { body: { name: "open" } });
    const id = created.body.id as string;
    const refused = await call("POST", `/api/admin/keys/${id}/credit`, { body: { amount: 5 } });
    const error = errorOf(refused, 409, "key_unlimited");
    assert.equal(error.param, "id");
    assert.match(
      (refused.body.error as { message: string }).message,
      new RegExp(`no credit limit.*PATCH /api/admin/keys/${id} with \\{"balance"`),
    );
    assert.equal(
      (await call("GET", `/api/admin/keys/${id}`)).body.balance,
      null,
      "still unlimited",
    );
    assert.equal((await generate(created.body.key as string)).status, 200);

    // The way the message points to: set a balance, then credit adds to it.
    const limited = await call("PATCH", `/api/admin/keys/${id}`, { body: { balance: 2 } });
    assert.equal(limited.body.balance, 2);
    const topped = await call("POST", `/api/admin/keys/${id}/credit`, { body: { amount: 5 } });
    assert.equal(topped.status, 200, JSON.stringify(topped.body));
    assert.equal(topped.body.balance, 7);
    errorOf(
      await call("POST", "/api/admin/keys/000000000000/credit", { body: { amount: 1 } }),
      404,
      "key_not_found",
    );
  });

  it("rotate gives a new secret for the same id; the old one stops at once", async () => {
    const created = await call("POST", "/api/admin/keys", { body: { name: "rotating" } });
    const id = created.body.id as string;
    const oldKey = created.body.key as string;
    assert.equal((await generate(oldKey)).status, 200);
    const rotated = await call("POST", `/api/admin/keys/${id}/rotate`);
    assert.equal(rotated.status, 200);
    assert.equal(rotated.body.id, id);
    const newKey = rotated.body.key as string;
    assert.notEqual(newKey, oldKey);
    errorOf(await generate(oldKey), 401, "invalid_api_key");
    assert.equal((await generate(newKey)).status, 200);
  });

  it("DELETE revokes: the key is refused on its next request, and stays listed as revoked", async () => {
    const created = await call("POST", "/api/admin/keys", { body: { name: "doomed" } });
    const id = created.body.id as string;
    const key = created.body.key as string;
    assert.equal((await generate(key)).status, 200);
    const revoked = await call("DELETE", `/api/admin/keys/${id}`);
    assert.equal(revoked.status, 200);
    assert.ok(Number.isInteger(revoked.body.revoked_at));
    errorOf(await generate(key), 401, "invalid_api_key");
    const shown = await call("GET", `/api/admin/keys/${id}`);
    assert.equal(shown.body.revoked_at, revoked.body.revoked_at);
    errorOf(await call("POST", `/api/admin/keys/${id}/rotate`), 409, "key_revoked");
  });
});

describe("OpenAPI", () => {
  it("documents every key route with its schemas", async () => {
    const response = await fetch(`${hub.url}/openapi.json`);
    const document = (await response.json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown; responses: object }>>;
    };
    const keys = document.paths["/api/admin/keys"];
    const key = document.paths["/api/admin/keys/{id}"];
    assert.ok(keys?.post?.requestBody && keys.get);
    assert.ok(key?.get && key.patch?.requestBody && key.delete);
    assert.ok(document.paths["/api/admin/keys/{id}/credit"]?.post?.requestBody);
    assert.ok(document.paths["/api/admin/keys/{id}/rotate"]?.post);
    assert.ok("201" in keys.post.responses);
  });
});
