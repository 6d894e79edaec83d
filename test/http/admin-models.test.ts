/**
 * The model catalog's admin API on a real hub: a model added with one call is used by the very
 * next request (on another instance too, on PostgreSQL), a bad definition is a 400 naming the
 * field, built-in models are changed, hidden and defined anew, and it all survives a restart.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import {
  OPENAI_SHUT_DOWN_MODELS,
  type OpenAISimulator,
  startOpenAISimulator,
} from "../sim/openai.ts";
import { backends, freshPostgresStore } from "../storage/db/backends.ts";

const postgresSkip = backends.find((backend) => backend.name === "postgres")?.skip;

interface Reply {
  status: number;
  body: Record<string, unknown> & {
    error?: { code: string; param: string | null; message: string };
  };
}

let sim: OpenAISimulator;
let hub: TestHub;

before(async () => {
  sim = await startOpenAISimulator({ shutDown: OPENAI_SHUT_DOWN_MODELS });
  hub = await startTestHub({ OPENAI_API_KEY: sim.apiKey, OPENAI_BASE_URL: sim.baseURL });
});

after(async () => {
  await hub?.close();
  await sim?.close();
});

async function admin(
  target: TestHub,
  method: string,
  url: string,
  payload?: unknown,
): Promise<Reply> {
  const response = await target.app.inject({
    method: method as "GET",
    url,
    headers: { authorization: `Bearer ${target.adminKey}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  return { status: response.statusCode, body: response.json() };
}

async function generate(target: TestHub, body: Record<string, unknown>) {
  const response = await target.app.inject({
    method: "POST",
    url: "/v1/images/generations",
    headers: { authorization: `Bearer ${target.key}` },
    payload: { prompt: "a lighthouse at dawn", response_format: "b64_json", ...body },
  });
  return { status: response.statusCode, headers: response.headers, body: response.json() };
}

function lastUpstreamModel(): unknown {
  return sim.requests.filter((request) => request.path.startsWith("/v1/images")).at(-1)?.json
    ?.model;
}

describe("defining a model", () => {
  it("one call adds a model like gpt-image-2, and the very next request uses it", async () => {
    const created = await admin(hub, "POST", "/api/admin/models", {
      id: "team/poster",
      like: "gpt-image-2",
      upstream_model: "gpt-image-2",
      aliases: ["poster"],
      price: 0.05,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.id, "team/poster");
    assert.equal(created.body.provider, "openai");
    assert.equal(created.body.origin, "admin");
    assert.equal(created.body.status, "active");
    assert.deepEqual((created.body.sizes as { multiple_of: number }).multiple_of, 16);
    assert.deepEqual(created.body.warnings, []);

    const reply = await generate(hub, { model: "poster", size: "1536x864" });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.headers["x-image-hub-model"], "team/poster");
    assert.equal(lastUpstreamModel(), "gpt-image-2");

    const models = await hub.app.inject({
      method: "GET",
      url: "/api/models",
      headers: { authorization: `Bearer ${hub.key}` },
    });
    const listed = models.json().data.find((model: { id: string }) => model.id === "team/poster");
    assert.deepEqual(listed.pricing.per_image, [{ size: "*", quality: "*", usd: 0.05 }]);
    assert.equal(listed.status, "active");
  });

  it("an upstream model the provider does not list is allowed, with a warning", async () => {
    const created = await admin(hub, "POST", "/api/admin/models", {
      id: "gpt-image-9",
      like: "gpt-image-2",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(String((created.body.warnings as string[])[0]), /does not list 'gpt-image-9'/);
    // It copied gpt-image-2's price too.
    assert.ok((created.body.pricing as { per_image: unknown[] }).per_image.length > 4);
  });

  it("a model of its own capabilities, without like", async () => {
    const created = await admin(hub, "POST", "/api/admin/models", {
      id: "square-only",
      provider: "openai",
      upstream_model: "gpt-image-2",
      sizes: ["1024x1024", "2048x2048"],
      max_per_call: 2,
      qualities: ["low", "high"],
      prompt_max: 500,
      price: { per_image: [{ size: "*", quality: "*", usd: 0.1 }] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.default_size, "1024x1024");
    assert.equal(created.body.default_quality, "low");
    const tooLong = await generate(hub, { model: "square-only", prompt: "x".repeat(501) });
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.error.param, "prompt");
    const fanned = await generate(hub, { model: "square-only", n: 3, quality: "high" });
    assert.equal(fanned.status, 200, JSON.stringify(fanned.body));
    assert.equal(fanned.body.data.length, 3);
    const calls = sim.requests.filter((request) => request.json?.model === "gpt-image-2").slice(-2);
    assert.deepEqual(
      calls.map((request) => request.json?.n),
      [2, 1],
    );
  });

  const bad: [string, Record<string, unknown>, string][] = [
    ["an id in capitals", { id: "Big-Model", like: "gpt-image-2" }, "id"],
    [
      "no provider",
      { id: "nobody", upstream_model: "x", sizes: ["1024x1024"], price: 1 },
      "provider",
    ],
    ["no sizes", { id: "sizeless", provider: "openai", upstream_model: "x", price: 1 }, "sizes"],
    [
      "a default size it does not take",
      {
        id: "odd",
        provider: "openai",
        sizes: ["512x512", "768x768"],
        default_size: "1024x1024",
        price: 1,
      },
      "default_size",
    ],
    [
      "no price and no like",
      { id: "free-lunch", provider: "openai", sizes: ["1024x1024"] },
      "price",
    ],
    ["an unknown like", { id: "copycat", like: "dall-e-9" }, "like"],
    ["an unknown successor", { id: "heir", like: "gpt-image-2", successor: "nobody" }, "successor"],
    [
      "an alias that is taken",
      { id: "thief", like: "gpt-image-2", aliases: ["nano-banana"] },
      "aliases",
    ],
    [
      "a field the API does not have",
      { id: "typo", like: "gpt-image-2", max_per_cal: 3 },
      "max_per_cal",
    ],
    [
      "a bad date",
      { id: "dated", like: "gpt-image-2", shutdown_date: "2026-02-30" },
      "shutdown_date",
    ],
    [
      "a price for a size the model does not take",
      {
        id: "mispriced",
        like: "gpt-image-2",
        price: { per_image: [{ size: "256x256", quality: "*", usd: 1 }] },
      },
      "size",
    ],
    [
      "a ratio range upside down",
      {
        id: "flipped",
        provider: "openai",
        sizes: { multiple_of: 16, max_side: 2048, min_ratio: "3:1", max_ratio: "1:3" },
        price: 1,
      },
      "sizes.min_ratio",
    ],
  ];
  for (const [what, definition, param] of bad) {
    it(`refuses ${what} with a 400 naming '${param}'`, async () => {
      const reply = await admin(hub, "POST", "/api/admin/models", definition);
      assert.equal(reply.status, 400, JSON.stringify(reply.body));
      assert.equal(reply.body.error?.param, param, JSON.stringify(reply.body));
      const gone = await admin(
        hub,
        "GET",
        `/api/admin/models/${String(definition.id).toLowerCase()}`,
      );
      assert.equal(gone.status, 404, "nothing was stored");
    });
  }

  it("an id that exists is a 409, built-in or added", async () => {
    for (const id of ["gpt-image-2", "team/poster"]) {
      const reply = await admin(hub, "POST", "/api/admin/models", { id, like: "gpt-image-2" });
      assert.equal(reply.status, 409);
      assert.equal(reply.body.error?.code, "model_exists");
    }
  });
});

describe("changing and deleting", () => {
  it("PATCH merges the fields it names, on a built-in model too", async () => {
    const changed = await admin(hub, "PATCH", "/api/admin/models/gpt-image-2", {
      aliases: ["house-style"],
    });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.origin, "built-in, changed");
    assert.equal(changed.body.max_per_call, 10, "the other fields are kept");
    const reply = await generate(hub, { model: "house-style" });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["x-image-hub-model"], "gpt-image-2");
    const refused = await admin(hub, "PATCH", "/api/admin/models/gpt-image-2", { max_per_call: 0 });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error?.param, "max_per_call");
  });

  it("deleting an added model makes it 404 again", async () => {
    const deleted = await admin(hub, "DELETE", "/api/admin/models/gpt-image-9");
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.body, { id: "gpt-image-9", object: "catalog_model", deleted: true });
    const reply = await generate(hub, { model: "gpt-image-9" });
    assert.equal(reply.status, 404);
    assert.equal(reply.body.error.code, "model_not_found");
  });

  it("a built-in model is hidden by DELETE and defined anew by POST", async () => {
    const inUse = await admin(hub, "DELETE", "/api/admin/models/gpt-image-2");
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.error?.code, "model_in_use");
    assert.match(inUse.body.error?.message ?? "", /dall-e-2/);

    assert.equal((await admin(hub, "DELETE", "/api/admin/models/dall-e-2")).status, 200);
    const hidden = await generate(hub, { size: "1024x1024" });
    assert.equal(hidden.status, 404, "the default model is gone");
    const list = await admin(hub, "GET", "/api/admin/models");
    assert.equal(list.body.object, "list");
    assert.ok(!(list.body.data as { id: string }[]).some((model) => model.id === "dall-e-2"));

    const redefined = await admin(hub, "POST", "/api/admin/models", {
      id: "dall-e-2",
      like: "gpt-image-2",
      upstream_model: "gpt-image-2",
      description: "dall-e-2 requests, on gpt-image-2's terms",
    });
    assert.equal(redefined.status, 201, JSON.stringify(redefined.body));
    assert.equal(redefined.body.origin, "admin");
    const served = await generate(hub, { size: "1536x1024" });
    assert.equal(served.status, 200, JSON.stringify(served.body));
    assert.equal(served.headers["x-image-hub-model"], "dall-e-2");
  });

  it("what an admin defined survives a restart", async () => {
    await hub.restart();
    const poster = await admin(hub, "GET", "/api/admin/models/poster");
    assert.equal(poster.status, 200);
    assert.equal(poster.body.id, "team/poster");
    assert.equal((await admin(hub, "GET", "/api/admin/models/house-style")).body.id, "gpt-image-2");
  });
});

describe("several instances on one PostgreSQL", { skip: postgresSkip }, () => {
  let store: Awaited<ReturnType<typeof freshPostgresStore>>;
  let first: TestHub;
  let second: TestHub;

  before(async () => {
    store = await freshPostgresStore();
    const env = {
      OPENAI_API_KEY: sim.apiKey,
      OPENAI_BASE_URL: sim.baseURL,
      DATABASE_URL: store.databaseUrl,
    };
    first = await startTestHub(env);
    second = await startTestHub(env);
  });

  after(async () => {
    await first?.close();
    await second?.close();
    await store?.drop();
  });

  it("a model added on one instance serves the very next request on the other; deleted, it is 404 there", async () => {
    const created = await admin(first, "POST", "/api/admin/models", {
      id: "shared-model",
      like: "gpt-image-2",
      upstream_model: "gpt-image-2",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const reply = await generate(second, { model: "shared-model" });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.headers["x-image-hub-model"], "shared-model");

    assert.equal((await admin(first, "DELETE", "/api/admin/models/shared-model")).status, 200);
    let status = 0;
    for (let tries = 0; tries < 50; tries++) {
      status = (await generate(second, { model: "shared-model" })).status;
      if (status === 404) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(status, 404, "the other instance heard of the deletion");
  });
});
