/**
 * The usage API on a small app of its own (error handling, authentication, the usage routes)
 * over an in-memory SQLite ledger: who sees what, filters, totals, paging, and the CSV export.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { issueKey } from "../../src/auth/issue.ts";
import { createAuthenticator } from "../../src/auth/principal.ts";
import { createAuthHooks } from "../../src/http/auth.ts";
import { registerErrorHandling } from "../../src/http/errors.ts";
import { csvField, readTime, registerUsageRoutes } from "../../src/http/usage.ts";
import { openSqliteDatabase } from "../../src/storage/db/sqlite.ts";
import type { Database, UsageRecord } from "../../src/storage/db/types.ts";
import { startTestHub } from "../helpers/hub.ts";

const ADMIN_KEY = "usage-test-admin-key";
const DAY1 = Date.UTC(2025, 2, 1, 10, 0, 0);
const DAY2 = Date.UTC(2025, 2, 2, 23, 59, 59);
const DAY3 = Date.UTC(2025, 2, 3, 0, 0, 1);

let app: FastifyInstance;
let db: Database;
let alice: { id: string; key: string };
let bob: { id: string; key: string };

function usage(overrides: Partial<UsageRecord> & Pick<UsageRecord, "id" | "keyId">): UsageRecord {
  return {
    model: "gpt-image-1",
    requestedModel: null,
    app: null,
    provider: "openai",
    imagesRequested: 2,
    imagesDelivered: 2,
    size: "1024x1024",
    quality: "low",
    responseFormat: "b64_json",
    status: "succeeded",
    errorCode: null,
    latencyMs: 1200,
    upstreamLatencyMs: 1100,
    costMicros: 22_000,
    inputTokens: 20,
    outputTokens: 544,
    createdAt: DAY1,
    ...overrides,
  };
}

before(async () => {
  db = openSqliteDatabase(":memory:");
  const issuedAlice = await issueKey(db, { name: "alice", role: "client" });
  const issuedBob = await issueKey(db, { name: "bob", role: "client" });
  alice = { id: issuedAlice.id, key: issuedAlice.key };
  bob = { id: issuedBob.id, key: issuedBob.key };
  const records = [
    usage({ id: "req-a1", keyId: alice.id, createdAt: DAY1 }),
    usage({
      id: "req-a2",
      keyId: alice.id,
      model: "dall-e-3",
      imagesRequested: 1,
      imagesDelivered: 1,
      size: "1792x1024",
      quality: "hd",
      costMicros: 120_000,
      inputTokens: null,
      outputTokens: null,
      createdAt: DAY2,
    }),
    usage({
      id: "req-a3",
      keyId: alice.id,
      status: "partial",
      imagesRequested: 4,
      imagesDelivered: 3,
      costMicros: 33_000,
      createdAt: DAY3,
    }),
    usage({
      id: "req-b1",
      keyId: bob.id,
      status: "failed",
      imagesDelivered: 0,
      costMicros: 0,
      errorCode: 'content_policy_violation, "quoted"\nsecond line',
      upstreamLatencyMs: null,
      createdAt: DAY2 - 1000,
    }),
  ];
  for (const record of records) await db.recordUsage(record);

  app = Fastify({ logger: false, ajv: { customOptions: { coerceTypes: false } } });
  registerErrorHandling(app);
  const auth = createAuthHooks(createAuthenticator({ db, adminKey: ADMIN_KEY }));
  registerUsageRoutes(app, { db, auth });
  await app.ready();
});

after(async () => {
  await app.close();
  await db.close();
});

async function get(url: string, key: string) {
  const response = await app.inject({
    method: "GET",
    url,
    headers: { authorization: `Bearer ${key}` },
  });
  return response;
}

interface UsageList {
  object: string;
  data: Array<Record<string, unknown>>;
  totals: {
    by_day: Array<{ date: string; requests: number; images: number; cost: number }>;
    by_model: Array<{ model: string; requests: number; images: number; cost: number }>;
  };
}

async function list(url: string, key: string): Promise<UsageList> {
  const response = await get(url, key);
  assert.equal(response.statusCode, 200, response.body);
  return response.json() as UsageList;
}

describe("GET /api/usage", () => {
  it("a client key sees only its own requests, newest first, in USD and unix seconds", async () => {
    const body = await list("/api/usage", alice.key);
    assert.equal(body.object, "list");
    assert.deepEqual(
      body.data.map((row) => row.id),
      ["req-a3", "req-a2", "req-a1"],
    );
    assert.deepEqual(body.data[2], {
      id: "req-a1",
      key_id: alice.id,
      model: "gpt-image-1",
      requested_model: null,
      app: null,
      provider: "openai",
      status: "succeeded",
      images: 2,
      images_requested: 2,
      size: "1024x1024",
      quality: "low",
      response_format: "b64_json",
      error_code: null,
      cost: 0.022,
      latency_ms: 1200,
      upstream_latency_ms: 1100,
      input_tokens: 20,
      output_tokens: 544,
      created_at: DAY1 / 1000,
    });
    assert.equal(body.data[0]?.images, 3, "images counts what was delivered");
    assert.equal(body.data[0]?.images_requested, 4);
  });

  it("totals per day (UTC) and per model cover the whole filter", async () => {
    const body = await list("/api/usage?limit=1", alice.key);
    assert.equal(body.data.length, 1);
    assert.deepEqual(body.totals.by_day, [
      { date: "2025-03-01", requests: 1, images: 2, cost: 0.022 },
      { date: "2025-03-02", requests: 1, images: 1, cost: 0.12 },
      { date: "2025-03-03", requests: 1, images: 3, cost: 0.033 },
    ]);
    assert.deepEqual(body.totals.by_model, [
      { model: "dall-e-3", requests: 1, images: 1, cost: 0.12 },
      { model: "gpt-image-1", requests: 2, images: 5, cost: 0.055 },
    ]);
  });

  it("a client key may name its own key but not another's (403)", async () => {
    const own = await list(`/api/usage?key=${alice.id}`, alice.key);
    assert.equal(own.data.length, 3);
    const other = await get(`/api/usage?key=${bob.id}`, alice.key);
    assert.equal(other.statusCode, 403);
    assert.equal(other.json().error.code, "permission_denied");
  });

  it("the admin sees everyone and may filter by key", async () => {
    const all = await list("/api/usage", ADMIN_KEY);
    assert.equal(all.data.length, 4);
    const bobs = await list(`/api/usage?key=${bob.id}`, ADMIN_KEY);
    assert.deepEqual(
      bobs.data.map((row) => row.id),
      ["req-b1"],
    );
  });

  it("filters by model, with aliases meaning their model", async () => {
    const byId = await list("/api/usage?model=dall-e-3", ADMIN_KEY);
    assert.deepEqual(
      byId.data.map((row) => row.id),
      ["req-a2"],
    );
    const byAlias = await list("/api/usage?model=openai/dall-e-3", ADMIN_KEY);
    assert.deepEqual(
      byAlias.data.map((row) => row.id),
      ["req-a2"],
    );
  });

  it("filters by time: ISO dates (a `to` date includes its day), ISO times, unix seconds", async () => {
    const ids = async (query: string) =>
      (await list(`/api/usage?${query}`, ADMIN_KEY)).data.map((row) => row.id);
    assert.deepEqual(await ids("from=2025-03-02&to=2025-03-02"), ["req-a2", "req-b1"]);
    assert.deepEqual(await ids("from=2025-03-03"), ["req-a3"]);
    assert.deepEqual(await ids("to=2025-03-01T23:00:00Z"), ["req-a1"]);
    assert.deepEqual(await ids(`from=${DAY2 / 1000}&to=${DAY3 / 1000}`), ["req-a2"]);
  });

  it("pages with limit and offset", async () => {
    const first = await list("/api/usage?limit=2", ADMIN_KEY);
    const second = await list("/api/usage?limit=2&offset=2", ADMIN_KEY);
    assert.deepEqual(
      [...first.data, ...second.data].map((row) => row.id),
      ["req-a3", "req-a2", "req-b1", "req-a1"],
    );
  });

  const invalid: Array<[string, string]> = [
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["limit=ten", "limit"],
    ["offset=-1", "offset"],
    ["from=yesterday", "from"],
    ["to=2025-13-45", "to"],
    ["to=2025-02-30", "to"],
    ["from=2025-03-02&to=2025-03-01T00:00:00Z", "to"],
  ];
  for (const [query, param] of invalid) {
    it(`answers 400 naming '${param}' for ${query}`, async () => {
      const response = await get(`/api/usage?${query}`, ADMIN_KEY);
      assert.equal(response.statusCode, 400, response.body);
      assert.equal(response.json().error.param, param);
    });
  }

  it("needs a key (401)", async () => {
    const response = await app.inject({ method: "GET", url: "/api/usage" });
    assert.equal(response.statusCode, 401);
  });
});

describe("GET /api/usage/export", () => {
  it("sends CSV with a header row, the same columns, six-decimal costs and escaped fields", async () => {
    const response = await get("/api/usage/export", ADMIN_KEY);
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers["content-type"]), /^text\/csv/);
    assert.equal(response.headers["content-disposition"], 'attachment; filename="usage.csv"');
    const rows = parseCsv(response.body);
    assert.deepEqual(rows[0], [
      "id",
      "key_id",
      "model",
      "requested_model",
      "app",
      "provider",
      "status",
      "images",
      "images_requested",
      "size",
      "quality",
      "response_format",
      "error_code",
      "cost",
      "latency_ms",
      "upstream_latency_ms",
      "input_tokens",
      "output_tokens",
      "created_at",
    ]);
    assert.equal(rows.length, 5);
    const byId = new Map(rows.slice(1).map((row) => [row[0], row]));
    assert.deepEqual(byId.get("req-a1"), [
      "req-a1",
      alice.id,
      "gpt-image-1",
      "",
      "",
      "openai",
      "succeeded",
      "2",
      "2",
      "1024x1024",
      "low",
      "b64_json",
      "",
      "0.022000",
      "1200",
      "1100",
      "20",
      "544",
      String(DAY1 / 1000),
    ]);
    const failed = byId.get("req-b1");
    const column = (name: string) => failed?.[rows[0]?.indexOf(name) ?? -1];
    assert.equal(column("error_code"), 'content_policy_violation, "quoted"\nsecond line');
    assert.equal(column("cost"), "0.000000");
    assert.equal(column("upstream_latency_ms"), "");
  });

  it("applies the same filters and holds a client to its own rows", async () => {
    const mine = parseCsv((await get("/api/usage/export?model=gpt-image-1", alice.key)).body);
    assert.deepEqual(
      mine.slice(1).map((row) => row[0]),
      ["req-a3", "req-a1"],
    );
    const limited = parseCsv((await get("/api/usage/export?limit=1", ADMIN_KEY)).body);
    assert.equal(limited.length, 2);
    const refused = await get(`/api/usage/export?key=${alice.id}`, bob.key);
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().error.code, "permission_denied");
  });

  it("exports more rows than one page", async () => {
    const many = openSqliteDatabase(":memory:");
    const { id } = await issueKey(many, { name: "busy", role: "client" });
    for (let i = 0; i < 2500; i += 1) {
      await many.recordUsage(usage({ id: `bulk-${i}`, keyId: id, createdAt: DAY1 + i }));
    }
    const bulk = Fastify({ logger: false });
    registerErrorHandling(bulk);
    registerUsageRoutes(bulk, {
      db: many,
      auth: createAuthHooks(createAuthenticator({ db: many, adminKey: ADMIN_KEY })),
    });
    const response = await bulk.inject({
      method: "GET",
      url: "/api/usage/export",
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    const rows = parseCsv(response.body);
    assert.equal(rows.length, 2501);
    assert.equal(new Set(rows.slice(1).map((row) => row[0])).size, 2500);
    await bulk.close();
    await many.close();
  });
});

describe("the model a client named, when another served it", () => {
  let named: Database;
  let namedApp: FastifyInstance;
  const KEY = "k-retired";

  before(async () => {
    named = openSqliteDatabase(":memory:");
    // dall-e-3 is retired and gpt-image-1 serves its requests: usage-1 asked for dall-e-3.
    const records = [
      usage({ id: "usage-1", keyId: KEY, requestedModel: "dall-e-3", costMicros: 40_000 }),
      usage({ id: "usage-2", keyId: KEY, model: "dall-e-3", costMicros: 80_000, createdAt: DAY2 }),
      usage({ id: "usage-3", keyId: KEY, costMicros: 11_000, createdAt: DAY3 }),
    ];
    for (const record of records) await named.recordUsage(record);
    namedApp = Fastify({ logger: false, ajv: { customOptions: { coerceTypes: false } } });
    registerErrorHandling(namedApp);
    const auth = createAuthHooks(createAuthenticator({ db: named, adminKey: ADMIN_KEY }));
    registerUsageRoutes(namedApp, { db: named, auth });
    await namedApp.ready();
  });

  after(async () => {
    await namedApp.close();
    await named.close();
  });

  const fetchAs = (url: string) =>
    namedApp.inject({ method: "GET", url, headers: { authorization: `Bearer ${ADMIN_KEY}` } });

  it("shows requested_model beside model, null when the named model served", async () => {
    const response = await fetchAs("/api/usage");
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json() as UsageList;
    assert.deepEqual(
      body.data.map((row) => [row.id, row.model, row.requested_model]),
      [
        ["usage-3", "gpt-image-1", null],
        ["usage-2", "dall-e-3", null],
        ["usage-1", "gpt-image-1", "dall-e-3"],
      ],
    );
  });

  it("the model filter finds what named it and what it served; totals stay by the serving model", async () => {
    for (const model of ["dall-e-3", "openai/dall-e-3"]) {
      const response = await fetchAs(`/api/usage?model=${encodeURIComponent(model)}`);
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as UsageList;
      assert.deepEqual(
        body.data.map((row) => row.id),
        ["usage-2", "usage-1"],
      );
      assert.deepEqual(body.totals.by_model, [
        { model: "dall-e-3", requests: 1, images: 2, cost: 0.08 },
        { model: "gpt-image-1", requests: 1, images: 2, cost: 0.04 },
      ]);
    }
    const served = (await fetchAs("/api/usage?model=gpt-image-1")).json() as UsageList;
    assert.deepEqual(
      served.data.map((row) => row.id),
      ["usage-3", "usage-1"],
    );
  });

  it("exports the column as CSV, empty when the named model served", async () => {
    const rows = parseCsv((await fetchAs("/api/usage/export?model=dall-e-3")).body);
    const column = rows[0]?.indexOf("requested_model") ?? -1;
    assert.equal(rows[0]?.[column - 1], "model");
    assert.deepEqual(
      rows.slice(1).map((row) => [row[0], row[column - 1], row[column]]),
      [
        ["usage-2", "dall-e-3", ""],
        ["usage-1", "gpt-image-1", "dall-e-3"],
      ],
    );
  });
});

describe("through a whole hub", () => {
  it("a generation leaves a row its key sees, with what was delivered", async () => {
    const hub = await startTestHub();
    try {
      const headers = { authorization: `Bearer ${hub.key}`, "content-type": "application/json" };
      const generated = await fetch(`${hub.url}/api/images/generations`, {
        method: "POST",
        headers,
        body: JSON.stringify({ model: "local/placeholder", prompt: "a fox", n: 2, size: "64x64" }),
      });
      assert.equal(generated.status, 200);
      const response = await fetch(`${hub.url}/api/usage`, { headers });
      assert.equal(response.status, 200);
      const body = (await response.json()) as UsageList;
      assert.equal(body.data.length, 1);
      assert.equal(body.data[0]?.status, "succeeded");
      assert.equal(body.data[0]?.images, 2);
      assert.equal(typeof body.data[0]?.cost, "number");
    } finally {
      await hub.close();
    }
  });
});

describe("helpers", () => {
  it("csvField quotes only what needs it", () => {
    assert.equal(csvField("plain"), "plain");
    assert.equal(csvField("a,b"), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField("line\r\nbreak"), '"line\r\nbreak"');
  });

  it("readTime reads dates, times and unix seconds", () => {
    assert.equal(readTime("2025-03-01", "from", "start"), Date.UTC(2025, 2, 1));
    assert.equal(readTime("2025-03-01", "to", "end"), Date.UTC(2025, 2, 2));
    assert.equal(readTime("2025-03-01T12:30:00Z", "to", "end"), Date.UTC(2025, 2, 1, 12, 30));
    assert.equal(readTime("1740787200", "from", "start"), 1_740_787_200_000);
  });
});

/** A strict RFC 4180 reader, so the test checks the escaping rather than trusting it. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (char === '"') {
        quoted = false;
      } else {
        field += char;
      }
    } else if (char === '"') {
      quoted = true;
    } else if (char === ",") {
      row.push(field);
      field = "";
    } else if (char === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i += 1;
    } else {
      field += char;
    }
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
