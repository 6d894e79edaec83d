/**
 * Three hub processes behind one address, as a load balancer runs them: one PostgreSQL schema,
 * one S3 bucket (s3rver on loopback), one Redis prefix, and a client that goes round them. A URL
 * one makes is served by the others; a key's rpm holds across all; a credential one saw refused
 * is skipped by the others at their next request; a model one adds is served by another; and
 * a hub killed under load leaves a ledger that still balances once the others see it is dead.
 */
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "pg";
import sharp from "sharp";
import { type HubProcess, startHubProcess } from "../helpers/hub-process.ts";
import { cleanUp, REDIS_URL, testPrefix } from "../helpers/redis.ts";
import {
  S3RVER_CREDENTIALS,
  startS3Server,
  TEST_REGION,
  type TestS3Server,
} from "../helpers/s3-server.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";
import {
  backends,
  createSchema,
  dropSchema,
  freshSchemaName,
  postgresUrl,
} from "../storage/db/backends.ts";

const ADMIN_KEY = "scale-out-admin-key-0123456789";
const skip = backends.find((backend) => backend.name === "postgres")?.skip;

let s3: TestS3Server;
let sim: OpenAISimulator;
let schema: string;
let databaseUrl: string;
const redisPrefix = testPrefix();
const hubs: HubProcess[] = [];
let turn = 0;
/** The next hub in turn, as a round-robin load balancer picks. */
const next = () => hubs[turn++ % hubs.length] as HubProcess;

async function call(
  hub: HubProcess,
  method: string,
  route: string,
  options: { key?: string; body?: unknown } = {},
) {
  const response = await fetch(`${hub.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${options.key ?? ADMIN_KEY}`,
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: (text ? JSON.parse(text) : {}) as Record<string, unknown> & {
      error?: { code: string; message: string };
    },
  };
}

async function sql<T = Record<string, unknown>>(query: string, values: unknown[] = []) {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query(query, values)).rows as T[];
  } finally {
    await client.end();
  }
}

before(async () => {
  if (skip) return;
  [s3, sim] = await Promise.all([startS3Server(), startOpenAISimulator()]);
  await s3.createBucket("shared");
  schema = freshSchemaName();
  await createSchema(schema);
  const url = new URL(postgresUrl);
  url.searchParams.set("options", `-c search_path=${schema}`);
  databaseUrl = url.toString();
  const env = {
    DATABASE_URL: databaseUrl,
    URL_SIGNING_SECRET: "scale-out-signing-secret-0123456789",
    ADMIN_KEY,
    BLOB_STORE_URL: "s3://shared/images",
    S3_FORCE_PATH_STYLE: "true",
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: TEST_REGION,
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    REDIS_URL,
    REDIS_KEY_PREFIX: redisPrefix,
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    MODEL_LIST_REFRESH_SECONDS: "0",
    INSTANCE_DEAD_AFTER_SECONDS: "3",
  };
  // One after the other: the first migrates the schema.
  for (let index = 0; index < 3; index++) {
    const dataDir = await mkdtemp(path.join(tmpdir(), `image-hub-scale-${index}-`));
    hubs.push(await startHubProcess({ ...env, DATA_DIR: dataDir }));
  }
});

after(async () => {
  await Promise.all(hubs.map((hub) => hub.stop("SIGTERM")));
  await Promise.all([s3?.close(), sim?.close()]);
  if (schema) await dropSchema(schema);
  await cleanUp(redisPrefix);
});

describe("three hubs behind one address", { skip }, () => {
  it("serve each other's image URLs", async () => {
    const made = await call(hubs[0] as HubProcess, "POST", "/api/images/generations", {
      body: { model: "local/placeholder", prompt: "shared", size: "300x200" },
    });
    assert.equal(made.status, 200);
    const url = (made.body.data as { url: string }[])[0]?.url as string;
    for (const hub of hubs) {
      const response = await fetch(url.replace(new URL(url).origin, hub.url));
      assert.equal(response.status, 200, hub.url);
      const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.deepEqual([meta.width, meta.height], [300, 200]);
    }
  });

  it("hold a key's rpm across all of them", async () => {
    const created = await call(next(), "POST", "/api/admin/keys", {
      body: { name: "rpm-4", rpm: 4 },
    });
    const key = created.body.key as string;
    const statuses: number[] = [];
    let refusal: Awaited<ReturnType<typeof call>> | undefined;
    for (let index = 0; index < 6; index++) {
      const answer = await call(next(), "POST", "/api/images/generations", {
        key,
        body: { model: "local/placeholder", prompt: `n${index}`, size: "64x64" },
      });
      statuses.push(answer.status);
      if (answer.status === 429) refusal ??= answer;
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
    assert.equal(refusal?.body.error?.code, "rate_limit_exceeded");
    const retryAfter = Number(refusal?.headers.get("retry-after"));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  });

  it("skip a credential another hub saw refused, at their very next request", async () => {
    sim.failNext({
      status: 401,
      body: { error: { message: "Incorrect API key provided", type: "invalid_request_error" } },
    });
    const first = await call(hubs[0] as HubProcess, "POST", "/api/images/generations", {
      body: { model: "gpt-image-2", prompt: "refused", size: "1024x1024" },
    });
    assert.notEqual(first.status, 200);
    const seen = sim.requests.length;
    for (const hub of hubs.slice(1)) {
      const answer = await call(hub, "POST", "/api/images/generations", {
        body: { model: "gpt-image-2", prompt: "not sent", size: "1024x1024" },
      });
      assert.notEqual(answer.status, 200, hub.url);
      assert.equal(answer.body.error?.code, "upstream_auth_failed", hub.url);
    }
    assert.equal(sim.requests.length, seen, "no other hub called with the refused key");
    const listed = await call(hubs[2] as HubProcess, "GET", "/api/admin/credentials");
    const openai = (listed.body.data as { provider: string; status: string }[]).find(
      (credential) => credential.provider === "openai",
    );
    assert.equal(openai?.status, "auth_failed");
    // An admin's word (on any hub) brings it back everywhere.
    const enabled = await call(
      hubs[1] as HubProcess,
      "PATCH",
      "/api/admin/credentials/env:openai",
      {
        body: { disabled: false },
      },
    );
    assert.equal(enabled.status, 200);
    const again = await call(hubs[2] as HubProcess, "POST", "/api/images/generations", {
      body: { model: "gpt-image-2", prompt: "works again", size: "1024x1024" },
    });
    assert.equal(again.status, 200);
  });

  it("serve a model another hub added a moment ago", async () => {
    const added = await call(hubs[0] as HubProcess, "POST", "/api/admin/models", {
      body: { id: "house-placeholder", like: "local/placeholder" },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const made = await call(hubs[1] as HubProcess, "POST", "/api/images/generations", {
      body: { model: "house-placeholder", prompt: "added elsewhere", size: "64x64" },
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    assert.equal(made.headers.get("x-image-hub-model"), "house-placeholder");
  });

  it("treat a retry on another hub as a retry: same images, charged once", async () => {
    const created = await call(next(), "POST", "/api/admin/keys", {
      body: { name: "retrying", balance: 5 },
    });
    const key = created.body.key as string;
    const send = (hub: HubProcess) =>
      fetch(`${hub.url}/api/images/generations`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${key}`,
          "content-type": "application/json",
          "idempotency-key": "retry-across-hubs-1",
        },
        body: JSON.stringify({ model: "gpt-image-2", prompt: "once", size: "1024x1024" }),
      });
    const first = await send(hubs[0] as HubProcess);
    assert.equal(first.status, 200);
    const firstBody = await first.text();
    // The answer is kept a moment after the reply; a retry that comes that soon waits for it.
    const retry = await send(hubs[1] as HubProcess);
    assert.equal(retry.status, 200);
    assert.match(retry.headers.get("x-image-hub-idempotency") ?? "", /replayed|joined/);
    assert.equal(await retry.text(), firstBody, "the same images");
    assert.equal(
      retry.headers.get("x-image-hub-record-id"),
      first.headers.get("x-image-hub-record-id"),
    );
    const rows = await sql("SELECT id FROM usage_records WHERE key_id = $1", [created.body.id]);
    assert.equal(rows.length, 1, "one request ran, one was charged");
  });

  it("keep the ledger balanced when one is killed under load", async () => {
    const created = await call(next(), "POST", "/api/admin/keys", {
      body: { name: "paying", balance: 10 },
    });
    const key = created.body.key as string;
    const keyId = created.body.id as string;
    const victim = hubs[2] as HubProcess;
    sim.delayMs = 4_000;
    const inFlight = Array.from({ length: 4 }, (_, index) =>
      fetch(`${victim.url}/api/images/generations`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-image-2", prompt: `p${index}`, size: "1024x1024" }),
      }).catch(() => undefined),
    );
    // Served meanwhile by a survivor, and charged.
    const served = call(hubs[0] as HubProcess, "POST", "/api/images/generations", {
      key,
      body: { model: "gpt-image-2", prompt: "survivor", size: "1024x1024" },
    });
    // Killed once all its four requests are in flight (reserved, waiting on the upstream).
    const started = Date.now();
    for (;;) {
      const open = await sql<{ count: string }>(
        "SELECT COUNT(*) AS count FROM reservations WHERE key_id = $1",
        [keyId],
      );
      if (Number(open[0]?.count) >= 5) break;
      assert.ok(Date.now() - started < 3_000, "the requests were not reserved in time");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    victim.child.kill("SIGKILL");
    await victim.exited;
    hubs.pop();
    await Promise.all(inFlight);
    assert.equal((await served).status, 200);
    sim.delayMs = 0;

    // Within a few beats of the survivors, the dead hub's reservations are given back.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const left = await sql<{ count: string }>("SELECT COUNT(*) AS count FROM reservations");
      if (Number(left[0]?.count) === 0) break;
      assert.ok(Date.now() < deadline, "the dead hub's reservations were not released");
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const rows = await sql<{ status: string; error_code: string | null; cost_micros: string }>(
      "SELECT status, error_code, cost_micros FROM usage_records WHERE key_id = $1",
      [keyId],
    );
    const lost = rows.filter((row) => row.error_code === "hub_instance_lost");
    assert.equal(lost.length, 4, "each killed request has its row");
    assert.ok(lost.every((row) => row.status === "failed" && Number(row.cost_micros) === 0));
    const charged = rows.reduce((sum, row) => sum + Number(row.cost_micros), 0);
    assert.ok(charged > 0, "the survivor's image was charged");
    const [balance] = await sql<{ balance_micros: string }>(
      "SELECT balance_micros FROM api_keys WHERE id = $1",
      [keyId],
    );
    assert.equal(Number(balance?.balance_micros) + charged, 10_000_000, "credit + charges = $10");
  });
});
