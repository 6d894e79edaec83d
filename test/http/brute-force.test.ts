/**
 * Failed API keys against a real hub: an address that sent AUTH_MAX_FAILURES bad keys is
 * refused (429, Retry-After) before any key lookup, even with a valid key, until its failures
 * leave the window; other addresses go on; X-Forwarded-For counts only with TRUST_PROXY, and
 * then only the entry the proxy added.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { buildApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

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
  options: { key?: string | null; path?: string; forwardedFor?: string } = {},
): Promise<Sent> {
  const headers: Record<string, string> = {};
  const key = options.key === undefined ? WRONG_KEY : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (options.forwardedFor) headers["x-forwarded-for"] = options.forwardedFor;
  const response = await fetch(`${hub.url}${options.path ?? "/v1/models"}`, { headers });
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    body: (await response.json()) as Sent["body"],
  };
}

/** Sends AUTH_MAX_FAILURES requests with bad keys (each a 401) from one address. */
async function failUntilLocked(hub: TestHub, forwardedFor?: string, path?: string) {
  for (let i = 0; i < MAX_FAILURES; i += 1) {
    const key = [WRONG_KEY, null, "not-a-hub-key"][i % 3];
    const sent = await send(hub, { key, forwardedFor, path });
    assert.equal(sent.status, 401, `failure ${i + 1} is a plain 401`);
  }
}

function assertLockedOut(sent: Sent) {
  assert.equal(sent.status, 429);
  assert.equal(sent.body.error?.code, "too_many_failed_auth");
  assert.equal(sent.body.error?.type, "rate_limit_error");
  const retryAfter = Number(sent.retryAfter);
  assert.ok(
    Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= WINDOW_SECONDS,
    `Retry-After ${sent.retryAfter}`,
  );
}

describe("failed API keys behind a trusted proxy (TRUST_PROXY=true)", () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub({ ...SETTINGS, TRUST_PROXY: "true" });
  });
  after(() => hub.close());

  it("refuses an address after its failures with 429 and Retry-After, even with a valid key, without looking the key up", async () => {
    const address = "203.0.113.10";
    await failUntilLocked(hub, address);
    const findKey = hub.db.findKey;
    let lookups = 0;
    hub.db.findKey = (id) => {
      lookups += 1;
      return findKey.call(hub.db, id);
    };
    try {
      const sent = await send(hub, { key: hub.key, forwardedFor: address });
      assertLockedOut(sent);
      assert.equal(sent.retryAfter, String(WINDOW_SECONDS));
      assert.equal(lookups, 0, "a locked-out address costs no key lookup");
    } finally {
      hub.db.findKey = findKey;
    }
    assertLockedOut(await send(hub, { key: hub.adminKey, forwardedFor: address }));
  });

  it("leaves other addresses alone", async () => {
    await failUntilLocked(hub, "203.0.113.11");
    assert.equal((await send(hub, { key: hub.key, forwardedFor: "203.0.113.12" })).status, 200);
    assert.equal((await send(hub, { key: WRONG_KEY, forwardedFor: "203.0.113.13" })).status, 401);
  });

  it("counts the address the proxy added, not entries the client put before it", async () => {
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      const sent = await send(hub, { forwardedFor: `198.51.100.${i}, 203.0.113.14` });
      assert.equal(sent.status, 401);
    }
    assertLockedOut(await send(hub, { key: hub.key, forwardedFor: "198.51.100.99, 203.0.113.14" }));
  });

  it("counts an IPv6 client per /64", async () => {
    await failUntilLocked(hub, "2001:db8:aa:bb::1");
    assertLockedOut(await send(hub, { key: hub.key, forwardedFor: "2001:db8:aa:bb:ffff::2" }));
    assert.equal(
      (await send(hub, { key: hub.key, forwardedFor: "2001:db8:aa:bc::1" })).status,
      200,
    );
  });

  it("does not forget failures when the address then uses a valid key", async () => {
    const address = "203.0.113.15";
    for (let i = 0; i < MAX_FAILURES - 1; i += 1) {
      assert.equal((await send(hub, { forwardedFor: address })).status, 401);
    }
    assert.equal((await send(hub, { key: hub.key, forwardedFor: address })).status, 200);
    assert.equal((await send(hub, { forwardedFor: address })).status, 401);
    assertLockedOut(await send(hub, { key: hub.key, forwardedFor: address }));
  });

  it("protects the admin endpoints, and counts failures on any endpoint together", async () => {
    await failUntilLocked(hub, "203.0.113.16", "/api/admin/keys");
    assertLockedOut(
      await send(hub, { key: hub.adminKey, path: "/api/admin/keys", forwardedFor: "203.0.113.16" }),
    );
    await failUntilLocked(hub, "203.0.113.17", "/v1/models");
    assertLockedOut(
      await send(hub, { key: hub.adminKey, path: "/api/admin/keys", forwardedFor: "203.0.113.17" }),
    );
    assert.equal(
      (
        await send(hub, {
          key: hub.adminKey,
          path: "/api/admin/keys",
          forwardedFor: "203.0.113.18",
        })
      ).status,
      200,
    );
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
    assert.equal((await send(hub, { key: hub.key, forwardedFor: address })).status, 200);
  });

  // Last: it moves the hub's clock past every window.
  it("lets the address in again once its failures have left the window", async () => {
    const address = "203.0.113.20";
    await failUntilLocked(hub, address);
    assertLockedOut(await send(hub, { key: hub.key, forwardedFor: address }));
    hub.advanceClock((WINDOW_SECONDS - 1) * 1000);
    assertLockedOut(await send(hub, { key: hub.key, forwardedFor: address }));
    hub.advanceClock(1000);
    assert.equal((await send(hub, { key: hub.key, forwardedFor: address })).status, 200);
    assert.equal(
      (await send(hub, { key: hub.adminKey, path: "/api/admin/keys", forwardedFor: address }))
        .status,
      200,
    );
  });
});

describe("failed API keys without TRUST_PROXY", () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub(SETTINGS);
  });
  after(() => hub.close());

  it("ignores X-Forwarded-For: an attacker cannot pick a fresh address per guess", async () => {
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      const sent = await send(hub, { forwardedFor: `198.51.100.${i}` });
      assert.equal(sent.status, 401);
    }
    assertLockedOut(await send(hub, { key: hub.key, forwardedFor: "198.51.100.200" }));
    assertLockedOut(await send(hub, { key: hub.key }));
    hub.advanceClock(WINDOW_SECONDS * 1000);
    assert.equal((await send(hub, { key: hub.key })).status, 200);
  });
});

describe("the lockout log line", () => {
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

  it("warns once, naming the address and never the keys tried", async () => {
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
      .filter((entry) => entry.level === 40 && entry.msg.includes("locked out"));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.clientAddress, "192.0.2.77");
    const log = lines.join("");
    for (const key of tried) assert.ok(!log.includes(key), "no attempted key in the log");
    assert.ok(!log.includes(adminKey), "nothing that starts like the admin key either");
  });
});
