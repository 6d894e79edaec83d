/**
 * Credit, reservations and the ledger through the HTTP API, on SQLite and on PostgreSQL: no
 * overspend under concurrency, no provider call without credit, no charge without an image,
 * and a ledger that adds up to exactly what was charged, across a restart. A gone model's
 * successor is covered only once it is needed, and only if the credit covers it.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SEED_TOKEN_PRICES } from "../../src/billing/price-list.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";
import {
  backends,
  createSchema,
  dropSchema,
  freshSchemaName,
  postgresUrl,
} from "../storage/db/backends.ts";

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & {
    error?: { code: string; param: string | null; message?: string };
  };
}

/** dall-e-2 at 1024x1024 and dall-e-3 standard square, as the seed price list has them. */
const DALL_E_2_PRICE = 0.02;
const DALL_E_3_PRICE = 0.04;

for (const backend of backends) {
  describe(`billing through the API (${backend.name})`, { skip: backend.skip }, () => {
    let sim: OpenAISimulator;
    let hub: TestHub;
    const schemas: string[] = [];

    /** A hub on this backend (on PostgreSQL in a schema of its own) whose OpenAI is `upstream`. */
    async function hubCalling(upstream: OpenAISimulator): Promise<TestHub> {
      const env: Record<string, string> = {
        OPENAI_API_KEY: upstream.apiKey,
        OPENAI_BASE_URL: upstream.baseURL,
      };
      if (backend.name === "postgres") {
        const schema = freshSchemaName();
        schemas.push(schema);
        await createSchema(schema);
        const url = new URL(postgresUrl);
        url.searchParams.set("options", `-c search_path=${schema}`);
        env.DATABASE_URL = url.toString();
      }
      return startTestHub(env);
    }

    before(async () => {
      sim = await startOpenAISimulator();
      hub = await hubCalling(sim);
    });

    after(async () => {
      await hub?.close();
      await sim?.close();
      for (const schema of schemas) await dropSchema(schema);
    });

    /** Calls the shared hub, or the hub `on`. */
    async function call(
      path: string,
      options: { key?: string; body?: unknown; method?: string; on?: TestHub } = {},
    ): Promise<Reply> {
      const target = options.on ?? hub;
      const response = await fetch(`${target.url}${path}`, {
        method: options.method ?? (options.body === undefined ? "GET" : "POST"),
        headers: {
          authorization: `Bearer ${options.key ?? target.adminKey}`,
          ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
      return {
        status: response.status,
        headers: response.headers,
        body: (await response.json()) as Reply["body"],
      };
    }

    async function keyWith(
      fields: Record<string, unknown>,
      on?: TestHub,
    ): Promise<{ id: string; key: string }> {
      const created = await call("/api/admin/keys", { body: { name: "billing", ...fields }, on });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return { id: String(created.body.id), key: String(created.body.key) };
    }

    async function balanceOf(id: string, on?: TestHub): Promise<number> {
      const shown = await call(`/api/admin/keys/${id}`, { on });
      assert.equal(shown.status, 200);
      return Number(shown.body.balance);
    }

    async function ledgerOf(id: string, on?: TestHub) {
      const usage = await call(`/api/usage?key=${id}&limit=1000`, { on });
      assert.equal(usage.status, 200);
      return usage.body.data as Array<{
        cost: number;
        images: number;
        status: string;
        model: string;
        requested_model: string | null;
        error_code: string | null;
      }>;
    }

    const generate = (key: string, body: Record<string, unknown>, on?: TestHub) =>
      call("/api/images/generations", {
        key,
        body: { model: "dall-e-2", prompt: "a lighthouse", response_format: "b64_json", ...body },
        on,
      });

    const cents = (usd: number) => Math.round(usd * 1_000_000);

    /**
     * A hub of its own whose provider listed dall-e-2 at the start and has shut it down since:
     * the hub believes it alive, calls it, and is answered 404 model_not_found. (Once it has
     * learned that, it plans gpt-image-2 from the start, hence a hub per test.)
     */
    async function hubWhereDallE2IsGone() {
      const upstream = await startOpenAISimulator();
      const gone = await hubCalling(upstream);
      upstream.shutDown.add("dall-e-2");
      const imageCalls = () =>
        upstream.requests
          .filter(({ path }) => path.startsWith("/v1/images"))
          .map((request) => `${request.json?.model} ${request.reply?.status}`);
      return {
        hub: gone,
        upstream,
        imageCalls,
        async close() {
          await gone.close();
          await upstream.close();
        },
      };
    }

    it("50 parallel requests on credit for 10 images deliver 10 and never overdraw", async () => {
      const { id, key } = await keyWith({ balance: DALL_E_2_PRICE * 10 });
      const before = sim.requests.length;
      const replies = await Promise.all(Array.from({ length: 50 }, () => generate(key, {})));
      const ok = replies.filter((reply) => reply.status === 200);
      const refused = replies.filter((reply) => reply.status === 402);
      assert.equal(ok.length, 10);
      assert.equal(refused.length, 40);
      for (const reply of refused) assert.equal(reply.body.error?.code, "insufficient_quota");
      assert.equal(sim.requests.length - before, 10, "a refused request reaches no provider");
      assert.equal(await balanceOf(id), 0);
      const ledger = await ledgerOf(id);
      assert.equal(ledger.length, 50, "one record per request, refused ones too");
      assert.equal(
        cents(ledger.reduce((sum, row) => sum + row.cost, 0)),
        cents(DALL_E_2_PRICE * 10),
      );
      assert.equal(
        ledger.reduce((sum, row) => sum + row.images, 0),
        10,
      );
    });

    it("a gone model's successor is covered when it is needed: topped up, served, charged its price", async () => {
      const gone = await hubWhereDallE2IsGone();
      try {
        const { id, key } = await keyWith({ balance: 1 }, gone.hub);
        const reply = await generate(key, {}, gone.hub);
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        assert.equal(reply.headers.get("x-image-hub-model"), "gpt-image-2");
        assert.deepEqual(gone.imageCalls(), ["dall-e-2 404", "gpt-image-2 200"]);

        // gpt-image-2 bills tokens: what the simulator reported, at the seed token prices.
        const served = gone.upstream.requests.find(({ json }) => json?.model === "gpt-image-2");
        assert.ok(served?.reply, "gpt-image-2 was answered");
        const { usage } = served.reply.body as {
          usage: {
            input_tokens_details: { text_tokens: number; image_tokens: number };
            output_tokens: number;
          };
        };
        const price = SEED_TOKEN_PRICES.find((row) => row.model === "gpt-image-2");
        assert.ok(price);
        const expected = Math.round(
          usage.input_tokens_details.text_tokens * price.textInputPerMillion +
            usage.input_tokens_details.image_tokens * price.imageInputPerMillion +
            usage.output_tokens * price.outputPerMillion,
        );
        // Settled against dall-e-2's reservation, the charge would have been capped at it.
        assert.ok(expected > cents(DALL_E_2_PRICE), `${expected} is dearer than dall-e-2`);
        const ledger = await ledgerOf(id, gone.hub);
        assert.deepEqual(
          ledger.map((row) => [row.model, row.requested_model, row.status, cents(row.cost)]),
          [["gpt-image-2", "dall-e-2", "succeeded", expected]],
        );
        assert.equal(cents(await balanceOf(id, gone.hub)), cents(1) - expected, "the rest back");
      } finally {
        await gone.close();
      }
    });

    it("a gone model's successor the credit cannot cover is not called: 402, no charge", async () => {
      const gone = await hubWhereDallE2IsGone();
      try {
        const { id, key } = await keyWith({ balance: DALL_E_2_PRICE }, gone.hub);
        const reply = await generate(key, {}, gone.hub);
        assert.equal(reply.status, 402, JSON.stringify(reply.body));
        assert.equal(reply.body.error?.code, "insufficient_quota");
        assert.match(reply.body.error?.message ?? "", /dall-e-2 is no longer offered.*gpt-image-2/);
        assert.deepEqual(gone.imageCalls(), ["dall-e-2 404"], "the successor is not called");
        assert.equal(await balanceOf(id, gone.hub), DALL_E_2_PRICE, "nothing charged or held");
        const ledger = await ledgerOf(id, gone.hub);
        assert.deepEqual(
          ledger.map((row) => [row.status, row.error_code, row.cost]),
          [["failed", "insufficient_quota", 0]],
        );
      } finally {
        await gone.close();
      }
    });

    it("a request the credit cannot cover reaches no provider and changes nothing", async () => {
      const { id, key } = await keyWith({ balance: 0.01 });
      const before = sim.requests.length;
      const reply = await generate(key, { model: "dall-e-3" });
      assert.equal(reply.status, 402);
      assert.equal(reply.body.error?.code, "insufficient_quota");
      assert.equal(sim.requests.length, before);
      assert.equal(await balanceOf(id), 0.01);
    });

    it("charges only delivered images; the ledger adds up to what was charged", async () => {
      const start = 1;
      const { id, key } = await keyWith({ balance: start });
      // Two successes, one partial (the first of two dall-e-3 calls fails), two failures.
      assert.equal((await generate(key, {})).status, 200);
      assert.equal((await generate(key, { model: "dall-e-3", n: 1 })).status, 200);
      sim.failNext({ status: 500, body: { error: { message: "boom", type: "server_error" } } });
      const partial = await generate(key, { model: "dall-e-3", n: 2 });
      assert.equal(partial.status, 200);
      assert.equal((partial.body.data as unknown[]).length, 1);
      sim.failNext({ status: 500, body: { error: { message: "boom", type: "server_error" } } });
      assert.equal((await generate(key, {})).status, 502);
      assert.equal((await generate(key, { size: "999x999" })).status, 400);

      const charged = cents(DALL_E_2_PRICE + DALL_E_3_PRICE + DALL_E_3_PRICE);
      const left = await balanceOf(id);
      assert.equal(cents(start) - cents(left), charged);
      const ledger = await ledgerOf(id);
      assert.equal(cents(ledger.reduce((sum, row) => sum + row.cost, 0)), charged);
      assert.deepEqual(ledger.map((row) => row.status).sort(), [
        "failed",
        "failed",
        "partial",
        "succeeded",
        "succeeded",
      ]);
      for (const row of ledger.filter((entry) => entry.status === "failed")) {
        assert.equal(row.cost, 0, "no charge without an image");
      }
    });

    it("keeps keys, balances and the ledger across a restart", async () => {
      const { id, key } = await keyWith({ balance: 0.5 });
      assert.equal((await generate(key, {})).status, 200);
      const balance = await balanceOf(id);
      const ledger = await ledgerOf(id);
      await hub.restart();
      assert.equal(await balanceOf(id), balance);
      assert.deepEqual(await ledgerOf(id), ledger);
      assert.equal((await generate(key, {})).status, 200, "the key still works");
      assert.equal(cents(await balanceOf(id)), cents(balance - DALL_E_2_PRICE));
    });

    it("refuses models a key may not use, before any reservation", async () => {
      const { id, key } = await keyWith({ balance: 1, models: ["dall-e-3"] });
      const reply = await generate(key, { model: "dall-e-2" });
      assert.equal(reply.status, 403);
      assert.equal(reply.body.error?.code, "model_not_allowed");
      assert.equal(reply.body.error?.param, "model");
      assert.equal(await balanceOf(id), 1);
      assert.equal((await generate(key, { model: "openai/dall-e-3" })).status, 200);
    });

    it("limits requests per minute with 429 and Retry-After", async () => {
      const { key } = await keyWith({ rpm: 2 });
      assert.equal((await generate(key, {})).status, 200);
      assert.equal((await generate(key, {})).status, 200);
      const limited = await generate(key, {});
      assert.equal(limited.status, 429);
      assert.equal(limited.body.error?.code, "rate_limit_exceeded");
      assert.ok(Number(limited.headers.get("retry-after")) > 0);
    });

    it("a removed price: 400 model_not_priced for a key with a balance, before any upstream call; an unlimited key is served at no charge", async () => {
      const removed = await call("/api/admin/prices/image?model=dall-e-2&size=1024x1024", {
        method: "DELETE",
      });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assert.deepEqual(removed.body.unpriced, [{ size: "1024x1024", quality: "standard" }]);
      try {
        const { id, key } = await keyWith({ balance: 1 });
        const before = sim.requests.length;
        const refused = await generate(key, { size: "1024x1024" });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.equal(refused.body.error?.code, "model_not_priced");
        assert.equal(refused.body.error?.param, "model");
        const message = (refused.body.error as { message?: string } | undefined)?.message ?? "";
        assert.match(message, /'dall-e-2'.*size 1024x1024 and quality standard/);
        assert.match(message, /admin must set one/);
        assert.equal(sim.requests.length, before, "no upstream call");
        assert.equal(await balanceOf(id), 1, "nothing reserved or charged");
        assert.equal((await generate(key, { size: "512x512" })).status, 200, "other sizes serve");
        const [record] = (await ledgerOf(id)).filter((row) => row.status === "failed");
        assert.equal(record?.cost, 0);

        const unlimited = await keyWith({});
        const served = await generate(unlimited.key, { size: "1024x1024" });
        assert.equal(served.status, 200, JSON.stringify(served.body));
        assert.equal(sim.requests.length, before + 2);
        const ledger = await ledgerOf(unlimited.id);
        assert.deepEqual(
          ledger.map((row) => [row.status, row.images, row.cost]),
          [["succeeded", 1, 0]],
        );
      } finally {
        const restored = await call("/api/admin/prices/image", {
          method: "PUT",
          body: { model: "dall-e-2", size: "1024x1024", usd: DALL_E_2_PRICE },
        });
        assert.equal(restored.status, 200, JSON.stringify(restored.body));
      }
    });

    it("a price of 0 makes a model free for keys with a balance too", async () => {
      const free = await call("/api/admin/prices/image", {
        method: "PUT",
        body: { model: "dall-e-2", size: "256x256", usd: 0 },
      });
      assert.equal(free.status, 200, JSON.stringify(free.body));
      try {
        const { id, key } = await keyWith({ balance: 0 });
        assert.equal((await generate(key, { size: "256x256" })).status, 200);
        assert.equal(await balanceOf(id), 0);
        assert.equal((await generate(key, { size: "512x512" })).status, 402, "others still cost");
      } finally {
        await call("/api/admin/prices/image", {
          method: "PUT",
          body: { model: "dall-e-2", size: "256x256", usd: 0.016 },
        });
      }
    });

    it("shows prices in the model list", async () => {
      const models = await call("/api/models");
      const dalle3 = (models.body.data as Array<Record<string, unknown>>).find(
        (model) => model.id === "dall-e-3",
      );
      const pricing = dalle3?.pricing as { currency: string; per_image: Array<{ usd: number }> };
      assert.equal(pricing.currency, "USD");
      assert.ok(pricing.per_image.some((price) => price.usd === DALL_E_3_PRICE));
    });
  });
}
