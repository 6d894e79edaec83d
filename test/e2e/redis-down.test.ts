/**
 * A hub whose Redis is down neither hangs nor refuses: it starts within seconds with REDIS_URL
 * pointing nowhere, serves, and holds a key's limits per instance; when Redis dies mid-run it
 * goes on the same way, and it counts in Redis again once Redis is back.
 */
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { type HubProcess, startHubProcess } from "../helpers/hub-process.ts";
import {
  cleanUp,
  deadPort,
  keysUnder,
  removeKeys,
  startProxy,
  testPrefix,
} from "../helpers/redis.ts";

const ADMIN_KEY = "redis-down-admin-key-0123456789";
const prefix = testPrefix();
const hubs: HubProcess[] = [];

after(async () => {
  await Promise.all(hubs.map((hub) => hub.stop("SIGTERM")));
  await cleanUp(prefix);
});

async function startHub(redisUrl: string): Promise<HubProcess> {
  const hub = await startHubProcess({
    DATA_DIR: await mkdtemp(path.join(tmpdir(), "image-hub-redis-down-")),
    ADMIN_KEY,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    MODEL_LIST_REFRESH_SECONDS: "0",
  });
  hubs.push(hub);
  return hub;
}

async function post(hub: HubProcess, route: string, key: string, body: unknown) {
  const started = Date.now();
  const response = await fetch(`${hub.url}${route}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    ms: Date.now() - started,
  };
}

const image = { model: "local/placeholder", prompt: "p", size: "64x64" };

describe("a hub whose Redis is down", () => {
  it("starts within seconds, serves, and limits per instance", async () => {
    const started = Date.now();
    const hub = await startHub(`redis://127.0.0.1:${await deadPort()}/0`);
    assert.ok(Date.now() - started < 8_000, `started in ${Date.now() - started} ms`);
    const key = (await post(hub, "/api/admin/keys", ADMIN_KEY, { name: "rpm-2", rpm: 2 })).body
      .key as string;
    const answers = [];
    for (let index = 0; index < 3; index++)
      answers.push(await post(hub, "/api/images/generations", key, image));
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [200, 200, 429],
    );
    assert.ok(
      answers.every((answer) => answer.ms < 2_000),
      "no request waits on Redis",
    );
  });

  it("goes on when Redis dies mid-run, and shares again once it is back", async () => {
    const proxy = await startProxy();
    const hub = await startHub(`${proxy.url}/0`);
    const key = (await post(hub, "/api/admin/keys", ADMIN_KEY, { name: "rpm-50", rpm: 50 })).body
      .key as string;
    assert.equal((await post(hub, "/api/images/generations", key, image)).status, 200);
    assert.ok(
      (await keysUnder(prefix)).some((name) => name.includes("rate:")),
      "counted in Redis",
    );
    await proxy.down();
    const during = await post(hub, "/api/images/generations", key, image);
    assert.equal(during.status, 200);
    assert.ok(during.ms < 2_000, `served in ${during.ms} ms with Redis down`);
    await proxy.up();
    // What was counted before is gone; a request counted now shows the link is back (it
    // reconnects by itself, its back-off at most 2 s).
    await removeKeys(prefix);
    const deadline = Date.now() + 10_000;
    for (;;) {
      assert.equal((await post(hub, "/api/images/generations", key, image)).status, 200);
      if ((await keysUnder(prefix)).some((name) => name.includes("rate:"))) break;
      assert.ok(Date.now() < deadline, "the hub did not count in Redis again");
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    await proxy.down();
  });
});
