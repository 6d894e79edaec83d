/** The Redis link against a real server: prefix, options, and never hanging when Redis is gone. */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import {
  COMMAND_TIMEOUT_MS,
  defineScript,
  redisOptions,
  sharedOr,
} from "../../src/storage/redis.ts";
import {
  captureLog,
  cleanUp,
  connectTest,
  deadPort,
  keysUnder,
  openLink,
  REDIS_URL,
  startProxy,
  testPrefix,
} from "../helpers/redis.ts";

const prefix = testPrefix();
after(async () => {
  await cleanUp(prefix);
});

/** How long `work` takes, in ms, whether it resolves or rejects. */
async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work().catch(() => undefined);
  return performance.now() - started;
}

describe("Redis link", () => {
  it("puts every key, a script's included, under the prefix", async () => {
    const link = await connectTest(prefix);
    await link.redis.set("plain", "1");
    const bump = defineScript<number>(link, "testBump", "return redis.call('INCR', KEYS[1])");
    assert.equal(await bump(["scripted"], []), 1);
    assert.equal(await bump(["scripted"], []), 2, "the second call runs the script by its SHA");
    assert.deepEqual(await keysUnder(prefix), ["plain", "scripted"]);
    await link.close();
    assert.equal(link.ready(), false);
  });

  it("gives ioredis options that fail fast and never stop reconnecting", () => {
    const options = redisOptions("image-hub:");
    assert.equal(options.keyPrefix, "image-hub:");
    assert.equal(options.enableOfflineQueue, false);
    assert.equal(options.maxRetriesPerRequest, 0);
    assert.equal(options.autoResendUnfulfilledCommands, false);
    assert.ok((options.commandTimeout ?? 0) > 0 && (options.commandTimeout ?? 0) <= 500);
    assert.ok((options.connectTimeout ?? 0) <= 2_000);
    const delays = [1, 2, 10, 100, 10_000].map((attempt) => options.retryStrategy?.(attempt));
    assert.deepEqual(delays, [100, 200, 1000, 2000, 2000], "capped, and never gives up");
  });

  it("turns TLS on for rediss:// and reads the database number", async () => {
    const port = await deadPort();
    const secure = openLink({ url: `rediss://127.0.0.1:${port}/2`, keyPrefix: prefix });
    const plain = openLink({ url: `redis://127.0.0.1:${port}`, keyPrefix: prefix });
    assert.ok(secure.redis.options.tls, "rediss:// gives TLS");
    assert.equal(secure.redis.options.db, 2);
    assert.equal(plain.redis.options.tls, undefined, "redis:// stays plain");
  });

  it("opens a rediss:// connection with a TLS handshake", async () => {
    // No TLS server here: a bare TCP one shows what the client sends first.
    const first = new Promise<Buffer>((resolve) => {
      const server = createServer((socket) =>
        socket.once("data", (chunk) => {
          resolve(chunk);
          socket.destroy();
          server.close();
        }),
      );
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        openLink({ url: `rediss://127.0.0.1:${port}`, keyPrefix: prefix });
      });
    });
    const chunk = await first;
    assert.equal(chunk[0], 0x16, "a TLS handshake record");
    assert.equal(chunk[5], 0x01, "a ClientHello, not a Redis command");
  });

  it("starts with Redis down without throwing or waiting, and logs it once", async () => {
    const log = captureLog();
    const started = performance.now();
    const link = openLink({
      url: `redis://:secret-password@127.0.0.1:${await deadPort()}`,
      keyPrefix: prefix,
      log,
    });
    assert.ok(performance.now() - started < 50, "connectRedis returns at once");
    assert.equal(link.ready(), false);
    assert.ok((await timed(() => link.redis.get("x"))) < 50, "a command fails at once");
    await assert.rejects(link.redis.get("x"));
    assert.equal(await link.whenReady(1_500), false);
    // Several reconnect attempts have failed by now: still one line.
    assert.equal(log.lines.length, 1);
    assert.equal(log.lines[0]?.level, "warn");
    assert.doesNotMatch(JSON.stringify(log.lines), /secret-password/, "the URL is never logged");
  });

  it("fails fast while Redis is gone mid-run, and is back by itself when it returns", async () => {
    const proxy = await startProxy();
    const log = captureLog();
    const link = openLink({ url: proxy.url, keyPrefix: prefix, log });
    assert.equal(await link.whenReady(2_000), true);
    await proxy.down();
    await sleep(50);
    assert.equal(link.ready(), false);
    assert.ok((await timed(() => link.redis.get("x"))) < 100);
    const fellBack = await sharedOr(
      link,
      "test",
      () => link.redis.get("x"),
      () => "fallback",
    );
    assert.equal(fellBack, "fallback");
    await sleep(1_000); // a few reconnect attempts
    await proxy.up();
    assert.equal(await link.whenReady(5_000), true, "reconnected without help");
    assert.equal(await link.redis.set("after", "1"), "OK");
    assert.deepEqual(
      log.lines.map((line) => line.level),
      ["warn", "warn", "info"],
      "one line when lost, one for the fallback, one when back: none per retry",
    );
  });

  it("reconnects after the server closes the connection", async () => {
    const link = await connectTest(prefix);
    const raw = new Redis(REDIS_URL);
    const id = await link.redis.client("ID");
    await raw.client("KILL", "ID", String(id));
    raw.disconnect();
    await sleep(20);
    assert.equal(await link.whenReady(3_000), true);
    assert.equal(await link.redis.set("killed", "1"), "OK");
  });

  it("gives up on a server that stops answering within the command timeout", async () => {
    const proxy = await startProxy();
    const link = openLink({ url: proxy.url, keyPrefix: prefix });
    assert.equal(await link.whenReady(2_000), true);
    proxy.hang(true);
    const elapsed = await timed(() => link.redis.get("x"));
    assert.ok(elapsed >= COMMAND_TIMEOUT_MS - 20 && elapsed < 1_000, `took ${elapsed} ms`);
    // Through a feature: the first call waits the timeout, the next ones skip Redis for a while.
    const feature = () =>
      sharedOr(
        link,
        "test",
        () => link.redis.get("x"),
        () => "fallback",
      );
    assert.ok((await timed(feature)) < 1_000);
    assert.equal(link.ready(), false, "left alone after a timeout");
    assert.ok((await timed(feature)) < 20);
    proxy.hang(false);
    await sleep(1_000);
    assert.equal(link.ready(), true, "tried again a second later");
    assert.equal(await feature(), null, "answering again");
  });

  it("logs a feature's fallback at most once per 30 s", async () => {
    let now = 0;
    const log = captureLog();
    const link = openLink({ url: REDIS_URL, keyPrefix: prefix, log, clock: () => now });
    assert.equal(await link.whenReady(2_000), true);
    for (let i = 0; i < 10; i += 1) link.degraded("rate limits", new Error("down"));
    link.degraded("health", new Error("down"));
    now += 29_999;
    link.degraded("rate limits", new Error("down"));
    now += 1;
    link.degraded("rate limits", new Error("down"));
    assert.deepEqual(
      log.lines.map((line) => line.details.feature),
      ["rate limits", "health", "rate limits"],
    );
  });
});
