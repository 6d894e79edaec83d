/**
 * The admin API of model routes (src/http/admin-routes.ts) on a real hub: every catalog model
 * listed with its effective timeout, routes set, changed and removed by any of a model's names,
 * every misconfiguration refused before it is stored, and routes kept across a restart.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { MODELS } from "../../src/images/catalog.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

interface FallbackView {
  model: string;
  provider: string | null;
  credential: string | null;
}

interface RouteView {
  object: string;
  model: string;
  provider: string;
  fallbacks: FallbackView[];
  timeout_ms: number;
  timeout_source: string;
  retry_billable: boolean;
  configured: boolean;
  updated_at: number | null;
}

const ENV = {
  MASTER_KEY: "admin-routes-test-master-key-0123456789",
  OPENAI_API_KEY: "sk-env-openai-routes-0123456789",
  OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
  GEMINI_API_KEY: "env-gemini-routes-0123456789",
  GEMINI_BASE_URL: "http://127.0.0.1:9",
  MODEL_ALIASES: "fast=gpt-image-1-mini",
};

let hub: TestHub;
/** Stored credentials, added through the admin API. */
let openaiCredential: string;
let googleCredential: string;

async function call(
  target: TestHub,
  method: "GET" | "PUT" | "DELETE" | "POST",
  url: string,
  payload?: unknown,
  key: string | null = target.adminKey,
): Promise<Reply> {
  const response = await target.app.inject({
    method,
    url,
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    headers: key === null ? {} : { authorization: `Bearer ${key}` },
  });
  return { status: response.statusCode, body: response.json() };
}

/** The route view of a 200 reply; fails with the body otherwise. */
function viewOf(reply: Reply): RouteView {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(reply.body.object, "model_route");
  return reply.body as unknown as RouteView;
}

async function route(name: string): Promise<RouteView> {
  return viewOf(await call(hub, "GET", `/api/admin/routes/${name}`));
}

async function putRoute(name: string, body: unknown): Promise<Reply> {
  return call(hub, "PUT", `/api/admin/routes/${name}`, body);
}

async function listRoutes(target: TestHub): Promise<RouteView[]> {
  const reply = await call(target, "GET", "/api/admin/routes");
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(reply.body.object, "list");
  return reply.body.data as RouteView[];
}

async function addCredential(provider: "openai" | "google", name: string): Promise<string> {
  const reply = await call(hub, "POST", "/api/admin/credentials", {
    provider,
    name,
    api_key: `${provider}-${name}-secret-0123456789`,
  });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return String(reply.body.id);
}

function errorOf(reply: Reply): { message: string; type: string; param: string; code: string } {
  return reply.body.error as { message: string; type: string; param: string; code: string };
}

const catalogTimeout = (id: string) => MODELS.find((model) => model.id === id)?.timeoutMs;

before(async () => {
  hub = await startTestHub(ENV);
  openaiCredential = await addCredential("openai", "backup");
  googleCredential = await addCredential("google", "backup");
});

after(async () => {
  await hub.close();
});

// Each test starts from the defaults.
afterEach(async () => {
  for (const record of await hub.db.listModelRoutes()) {
    const reply = await call(hub, "DELETE", `/api/admin/routes/${record.model}`);
    assert.equal(reply.status, 200);
  }
});

describe("GET /api/admin/routes", () => {
  it("lists every catalog model with its defaults and the catalog's timeout", async () => {
    const routes = await listRoutes(hub);
    assert.deepEqual(
      routes.map((view) => view.model),
      MODELS.map((model) => model.id),
    );
    for (const model of MODELS) {
      const view = routes.find((candidate) => candidate.model === model.id);
      assert.deepEqual(view, {
        object: "model_route",
        model: model.id,
        provider: model.provider,
        fallbacks: [],
        timeout_ms: model.timeoutMs,
        timeout_source: "catalog",
        retry_billable: false,
        configured: false,
        updated_at: null,
      });
    }
  });

  it("shows UPSTREAM_TIMEOUT_MS as the setting, below a route's own timeout", async () => {
    const tuned = await startTestHub({ UPSTREAM_TIMEOUT_MS: "45000" });
    try {
      for (const view of await listRoutes(tuned)) {
        assert.equal(view.timeout_ms, 45_000, view.model);
        assert.equal(view.timeout_source, "setting", view.model);
      }
      const set = viewOf(
        await call(tuned, "PUT", "/api/admin/routes/dall-e-3", { timeout_ms: 20_000 }),
      );
      assert.equal(set.timeout_ms, 20_000);
      assert.equal(set.timeout_source, "route");
      const cleared = viewOf(
        await call(tuned, "PUT", "/api/admin/routes/dall-e-3", { timeout_ms: null }),
      );
      assert.equal(cleared.timeout_ms, 45_000);
      assert.equal(cleared.timeout_source, "setting");
    } finally {
      await tuned.close();
    }
  });
});

describe("PUT, GET and DELETE /api/admin/routes/{model}", () => {
  it("sets a route, shows it by every name, changes one field at a time and removes it", async () => {
    const before = Date.now();
    const set = viewOf(
      await putRoute("dall-e-3", {
        fallbacks: [
          { model: "dall-e-3", credential: openaiCredential },
          { model: "fast" },
          { model: "nano-banana", credential: "env:google" },
          { model: "gemini/gemini-2.5-flash-image", credential: googleCredential },
          { model: "placeholder", credential: null },
        ],
        timeout_ms: 90_000,
        retry_billable: true,
      }),
    );
    const expected: RouteView = {
      object: "model_route",
      model: "dall-e-3",
      provider: "openai",
      // Names resolved to catalog ids; the same model on two credentials is two fallbacks.
      fallbacks: [
        { model: "dall-e-3", provider: "openai", credential: openaiCredential },
        { model: "gpt-image-1-mini", provider: "openai", credential: null },
        { model: "gemini-2.5-flash-image", provider: "google", credential: "env:google" },
        { model: "gemini-2.5-flash-image", provider: "google", credential: googleCredential },
        { model: "local/placeholder", provider: "local", credential: null },
      ],
      timeout_ms: 90_000,
      timeout_source: "route",
      retry_billable: true,
      configured: true,
      updated_at: set.updated_at,
    };
    assert.deepEqual(set, expected);
    assert.ok(set.updated_at !== null && set.updated_at >= Math.floor(before / 1000));
    assert.deepEqual(await route("dall-e-3"), expected);
    assert.deepEqual(await route("openai/dall-e-3"), expected);
    assert.deepEqual(
      (await listRoutes(hub)).find((view) => view.model === "dall-e-3"),
      expected,
    );
    // Stored by id, with the ids of the fallbacks.
    const [stored] = await hub.db.listModelRoutes();
    assert.equal(stored?.model, "dall-e-3");
    assert.deepEqual(stored?.fallbacks[1], { model: "gpt-image-1-mini", credentialId: null });

    // Fields left out keep their value.
    const retryOff = viewOf(await putRoute("dall-e-3", { retry_billable: false }));
    assert.deepEqual(retryOff, {
      ...expected,
      retry_billable: false,
      updated_at: retryOff.updated_at,
    });
    const defaultTimeout = viewOf(await putRoute("dall-e-3", { timeout_ms: null }));
    assert.equal(defaultTimeout.timeout_ms, catalogTimeout("dall-e-3"));
    assert.equal(defaultTimeout.timeout_source, "catalog");
    assert.deepEqual(defaultTimeout.fallbacks, expected.fallbacks);
    const noFallbacks = viewOf(await putRoute("dall-e-3", { fallbacks: [] }));
    assert.deepEqual(noFallbacks.fallbacks, []);
    assert.equal(noFallbacks.configured, true);
    assert.equal(noFallbacks.retry_billable, false);

    const removed = viewOf(await call(hub, "DELETE", "/api/admin/routes/openai/dall-e-3"));
    assert.deepEqual(removed, {
      ...expected,
      fallbacks: [],
      timeout_ms: catalogTimeout("dall-e-3"),
      timeout_source: "catalog",
      retry_billable: false,
      configured: false,
      updated_at: null,
    });
    assert.deepEqual(await route("dall-e-3"), removed);
    assert.deepEqual(await hub.db.listModelRoutes(), []);
    // Removing what is not there is not an error: the defaults already apply.
    assert.deepEqual(viewOf(await call(hub, "DELETE", "/api/admin/routes/dall-e-3")), removed);
  });

  it("a field left out keeps the value stored by another instance, not this one's copy", async () => {
    viewOf(await putRoute("gpt-image-1", { timeout_ms: 60_000 }));
    // Another hub on the same database changes the route; this one has not reloaded yet.
    await hub.db.putModelRoute({
      model: "gpt-image-1",
      fallbacks: [{ model: "gpt-image-1-mini", credentialId: null }],
      timeoutMs: 120_000,
      retryBillable: true,
      updatedAt: Date.now(),
    });
    const changed = viewOf(await putRoute("gpt-image-1", { retry_billable: false }));
    assert.deepEqual(changed.fallbacks, [
      { model: "gpt-image-1-mini", provider: "openai", credential: null },
    ]);
    assert.equal(changed.timeout_ms, 120_000);
    assert.equal(changed.retry_billable, false);
  });

  it("names the model by id, alias, provider/id or admin alias, with or without an encoded slash", async () => {
    const names: [string, string][] = [
      ["nano-banana", "gemini-2.5-flash-image"],
      ["google/nano-banana", "gemini-2.5-flash-image"],
      ["gemini/gemini-2.5-flash-image", "gemini-2.5-flash-image"],
      ["imagen-4", "imagen-4.0-generate-001"],
      ["local/placeholder", "local/placeholder"],
      ["local%2Fplaceholder", "local/placeholder"],
      ["placeholder", "local/placeholder"],
      ["fast", "gpt-image-1-mini"],
    ];
    for (const [name, id] of names) {
      assert.equal((await route(name)).model, id, name);
    }
    const set = viewOf(await putRoute("nano-banana", { timeout_ms: 30_000 }));
    assert.equal(set.model, "gemini-2.5-flash-image");
    assert.deepEqual(
      (await hub.db.listModelRoutes()).map((record) => record.model),
      ["gemini-2.5-flash-image"],
    );
  });

  it("answers 404 model_not_found for a name the catalog does not know", async () => {
    for (const method of ["GET", "PUT", "DELETE"] as const) {
      for (const name of ["dall-e-4", "openai/nano-banana", ""]) {
        const reply = await call(
          hub,
          method,
          `/api/admin/routes/${name}`,
          method === "PUT" ? { timeout_ms: 5000 } : undefined,
        );
        assert.equal(reply.status, 404, `${method} ${name}`);
        assert.equal(errorOf(reply).code, "model_not_found", `${method} ${name}`);
      }
    }
    assert.deepEqual(await hub.db.listModelRoutes(), []);
  });
});

describe("PUT /api/admin/routes/{model} refuses a route it could not follow", () => {
  const sixFallbacks = ["gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2"]
    .map((model) => ({ model }))
    .concat([{ model: "dall-e-2" }, { model: "local/placeholder" }]);
  // [what, body, param, code, message]
  const cases: [string, () => unknown, string, string, RegExp][] = [
    [
      "an unknown fallback model",
      () => ({ fallbacks: [{ model: "gpt-image-1" }, { model: "dall-e-4" }] }),
      "fallbacks[1].model",
      "model_not_found",
      /'dall-e-4' does not exist/,
    ],
    [
      "more than 5 fallbacks",
      () => ({ fallbacks: sixFallbacks }),
      "fallbacks",
      "invalid_value",
      /more than 5/,
    ],
    [
      "the same fallback twice, under two names",
      () => ({ fallbacks: [{ model: "gpt-image-1" }, { model: "openai/gpt-image-1" }] }),
      "fallbacks[1]",
      "duplicate_fallback",
      /same model and credential as fallbacks\[0\]/,
    ],
    [
      "the same fallback twice on one credential",
      () => ({
        fallbacks: [
          { model: "gpt-image-1", credential: openaiCredential },
          { model: "gpt-image-1", credential: null },
          { model: "gpt-image-1", credential: openaiCredential },
        ],
      }),
      "fallbacks[2]",
      "duplicate_fallback",
      /fallbacks\[0\]/,
    ],
    [
      "the model itself without a credential",
      () => ({ fallbacks: [{ model: "gpt-image-1" }, { model: "openai/dall-e-3" }] }),
      "fallbacks[1].credential",
      "fallback_loop",
      /falling back to itself needs a 'credential'/,
    ],
    [
      "the model itself with a null credential",
      () => ({ fallbacks: [{ model: "dall-e-3", credential: null }] }),
      "fallbacks[0].credential",
      "fallback_loop",
      /itself/,
    ],
    [
      "an unknown credential",
      () => ({ fallbacks: [{ model: "gpt-image-1", credential: "cred_0000000000000000" }] }),
      "fallbacks[0].credential",
      "credential_not_found",
      /no provider credential 'cred_0000000000000000'/,
    ],
    [
      "a stored credential of another provider",
      () => ({
        fallbacks: [
          { model: "gpt-image-1", credential: openaiCredential },
          { model: "nano-banana", credential: openaiCredential },
        ],
      }),
      "fallbacks[1].credential",
      "credential_provider_mismatch",
      /is a openai credential, and 'gemini-2.5-flash-image' is served by google/,
    ],
    [
      "the environment's credential of another provider",
      () => ({ fallbacks: [{ model: "gpt-image-1", credential: "env:google" }] }),
      "fallbacks[0].credential",
      "credential_provider_mismatch",
      /'env:google' is a google credential/,
    ],
    [
      "a credential for the built-in model",
      () => ({ fallbacks: [{ model: "placeholder", credential: "env:openai" }] }),
      "fallbacks[0].credential",
      "credential_not_applicable",
      /takes no credential/,
    ],
    [
      "a timeout below a second",
      () => ({ timeout_ms: 999 }),
      "timeout_ms",
      "invalid_value",
      />= 1000/,
    ],
    [
      "a timeout above an hour",
      () => ({ timeout_ms: 3_600_001 }),
      "timeout_ms",
      "invalid_value",
      /<= 3600000/,
    ],
    [
      "a timeout that is not an integer",
      () => ({ timeout_ms: "5000" }),
      "timeout_ms",
      "invalid_value",
      /timeout_ms/,
    ],
    [
      "a retry flag that is not a boolean",
      () => ({ retry_billable: "yes" }),
      "retry_billable",
      "invalid_value",
      /boolean/,
    ],
    [
      "fallbacks that are not a list",
      () => ({ fallbacks: { model: "gpt-image-1" } }),
      "fallbacks",
      "invalid_value",
      /array/,
    ],
    [
      "an unknown field",
      () => ({ timeout: 5000 }),
      "timeout",
      "unknown_parameter",
      /Unrecognized request argument supplied: timeout/,
    ],
    [
      "an unknown field of a fallback (a misspelt credential)",
      () => ({ fallbacks: [{ model: "gpt-image-1", credential_id: openaiCredential }] }),
      "fallbacks[0].credential_id",
      "unknown_parameter",
      /fallbacks\[0\]\.credential_id/,
    ],
  ];

  for (const [what, body, param, code, message] of cases) {
    it(`refuses ${what}: 400 ${code} on ${param}, and stores nothing`, async () => {
      const reply = await putRoute("dall-e-3", body());
      assert.equal(reply.status, 400, JSON.stringify(reply.body));
      const error = errorOf(reply);
      assert.equal(error.type, "invalid_request_error");
      assert.equal(error.param, param);
      assert.equal(error.code, code);
      assert.match(error.message, message);
      assert.deepEqual(await hub.db.listModelRoutes(), []);
      assert.equal((await route("dall-e-3")).configured, false);
    });
  }

  it("keeps the stored route when a change is refused", async () => {
    const set = viewOf(await putRoute("dall-e-3", { fallbacks: [{ model: "gpt-image-1" }] }));
    const refused = await putRoute("dall-e-3", {
      fallbacks: [{ model: "gpt-image-1", credential: "env:google" }],
      timeout_ms: 10_000,
    });
    assert.equal(refused.status, 400);
    assert.deepEqual(await route("dall-e-3"), set);
  });

  it("takes the model itself on another credential, and a credential the provider matches", async () => {
    const set = viewOf(
      await putRoute("imagen-4", {
        fallbacks: [
          { model: "imagen-4.0-generate-001", credential: googleCredential },
          { model: "dall-e-3", credential: "env:openai" },
        ],
      }),
    );
    assert.deepEqual(set.fallbacks, [
      { model: "imagen-4.0-generate-001", provider: "google", credential: googleCredential },
      { model: "dall-e-3", provider: "openai", credential: "env:openai" },
    ]);
  });
});

describe("access", () => {
  it("needs an admin key: 401 without a key, 403 with a client key", async () => {
    const requests: ["GET" | "PUT" | "DELETE", string, unknown][] = [
      ["GET", "/api/admin/routes", undefined],
      ["GET", "/api/admin/routes/dall-e-3", undefined],
      ["PUT", "/api/admin/routes/dall-e-3", { timeout_ms: 5000 }],
      ["DELETE", "/api/admin/routes/dall-e-3", undefined],
    ];
    for (const [method, url, payload] of requests) {
      const anonymous = await call(hub, method, url, payload, null);
      assert.equal(anonymous.status, 401, `${method} ${url}`);
      const client = await call(hub, method, url, payload, hub.key);
      assert.equal(client.status, 403, `${method} ${url}`);
      assert.equal(errorOf(client).code, "permission_denied");
    }
    assert.deepEqual(await hub.db.listModelRoutes(), []);
  });
});

describe("restart", () => {
  it("keeps the routes: a restarted hub shows and applies what was set", async () => {
    const set = viewOf(
      await putRoute("gpt-image-1", {
        fallbacks: [
          { model: "gpt-image-1", credential: openaiCredential },
          { model: "nano-banana" },
        ],
        timeout_ms: 240_000,
        retry_billable: true,
      }),
    );
    await hub.restart();
    assert.deepEqual(await route("gpt-image-1"), set);
    assert.equal((await listRoutes(hub)).filter((view) => view.configured).length, 1);
  });
});
