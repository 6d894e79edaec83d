/**
 * The price routes of a real hub: writes held to the catalog (a size, quality or token price
 * the model could never be charged is refused, naming the field), a removal that says what it
 * left unpriced, and what an unpriced model means for keys with and without a balance.
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

/** A call as the admin, unless another key is given. */
function call(
  method: string,
  path: string,
  options: { key?: string; body?: unknown } = {},
): Promise<Reply> {
  return callHub(hub, method, path, { key: options.key ?? hub.adminKey, body: options.body });
}

function errorOf(reply: Reply, status: number, code: string) {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  const error = reply.body.error as { code: string; param: string | null; message: string };
  assert.equal(error.code, code);
  return error;
}

interface PriceEntry {
  model: string;
  per_image?: { size: string; quality: string; usd: number }[];
  unpriced: { size: string; quality: string | null }[];
}

async function pricesOf(model: string): Promise<PriceEntry> {
  const listed = await call("GET", "/api/admin/prices");
  assert.equal(listed.status, 200);
  const entry = (listed.body.data as PriceEntry[]).find((row) => row.model === model);
  assert.ok(entry, model);
  return entry;
}

const putImage = (body: Record<string, unknown>) =>
  call("PUT", "/api/admin/prices/image", { body });

describe("PUT /api/admin/prices/image", () => {
  it("refuses a size the model does not take, naming 'size', and stores nothing", async () => {
    const before = await pricesOf("dall-e-3");
    const error = errorOf(
      await putImage({ model: "dall-e-3", size: "512x512", usd: 0.01 }),
      400,
      "price_not_applicable",
    );
    assert.equal(error.param, "size");
    assert.match(error.message, /dall-e-3 does not take '512x512'/);
    assert.match(error.message, /Supported: 1024x1024, 1792x1024, 1024x1792/);
    for (const size of ["auto", "<=1024x1024", "1024"]) {
      const refused = await putImage({ model: "dall-e-3", size, usd: 0.01 });
      assert.equal(errorOf(refused, 400, "price_not_applicable").param, "size", size);
    }
    assert.deepEqual(await pricesOf("dall-e-3"), before);
  });

  it("refuses a quality the model does not have, naming 'quality'", async () => {
    const dallE3 = errorOf(
      await putImage({ model: "dall-e-3", size: "1024x1024", quality: "ultra", usd: 0.01 }),
      400,
      "price_not_applicable",
    );
    assert.equal(dallE3.param, "quality");
    assert.match(dallE3.message, /standard, hd/);
    const imagen = errorOf(
      await putImage({ model: "imagen-4.0-generate-001", quality: "hd", usd: 0.01 }),
      400,
      "price_not_applicable",
    );
    assert.equal(imagen.param, "quality");
  });

  it("takes the model's sizes and qualities, auto where it takes auto, pixel tiers, and *", async () => {
    const accepted: Record<string, unknown>[] = [
      { model: "gpt-image-1", size: "auto", quality: "auto", usd: 0.25 },
      { model: "gpt-image-2", size: "<=2048x2048", quality: "high", usd: 0.43 },
      { model: "gpt-image-2", size: "1280x720", quality: "low", usd: 0.01 },
      { model: "openai/dall-e-3", size: "1792x1024", quality: "hd", usd: 0.12 },
      { model: "imagen-4.0-generate-001", usd: 0.04 },
    ];
    for (const body of accepted) {
      const reply = await putImage(body);
      assert.equal(reply.status, 200, `${JSON.stringify(body)}: ${JSON.stringify(reply.body)}`);
    }
  });
});

describe("PUT /api/admin/prices/token", () => {
  const tokens = { text_input: 5, image_input: 10, output: 40 };

  it("refuses models whose upstream reports no token usage, naming 'model'", async () => {
    for (const model of ["local/placeholder", "imagen-4.0-generate-001", "dall-e-3"]) {
      const reply = await call("PUT", "/api/admin/prices/token", { body: { model, ...tokens } });
      const error = errorOf(reply, 400, "price_not_applicable");
      assert.equal(error.param, "model");
      assert.match(error.message, /billed per image/);
      assert.equal("per_million_tokens" in (await pricesOf(model)), false);
    }
  });

  it("takes GPT image and Gemini models, which report usage", async () => {
    for (const model of ["gpt-image-1", "gemini-2.5-flash-image"]) {
      const reply = await call("PUT", "/api/admin/prices/token", { body: { model, ...tokens } });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
    }
  });
});

describe("a model without a price", () => {
  const generate = (key: string) =>
    call("POST", "/api/images/generations", {
      key,
      body: { model: "local/placeholder", prompt: "a lighthouse", size: "64x64", n: 2 },
    });

  it("DELETE says what is left unpriced; GET lists it; keys with a balance are refused, unlimited ones served; usd 0 makes it free", async () => {
    const removed = await call(
      "DELETE",
      "/api/admin/prices/image?model=placeholder&size=*&quality=*",
    );
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    const unpriced = removed.body.unpriced as { size: string; quality: string | null }[];
    assert.ok(unpriced.some((gap) => gap.size === "1024x1024" && gap.quality === "standard"));
    assert.ok(unpriced.some((gap) => gap.size === "auto"));
    assert.deepEqual((await pricesOf("local/placeholder")).unpriced, unpriced);
    assert.deepEqual((await pricesOf("dall-e-3")).unpriced, []);

    const paying = await call("POST", "/api/admin/keys", { body: { name: "paying", balance: 1 } });
    const payingKey = String(paying.body.key);
    const refused = errorOf(await generate(payingKey), 400, "model_not_priced");
    assert.equal(refused.param, "model");
    assert.match(refused.message, /'local\/placeholder' has no price on this hub at size 64x64/);
    assert.equal((await call("GET", `/api/admin/keys/${paying.body.id}`)).body.balance, 1);

    const served = await generate(hub.key);
    assert.equal(served.status, 200, JSON.stringify(served.body));
    assert.equal((served.body.data as unknown[]).length, 2);

    const free = await putImage({ model: "local/placeholder", usd: 0 });
    assert.equal(free.status, 200, JSON.stringify(free.body));
    assert.deepEqual((await pricesOf("local/placeholder")).unpriced, []);
    assert.equal((await generate(payingKey)).status, 200);
    assert.equal((await call("GET", `/api/admin/keys/${paying.body.id}`)).body.balance, 1);
  });

  it("DELETE of a price that is not there is 404 price_not_found", async () => {
    errorOf(
      await call("DELETE", "/api/admin/prices/image?model=dall-e-3&size=1024x1792&quality=low"),
      404,
      "price_not_found",
    );
  });
});
