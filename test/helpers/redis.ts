/**
 * Tests against the real Redis at 127.0.0.1:6379 (REDIS_TEST_URL to change it): each run under
 * a prefix of its own, removed at the end with SCAN + DEL (never FLUSHDB: the server may be
 * shared). A TCP proxy in front of it lets a test take "Redis" down, bring it back, or make it
 * stop answering, without touching the real server.
 */
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { Redis } from "ioredis";
import { connectRedis, type RedisLink } from "../../src/storage/redis.ts";

export const REDIS_URL = process.env.REDIS_TEST_URL ?? "redis://127.0.0.1:6379";

export function testPrefix(): string {
  return `image-hub-test:${randomBytes(6).toString("hex")}:`;
}

export interface LogLine {
  level: "warn" | "info";
  details: Record<string, unknown>;
  message: string;
}

export function captureLog() {
  const lines: LogLine[] = [];
  return {
    lines,
    warn: (details: Record<string, unknown>, message: string) =>
      lines.push({ level: "warn", details, message }),
    info: (details: Record<string, unknown>, message: string) =>
      lines.push({ level: "info", details, message }),
  };
}

// Everything a test opens, closed by `cleanUp` even when the test failed half-way.
const opened: (() => Promise<unknown>)[] = [];

/** connectRedis, closed by `cleanUp`. */
export function openLink(options: Parameters<typeof connectRedis>[0]): RedisLink {
  const link = connectRedis(options);
  opened.push(() => link.close());
  return link;
}

/** Closes what the tests opened and deletes every key under `prefix`. */
export async function cleanUp(prefix: string): Promise<void> {
  // Last opened first: a link goes before the proxy it talks through.
  for (const close of opened.splice(0).reverse()) await close();
  await removeKeys(prefix);
}

/** A link to the real Redis, connected (throws if Redis is not there: the tests need it). */
export async function connectTest(prefix: string, url = REDIS_URL): Promise<RedisLink> {
  const link = openLink({ url, keyPrefix: prefix });
  if (!(await link.whenReady(3_000))) throw new Error(`no Redis at ${url}`);
  return link;
}

/** Deletes every key under `prefix`, and only those. */
export async function removeKeys(prefix: string): Promise<number> {
  const raw = new Redis(REDIS_URL);
  let removed = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) removed += await raw.del(...keys);
    } while (cursor !== "0");
  } finally {
    raw.disconnect();
  }
  return removed;
}

/** The keys under `prefix`, without it. */
export async function keysUnder(prefix: string): Promise<string[]> {
  const raw = new Redis(REDIS_URL);
  try {
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
      cursor = next;
      found.push(...keys.map((key) => key.slice(prefix.length)));
    } while (cursor !== "0");
    return found.sort();
  } finally {
    raw.disconnect();
  }
}

/** A loopback port where nothing listens. */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A TCP proxy to the real Redis: `down()` cuts every connection and stops listening, `up()`
 * listens again on the same port, `hang(true)` holds everything sent until `hang(false)`.
 */
export async function startProxy() {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  let hanging = false;
  let server: Server | undefined;
  let port = 0;

  async function up(): Promise<void> {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        socket.on("error", () => socket.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
      if (hanging) client.pause();
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    const listening = server;
    await new Promise<void>((resolve) => listening.listen(port, "127.0.0.1", resolve));
    port = (listening.address() as { port: number }).port;
  }

  await up();
  const proxy = {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    up,
    async down() {
      hanging = false;
      const closing = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      if (closing) await new Promise((resolve) => closing.close(resolve));
    },
    hang(on: boolean) {
      hanging = on;
      // Paused, not dropped: a stalled server answers later, in order, as TCP would deliver.
      for (const socket of sockets) {
        if (on) socket.pause();
        else socket.resume();
      }
    },
  };
  opened.push(() => proxy.down());
  return proxy;
}
