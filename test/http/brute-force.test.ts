/**
 * Wrong API keys against a real hub: a flood of wrong keys from one address gets 429 with
 * Retry-After for its wrong keys, while valid client and admin keys from the same address are
 * served at once; requests with no key are plain 401s and never count. X-Forwarded-For counts
 * only with TRUST_PROXY, and then only the entry the proxy added. On SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { buildApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { backends, freshPostgresStore } from "../storage/db/backends.ts";

const MAX_FAILURES = 3;
const WINDOW_SECONDS = 60;
const SETTINGS = {
  AUTH_MAX_FAILURES: String(MAX_FAILURES),
  AUTH_FAILURE_WINDOW_SECONDS: String(WINDOW_SECONDS),
};
const WRONG_KEY = `sk-ih-000000000000-${"w".repeat(43)}`;

interface Sent {
  status: number;
  retryAfter: string | null;
  body: { error?: { code?: string; type?: string; message?: string } };
}

async function send(
  hub: TestHub,
  options: { key?: string | null; path?: string; forwardedFor?: string; method?: string } = {},
): Promise<Sent> {
  const headers: Record<string, string> = {};
  const key = options.key === undefined ? WRONG_KEY : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (options.forwardedFor) headers["x-forwarded-for"] = options.forwardedFor;
  const post = options.method === "POST";
  if (post) headers["content-type"] = "application/json";
  const response = await fetch(`${hub.url}${options.path ?? "/v1/models"}`, {
    method: options.method ?? "GET",
    headers,
    ...(post ? { body: JSON.stringify({ name: "made during a flood" }) } : {}),
  });
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    body: (await response.json()) as Sent["body"],
  };
}

/** Sends AUTH_MAX_FAILURES wrong keys (each a 401) from one address: the next are throttled. */
async function sendWrongKeys(hub: TestHub, forwardedFor?: string, path?: string) {
  for (let i = 0; i < MAX_FAILURES - 1; i += 1) {
    const key = [WRONG_KEY, "not-a-hub-key"][i % 2];
    const sent = await send(hub, { key, forwardedFor, path });
    assert.equal(sent.status, 401, `wrong key ${i + 1} is a plain 401`);
  }
  assertThrottled(await send(hub, { forwardedFor, path }));
}

function assertThrottled(sent: Sent, atMost = 60) {
  assert.equal(sent.status, 429, JSON.stringify(sent.body));
  assert.equal(sent.body.error?.code, "too_many_failed_auth");
  assert.equal(sent.body.error?.type, "rate_limit_error");
  assert.match(sent.body.error?.message ?? "", /valid key are served/);
  const retryAfter = Number(sent.retryAfter);
  assert.ok(
    Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= atMost,
    `Retry-After ${sent.retryAfter}`,
  );
}

const postgresSkip = backends.find((backend) => backend.name === "postgres")?.skip;

for (const backend of ["sqlite", "postgres"] as const) {
  describe(`a flood of wrong and missing keys from one address (${backend})`, {
    skip: backend === "postgres" ? postgresSkip : undefined,
  }, () => {
    let hub: TestHub;
    let store: Awaited<ReturnType<typeof freshPostgresStore>> | undefined;
    before(async () => {
      store = backend === "postgres" ? await freshPostgresStore() : undefined;
      // The defaults: 10 wrong keys a minute.
      hub = await startTestHub(store ? { DATABASE_URL: store.databaseUrl } : {});
    });
    after(async () => {
      await hub?.close();
      await store?.drop();
    });

    it("50 wrong keys and 50 without one, then valid client and admin keys are served at once", async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 50; i += 1) statuses.push((await send(hub)).status);
      for (let i = 0; i < 50; i += 1) {
        assert.equal(
          (await send(hub, { key: null })).status,
          401,
          "no key: a plain 401, never 429",
        );
      }
      assert.deepEqual(statuses.slice(0, 9), Array(9).fill(401), "the first wrong keys are 401s");
      assert.ok(
        statuses.slice(10).every((status) => status === 429),
        "the flood is throttled",
      );

      assert.equal((await send(hub, { key: hub.key })).status, 200);
      const created = await send(hub, {
        key: hub.adminKey,
        path: "/api/admin/keys",
        method: "POST",
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const generated = await fetch(`${hub.url}/v1/images/generations`, {
        method: "POST",
        headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "local/placeholder", prompt: "still served", size: "64x64" }),
      });
      assert.equal(generated.status, 200);
      assertThrottled(await send(hub), 60);
    });
  });
}

describe("wrong keys behind a trusted proxy (TRUST_PROXY=true)", () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub({ ...SETTINGS, TRUST_PROXY: "true" });
  });
  after(() => hub.close());

  it("throttles an address's wrong keys with 429 and Retry-After; its valid keys are served", async () => {
    const address = "203.0.113.10";
    await sendWrongKeys(hub, address);
    const sent = await send(hub, { forwardedFor: address });
    assertThrottled(sent, 2);
    assert.equal((await send(hub, { key: hub.key, forwardedFor: address })).status, 200);
    assert.equal(
      (await send(hub, { key: hub.adminKey, path: "/api/admin/keys", forwardedFor: address }))
        .status,
      200,
    );
  });

  it("leaves other addresses alone", async () => {
    await sendWrongKeys(hub, "203.0.113.11");
    assert.equal((await send(hub, { key: hub.key, forwardedFor: "203.0.113.12" })).status, 200);
    assert.equal((await send(hub, { key: WRONG_KEY, forwardedFor: "203.0.113.13" })).status, 401);
  });

  it("counts the address the proxy added, not entries the client put before it", async () => {
    for (let i = 0; i < MAX_FAILURES - 1; i += 1) {
      const sent = await send(hub, { forwardedFor: `198.51.100.${i}, 203.0.113.14` });
      assert.equal(sent.status, 401);
    }
    assertThrottled(await send(hub, { forwardedFor: "198.51.100.99, 203.0.113.14" }));
  });

  it("counts an IPv6 client per /64", async () => {
    await sendWrongKeys(hub, "2001:db8:aa:bb::1");
    assertThrottled(await send(hub, { forwardedFor: "2001:db8:aa:bb:ffff::2" }));
    assert.equal((await send(hub, { forwardedFor: "2001:db8:aa:bc::1" })).status, 401);
  });

  it("counts wrong keys on any endpoint together, admin ones included", async () => {
    const address = "203.0.113.16";
    assert.equal((await send(hub, { path: "/api/admin/keys", forwardedFor: address })).status, 401);
    assert.equal((await send(hub, { forwardedFor: address })).status, 401);
    assertThrottled(await send(hub, { path: "/api/admin/keys", forwardedFor: address }));
  });

  it("does not count a valid client key refused on an admin endpoint (403)", async () => {
    const address = "203.0.113.19";
    for (let i = 0; i < MAX_FAILURES + 2; i += 1) {
      const sent = await send(hub, {
        key: hub.key,
        path: "/api/admin/keys",
        forwardedFor: address,
      });
      assert.equal(sent.status, 403);
    }
    assert.equal((await send(hub, { forwardedFor: address })).status, 401);
  });

  // Last: it moves the hub's clock.
  it("a throttle is short, doubles while the flood goes on, at most a minute, and ends by itself", async () => {
    const address = "203.0.113.20";
    await sendWrongKeys(hub, address);
    const waits: number[] = [];
    for (let round = 0; round < 7; round += 1) {
      const sent = await send(hub, { forwardedFor: address });
      assert.equal(sent.status, 429);
      waits.push(Number(sent.retryAfter));
      // The flood goes on past the throttle: the next wrong key starts a longer one.
      hub.advanceClock(Number(sent.retryAfter) * 1000);
      for (let i = 0; i < MAX_FAILURES - 1; i += 1) await send(hub, { forwardedFor: address });
    }
    assert.deepEqual(waits.slice(0, 6), [2, 4, 8, 16, 32, 60]);
    assert.equal(waits[6], 60, "capped at a minute");
    // Quiet for a while: the throttle is over, and the next wrong key is a plain 401 again.
    hub.advanceClock(5 * 60_000);
    assert.equal((await send(hub, { forwardedFor: address })).status, 401);
  });
});

describe("wrong keys without TRUST_PROXY", () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub(SETTINGS);
  });
  after(() => hub.close());

  it("ignores X-Forwarded-For: a client cannot pick a fresh address per wrong key", async () => {
    for (let i = 0; i < MAX_FAILURES - 1; i += 1) {
      const sent = await send(hub, { forwardedFor: `198.51.100.${i}` });
      assert.equal(sent.status, 401);
    }
    assertThrottled(await send(hub, { forwardedFor: "198.51.100.200" }));
    assert.equal((await send(hub, { key: hub.key })).status, 200);
  });
});

describe("the throttle log line", () => {
  const lines: string[] = [];
  let dataDir: string;
  let app: Awaited<ReturnType<typeof buildApp>>["app"];
  const adminKey = "lockout-log-admin-key-0123456789";

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-lockout-"));
    const config = loadConfig({ ...SETTINGS, DATA_DIR: dataDir, ADMIN_KEY: adminKey });
    ({ app } = await buildApp(config, { logStream: { write: (line) => lines.push(line) } }));
    await app.ready();
  });
  after(async () => {
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("warns once per throttle, naming the address and never the keys tried", async () => {
    const tried = [
      `${adminKey}-guess-1`,
      `${adminKey}-guess-2`,
      `sk-ih-abcdef012345-${"g".repeat(43)}`,
    ];
    for (const key of [...tried, ...tried]) {
      await app.inject({
        method: "GET",
        url: "/api/admin/keys",
        headers: { authorization: `Bearer ${key}` },
        remoteAddress: "192.0.2.77",
      });
    }
    const warnings = lines
      .map((line) => JSON.parse(line) as { level: number; msg: string; clientAddress?: string })
      .filter((entry) => entry.level === 40 && entry.msg.includes("too many wrong API keys"));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.clientAddress, "192.0.2.77");
    const log = lines.join("");
    for (const key of tried) assert.ok(!log.includes(key), "no attempted key in the log");
    assert.ok(!log.includes(adminKey), "nothing that starts like the admin key either");
  });
});
