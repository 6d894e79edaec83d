/**
 * SIGTERM on the hub as a process. With requests in flight it refuses new connections at once,
 * answers the requests it has, writes what it buffers (their ledger rows, the keys' last-used
 * times, its log lines) and exits 0. When a request outlasts SHUTDOWN_GRACE_SECONDS, its
 * connection is cut, it records itself as failed and gives its reservation back before the
 * process exits 1: no credit stays held, on PostgreSQL either, where a start releases only
 * reservations an hour old.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { callHub, type HubProcess, startHubProcess } from "../helpers/hub-process.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";
import {
  backends,
  createSchema,
  dropSchema,
  freshSchemaName,
  postgresUrl,
} from "../storage/db/backends.ts";

const ADMIN_KEY = "shutdown-test-admin-key";
const CREDIT_USD = 1;
/** dall-e-2 at 256x256 as the seed price list has it. */
const PRICE_MICROS = 16_000;

const micros = (usd: number) => Math.round(usd * 1_000_000);

interface LedgerRow {
  status: string;
  images: number;
  error_code: string | null;
  cost: number;
}

for (const backend of backends) {
  describe(`SIGTERM (${backend.name})`, { skip: backend.skip, timeout: 20_000 }, () => {
    let sim: OpenAISimulator;
    const cleanups: Array<() => Promise<unknown>> = [];

    /** Starts a hub that `after` kills if the test left it running. */
    async function start(env: Record<string, string>, options: { port?: number } = {}) {
      const started = await startHubProcess(env, options);
      cleanups.unshift(() => started.stop("SIGKILL"));
      return started;
    }

    before(async () => {
      sim = await startOpenAISimulator();
    });

    after(async () => {
      for (const cleanup of cleanups) await cleanup();
      await sim?.close();
    });

    /** Settings for a hub on fresh data: a temporary DATA_DIR, and a fresh schema on PostgreSQL. */
    async function freshData(): Promise<Record<string, string>> {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-shutdown-"));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      const env: Record<string, string> = {
        DATA_DIR: dataDir,
        ADMIN_KEY,
        OPENAI_API_KEY: sim.apiKey,
        OPENAI_BASE_URL: sim.baseURL,
      };
      if (backend.name === "postgres") {
        const schema = freshSchemaName();
        await createSchema(schema);
        cleanups.push(() => dropSchema(schema));
        const url = new URL(postgresUrl);
        url.searchParams.set("options", `-c search_path=${schema}`);
        env.DATABASE_URL = url.toString();
      }
      return env;
    }

    // Once, on SQLite: what differs on PostgreSQL (a start that releases nothing young) matters
    // only to the cut requests of the next test.
    if (backend.name === "sqlite") {
      it("refuses new connections, finishes the requests in flight, flushes and exits 0", async () => {
        const env: Record<string, string> = { ...(await freshData()), LOG_LEVEL: "info" };
        let hub = await start(env);
        const port = hub.port;
        const { id, key } = await createKey(hub, CREDIT_USD);
        sim.delayMs = 1_500;
        const from = sim.requests.length;
        const asked = [
          { n: 1, response_format: "url" },
          { n: 2, response_format: "b64_json" },
          { n: 2, response_format: "url" },
          { n: 1, response_format: "b64_json" },
        ] as const;
        let answered = false;
        const inFlight = Promise.all(asked.map((body) => generate(hub, key, body)));
        inFlight.finally(() => {
          answered = true;
        });
        await untilUpstreamHas(sim, from + asked.length);

        hub.child.kill("SIGTERM");
        const refused = await untilRefused(port);
        assert.ok(!answered, "new connections are refused while the requests in flight run");
        // Refused, not answered 503: a load balancer's health check sees the hub gone at once.
        // (A connection accepted just before the listener closed, with no request yet, is reset.)
        assert.match(refused, /^(ECONNREFUSED|ECONNRESET)$/);

        const replies = await inFlight;
        for (const [index, reply] of replies.entries()) {
          assert.equal(reply.status, 200, `${reply.status}: ${JSON.stringify(reply.body)}`);
          assert.equal(reply.body.data?.length, asked[index]?.n);
        }
        const { code } = await hub.exited;
        assert.equal(code, 0, hub.output());
        assert.match(hub.output(), /"msg":"stopped"/, "the last log line was written");

        hub = await start(env, { port });
        const rows = await ledgerOf(hub, id);
        assert.equal(rows.length, asked.length, "a ledger row for each request answered");
        for (const row of rows) assert.equal(row.status, "succeeded");
        const images = rows.reduce((sum, row) => sum + row.images, 0);
        assert.equal(images, 6);
        const charged = rows.reduce((sum, row) => sum + micros(row.cost), 0);
        assert.equal(charged, PRICE_MICROS * images);
        const shown = await asAdmin(hub, "GET", `/api/admin/keys/${id}`);
        assert.equal(micros(Number(shown.body.balance)), micros(CREDIT_USD) - charged);
        assert.equal(typeof shown.body.last_used_at, "number", "last-used time written on close");
        for (const reply of replies) {
          for (const image of reply.body.data ?? []) {
            const bytes = image.url
              ? Buffer.from(await (await fetch(image.url)).arrayBuffer())
              : Buffer.from(image.b64_json ?? "", "base64");
            assert.equal((await sharp(bytes).metadata()).width, 256);
          }
        }
      });
    }

    it("cuts a request slower than the grace, settles it, and exits 1", async () => {
      const env: Record<string, string> = { ...(await freshData()), SHUTDOWN_GRACE_SECONDS: "1" };
      let hub = await start(env);
      const port = hub.port;
      const { id, key } = await createKey(hub, CREDIT_USD);
      sim.delayMs = 30_000;
      const from = sim.requests.length;
      const slow = [
        generate(hub, key, { n: 2, response_format: "url" }),
        generate(hub, key, { n: 1, response_format: "b64_json" }),
      ];
      await untilUpstreamHas(sim, from + slow.length);

      hub.child.kill("SIGTERM");
      for (const reply of await Promise.all(slow)) assert.equal(reply.status, "connection lost");
      const { code } = await hub.exited;
      assert.equal(code, 1, hub.output());
      for (const upstream of sim.requests.slice(from)) {
        assert.equal(upstream.reply, undefined, "the upstream calls were cancelled");
      }
      if (backend.name === "sqlite") {
        const file = new DatabaseSync(path.join(env.DATA_DIR ?? "", "image-hub.sqlite"));
        try {
          const open = file.prepare("SELECT id FROM reservations").all();
          assert.deepEqual(open, [], "settled before the exit, not left to the next start");
        } finally {
          file.close();
        }
      }

      // A failed row per cut request means each settled (the row and the reservation's end are
      // one transaction) before the process left.
      hub = await start(env, { port });
      const shown = await asAdmin(hub, "GET", `/api/admin/keys/${id}`);
      assert.equal(Number(shown.body.balance), CREDIT_USD);
      const rows = await ledgerOf(hub, id);
      assert.equal(rows.length, slow.length);
      for (const row of rows) {
        assert.equal(row.status, "failed");
        assert.equal(row.error_code, "server_shutting_down");
        assert.equal(row.cost, 0);
        assert.equal(row.images, 0);
      }
      sim.delayMs = 0;
    });
  });
}

async function createKey(hub: HubProcess, balance: number) {
  const created = await asAdmin(hub, "POST", "/api/admin/keys", { name: "shutdown", balance });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { id: String(created.body.id), key: String(created.body.key) };
}

async function generate(
  hub: HubProcess,
  key: string,
  body: { n: number; response_format: "url" | "b64_json" },
): Promise<{
  status: number | "connection lost";
  body: { data?: Array<{ url?: string; b64_json?: string }> };
}> {
  try {
    const response = await fetch(`${hub.url}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "dall-e-2", prompt: "last light", size: "256x256", ...body }),
    });
    return { status: response.status, body: (await response.json()) as never };
  } catch {
    return { status: "connection lost", body: {} };
  }
}

async function untilUpstreamHas(sim: OpenAISimulator, count: number): Promise<void> {
  for (let waited = 0; sim.requests.length < count; waited += 5) {
    assert.ok(waited < 10_000, "the requests never reached the upstream");
    await sleep(5);
  }
}

/**
 * Asks on a new connection each time until the hub stops answering 200; returns the error code
 * of the connection, or the status it got instead.
 */
async function untilRefused(port: number): Promise<string> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const outcome = await new Promise<string>((resolve) => {
      const request = http.get({ host: "127.0.0.1", port, path: "/healthz", agent: false });
      request.on("response", (response) => {
        response.resume();
        resolve(String(response.statusCode));
      });
      request.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    if (outcome !== "200") return outcome;
    await sleep(5);
  }
  return "still answering";
}

async function ledgerOf(hub: HubProcess, keyId: string): Promise<LedgerRow[]> {
  const usage = await asAdmin(hub, "GET", `/api/usage?key=${keyId}&limit=100`);
  assert.equal(usage.status, 200);
  return usage.body.data as LedgerRow[];
}

/** A request to the hub as its admin. */
function asAdmin(hub: HubProcess, method: string, path: string, body?: unknown) {
  return callHub(hub, method, path, { key: ADMIN_KEY, body });
}
