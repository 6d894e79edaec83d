/**
 * A hub killed with SIGKILL under load, then started again on the same data, on SQLite and on
 * PostgreSQL. Each worker of the load has a key of its own and sends its requests one after
 * another, so the ledger rows of a key, oldest first, line up with what that worker sent: every
 * reply a client received in full must have exactly one row, charged for what it delivered;
 * the one request a worker had in flight at the kill may have a row (it settled before the
 * kill) or none (its reservation is given back), never two. Balances must add up exactly to
 * credit minus charges once no reservation is open.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "pg";
import sharp from "sharp";
import { buildApp } from "../../src/app.ts";
import { issueKey } from "../../src/auth/issue.ts";
import { loadConfig } from "../../src/config.ts";
import { openDatabase } from "../../src/storage/db/open.ts";
import { callHub, type HubProcess, startHubProcess } from "../helpers/hub-process.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";
import {
  backends,
  createSchema,
  dropSchema,
  freshSchemaName,
  postgresUrl,
} from "../storage/db/backends.ts";

const ADMIN_KEY = "crash-test-admin-key";
const PRICE_USD = 0.01;
const CREDIT_USD = 1;
const WORKERS = 8;
/** Long enough that a wave of requests is surely upstream when the kill lands. */
const UPSTREAM_DELAY_MS = 300;

const micros = (usd: number) => Math.round(usd * 1_000_000);

interface Sent {
  n: number;
  format: "url" | "b64_json";
  /** The images of a complete 200; undefined when the hub died first. */
  images: Array<{ url?: string; b64_json?: string }> | undefined;
  status: number | "connection lost";
}

interface LedgerRow {
  id: string;
  status: string;
  images: number;
  images_requested: number;
  response_format: string;
  cost: number;
}

interface OpenReservation {
  id: string;
  key_id: string;
  /** A bigint column on PostgreSQL, read as text. */
  amount_micros: number | string;
}

for (const backend of backends) {
  describe(`a hub killed under load (${backend.name})`, { skip: backend.skip }, () => {
    let sim: OpenAISimulator;
    let dataDir: string;
    let schema: string | undefined;
    let env: Record<string, string>;
    let hub: HubProcess | undefined;

    before(async () => {
      sim = await startOpenAISimulator();
      sim.delayMs = UPSTREAM_DELAY_MS;
      dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-crash-"));
      env = {
        DATA_DIR: dataDir,
        ADMIN_KEY,
        OPENAI_API_KEY: sim.apiKey,
        OPENAI_BASE_URL: sim.baseURL,
      };
      if (backend.name === "postgres") {
        schema = freshSchemaName();
        await createSchema(schema);
        const url = new URL(postgresUrl);
        url.searchParams.set("options", `-c search_path=${schema}`);
        env.DATABASE_URL = url.toString();
      }
    });

    after(async () => {
      await hub?.stop("SIGKILL");
      await sim?.close();
      await rm(dataDir, { recursive: true, force: true });
      if (schema) await dropSchema(schema);
    });

    /** The reservations table, read beneath the hub (also while no hub runs). */
    async function openReservations(): Promise<OpenReservation[]> {
      if (backend.name === "sqlite") {
        const file = new DatabaseSync(path.join(dataDir, "image-hub.sqlite"));
        try {
          return file.prepare("SELECT id, key_id, amount_micros FROM reservations").all() as never;
        } finally {
          file.close();
        }
      }
      return withPostgres(async (client) => {
        return (await client.query("SELECT id, key_id, amount_micros FROM reservations")).rows;
      });
    }

    async function withPostgres<T>(work: (client: Client) => Promise<T>): Promise<T> {
      const client = new Client({ connectionString: postgresUrl });
      await client.connect();
      try {
        await client.query(`SET search_path TO ${schema}`);
        return await work(client);
      } finally {
        await client.end();
      }
    }

    it("gives back every open reservation, charges nothing twice and loses no delivered image", async () => {
      hub = await startHubProcess(env);
      // Restarts listen on the same port: the image URLs handed out name it.
      const port = hub.port;
      const price = await asAdmin(hub, "PUT", "/api/admin/prices/image", {
        model: "dall-e-2",
        size: "256x256",
        usd: PRICE_USD,
      });
      assert.equal(price.status, 200, JSON.stringify(price.body));
      const keys: Array<{ id: string; key: string }> = [];
      for (let index = 0; index < WORKERS; index++) {
        const created = await asAdmin(hub, "POST", "/api/admin/keys", {
          name: `worker ${index}`,
          balance: CREDIT_USD,
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        keys.push({ id: String(created.body.id), key: String(created.body.key) });
      }

      const load = keys.map((key, index) => runWorker(hub as HubProcess, key.key, index));
      const completed = () => load.reduce((sum, worker) => sum + worker.completed(), 0);
      const upstreamInFlight = () =>
        sim.requests.filter((request) => request.reply === undefined).length;
      for (let waited = 0; completed() < WORKERS * 1.5 || upstreamInFlight() < WORKERS / 2; ) {
        assert.ok(waited < 10_000, "the load never got half way through its second wave");
        await sleep(5);
        waited += 5;
      }
      await hub.stop("SIGKILL");
      const sent = await Promise.all(load.map((worker) => worker.done));

      const held = await openReservations();
      assert.ok(held.length >= WORKERS / 2, "the kill left reservations open (what is tested)");
      assert.ok(
        sent.some((requests) => requests.some((request) => request.status === "connection lost")),
        "some requests in flight were lost with the hub",
      );

      hub = await startHubProcess(env, { port });
      // The only hub: at start it releases every open reservation (on PostgreSQL too, because it
      // finds no other live hub; test/storage/db/live-hubs.test.ts covers the other case). On
      // PostgreSQL the killed hub's session may outlive it for a moment, so the new one may see
      // it live and find itself alone a little later: allow it the time it looks for.
      let open = await openReservations();
      for (let waited = 0; open.length > 0 && waited < 12_000; waited += 100) {
        await sleep(100);
        open = await openReservations();
      }
      assert.deepEqual(open, [], "no reservation is left open");
      await checkLedgers(hub, keys, sent, { held: [] });
      await checkImages(sent);
    });
  });
}

/** Each request a worker sent, with what came back, until the hub dies. */
function runWorker(hub: HubProcess, key: string, worker: number) {
  let completed = 0;
  const done = (async () => {
    // Out of step, so that the kill does not find every worker at the same point of a request.
    await sleep((worker * UPSTREAM_DELAY_MS) / WORKERS);
    const sent: Sent[] = [];
    for (let index = 0; ; index++) {
      const request: Sent = {
        n: 1 + ((worker + index) % 3),
        format: (worker + index) % 2 === 0 ? "url" : "b64_json",
        images: undefined,
        status: "connection lost",
      };
      sent.push(request);
      try {
        const response = await fetch(`${hub.url}/v1/images/generations`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({
            model: "dall-e-2",
            prompt: `worker ${worker}, request ${index}`,
            n: request.n,
            size: "256x256",
            response_format: request.format,
          }),
        });
        const body = (await response.json()) as { data?: Sent["images"] };
        request.status = response.status;
        if (response.status !== 200) return sent;
        request.images = body.data;
        completed += 1;
      } catch {
        // The hub is gone: a refused connection, or a reply cut short.
        return sent;
      }
    }
  })();
  return { done, completed: () => completed };
}

/**
 * Per key: the rows, oldest first, are the requests its worker sent, each complete reply with
 * exactly one row charged for what it delivered, then at most one row for the request the kill
 * cut; and the balance is the credit less the charges and what `held` still holds.
 */
async function checkLedgers(
  hub: HubProcess,
  keys: Array<{ id: string }>,
  sent: Sent[][],
  options: { held: OpenReservation[] },
) {
  const heldMicros = heldByKey(options.held);
  const heldIds = new Set(options.held.map((reservation) => reservation.id));
  const allIds = new Set<string>();
  for (const [index, key] of keys.entries()) {
    const requests = sent[index] ?? [];
    const usage = await asAdmin(hub, "GET", `/api/usage?key=${key.id}&limit=1000`);
    assert.equal(usage.status, 200);
    const rows = (usage.body.data as LedgerRow[]).toReversed();
    const delivered = requests.filter((request) => request.images !== undefined);
    assert.ok(
      rows.length === delivered.length || rows.length === delivered.length + 1,
      `worker ${index}: ${rows.length} rows for ${delivered.length} complete replies`,
    );
    for (const [position, row] of rows.entries()) {
      const request = requests[position];
      assert.ok(request, `worker ${index}: a row for a request never sent`);
      assert.ok(!allIds.has(row.id), "every row has an id of its own");
      allIds.add(row.id);
      // The reservation of a request has the id of its record: settled means no longer held.
      assert.ok(!heldIds.has(row.id), "a request with a ledger row holds no reservation");
      assert.equal(row.images_requested, request.n);
      assert.equal(row.response_format, request.format);
      assert.equal(micros(row.cost), micros(PRICE_USD) * row.images, "charged per image made");
      if (request.images !== undefined) {
        assert.equal(row.status, "succeeded");
        assert.equal(row.images, request.images.length, "charged for what the client got");
        assert.equal(request.images.length, request.n);
      }
    }
    const charged = rows.reduce((sum, row) => sum + micros(row.cost), 0);
    const shown = await asAdmin(hub, "GET", `/api/admin/keys/${key.id}`);
    assert.equal(
      micros(Number(shown.body.balance)) + (heldMicros.get(key.id) ?? 0),
      micros(CREDIT_USD) - charged,
      `worker ${index}: the balance adds up`,
    );
  }
}

/** What each key's open reservations hold, in micro-USD. */
function heldByKey(held: OpenReservation[]): Map<string, number> {
  const byKey = new Map<string, number>();
  for (const { key_id, amount_micros } of held) {
    byKey.set(key_id, (byKey.get(key_id) ?? 0) + Number(amount_micros));
  }
  return byKey;
}

/** Every image a client received is a real image; every hosted URL still serves it. */
async function checkImages(sent: Sent[][]) {
  for (const request of sent.flat()) {
    for (const image of request.images ?? []) {
      const bytes = image.url
        ? Buffer.from(await (await fetchOk(image.url)).arrayBuffer())
        : Buffer.from(image.b64_json ?? "", "base64");
      const { width, height } = await sharp(bytes).metadata();
      assert.deepEqual({ width, height }, { width: 256, height: 256 });
    }
  }
}

async function fetchOk(url: string): Promise<Response> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url} serves after the restart`);
  assert.equal(response.headers.get("content-type"), "image/png");
  return response;
}

/** A request to the hub as its admin. */
function asAdmin(hub: HubProcess, method: string, path: string, body?: unknown) {
  return callHub(hub, method, path, { key: ADMIN_KEY, body });
}

describe("recovery at start on SQLite", () => {
  // The SQLite file has one hub, so at start every open reservation is abandoned, whatever its
  // time: a clock stepped back after the crash must not keep one open for good.
  it("gives back a reservation stamped later than the restart's clock", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-clock-"));
    try {
      const now = Date.now();
      const db = await openDatabase({ dataDir, databaseUrl: undefined });
      const { id } = await issueKey(db, { name: "c", role: "client", balanceMicros: 50_000 });
      assert.ok(
        await db.reserve({ id: "r1", keyId: id, amountMicros: 20_000, createdAt: now + 60_000 }),
      );
      await db.close();

      const config = loadConfig({ DATA_DIR: dataDir, ADMIN_KEY, LOG_LEVEL: "silent" });
      const { app, db: restarted } = await buildApp(config, { logger: false, clock: () => now });
      try {
        assert.equal((await restarted.findKey(id))?.balanceMicros, 50_000);
      } finally {
        await app.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
