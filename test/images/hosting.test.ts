import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { HubError } from "../../src/errors.ts";
import {
  cacheControlFor,
  createImageHost,
  type HostedImage,
  type ImageHost,
  startSweeper,
} from "../../src/images/hosting.ts";
import { loadOrCreateSigningSecret } from "../../src/images/secret.ts";
import { createDiskBlobStore } from "../../src/storage/blobs/disk.ts";
import type { BlobStore } from "../../src/storage/blobs/types.ts";

const PUBLIC_URL = "https://hub.example.com";
const HOUR = 3_600_000;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** What the route does with a URL: take the name from the path and the two query values. */
function requestOf(url: string): { name: string; query: Record<string, string> } {
  const parsed = new URL(url);
  const prefix = "/files/images/";
  assert.ok(parsed.pathname.startsWith(prefix), parsed.pathname);
  return {
    name: parsed.pathname.slice(prefix.length),
    query: Object.fromEntries(parsed.searchParams),
  };
}

function resolveUrl(host: ImageHost, url: string) {
  const { name, query } = requestOf(url);
  return host.resolve(name, query);
}

function assertImage(result: HostedImage | HubError): HostedImage {
  if (result instanceof HubError)
    assert.fail(`expected an image, got ${result.status} ${result.code}`);
  return result;
}

function assertError(result: HostedImage | HubError, status: number, code: string): void {
  if (!(result instanceof HubError)) {
    result.stream.destroy();
    assert.fail(`expected ${status} ${code}, got an image`);
  }
  assert.equal(result.status, status);
  assert.equal(result.code, code);
}

describe("image hosting", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "image-hub-hosting-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function setup(publicUrl = PUBLIC_URL) {
    let now = Date.UTC(2025, 0, 1, 12, 0, 0, 250);
    const store = await createDiskBlobStore({ directory: await mkdtemp(join(root, "store-")) });
    const host = createImageHost({
      store,
      secret: randomBytes(32),
      publicUrl,
      clock: () => now,
    });
    return {
      store,
      host,
      now: () => now,
      advance(milliseconds: number) {
        now += milliseconds;
      },
    };
  }

  test("a saved image resolves through its URL with the same bytes", async () => {
    const { host, now } = await setup();
    const bytes = await sharp({
      create: { width: 6, height: 3, channels: 3, background: "#ff0000" },
    })
      .png()
      .toBuffer();
    const { url, expiresAt } = await host.save(bytes, "image/png");
    assert.ok(expiresAt >= now() + HOUR && expiresAt < now() + HOUR + 1000);
    assert.equal(expiresAt % 1000, 0);

    const image = assertImage(await resolveUrl(host, url));
    assert.equal(image.contentType, "image/png");
    assert.equal(image.size, bytes.length);
    assert.equal(image.expiresAt, expiresAt);
    const read = await readAll(image.stream);
    assert.deepEqual(read, bytes);
    assert.equal((await sharp(read).metadata()).width, 6);
  });

  test("the URL is absolute under the public URL and carries expiry and signature", async () => {
    const { host } = await setup("https://hub.example.com/base/");
    const { url, expiresAt } = await host.save(Buffer.from("jpeg"), "image/jpeg");
    assert.ok(url.startsWith("https://hub.example.com/base/files/images/"), url);
    const parsed = new URL(url);
    assert.match(parsed.pathname, /^\/base\/files\/images\/[A-Za-z0-9_-]{22}\.jpg$/);
    assert.equal(parsed.searchParams.get("expires"), String(expiresAt / 1000));
    assert.match(parsed.searchParams.get("signature") ?? "", /^[A-Za-z0-9_-]{43}$/);
    const webp = await host.save(Buffer.from("webp"), "image/webp");
    assert.match(webp.url, /\.webp\?/);
  });

  test("a tampered signature is refused with 403", async () => {
    const { host } = await setup();
    const { url } = await host.save(Buffer.from("x"), "image/png");
    const { name, query } = requestOf(url);
    const signature = query.signature ?? "";
    const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
    assertError(
      await host.resolve(name, { ...query, signature: flipped }),
      403,
      "invalid_signature",
    );
  });

  test("an extended expiry is refused with 403", async () => {
    const { host } = await setup();
    const { url } = await host.save(Buffer.from("x"), "image/png");
    const { name, query } = requestOf(url);
    const later = String(Number(query.expires) + 86_400);
    assertError(await host.resolve(name, { ...query, expires: later }), 403, "invalid_signature");
    // Same number, different text: the signature covers the text.
    assertError(
      await host.resolve(name, { ...query, expires: `0${query.expires}` }),
      403,
      "invalid_signature",
    );
  });

  test("another stored image's name with the first one's signature is refused with 403", async () => {
    const { host } = await setup();
    const first = requestOf((await host.save(Buffer.from("first"), "image/png")).url);
    const second = requestOf((await host.save(Buffer.from("second"), "image/png")).url);
    assertImage(await host.resolve(second.name, second.query)).stream.destroy();
    assertError(await host.resolve(second.name, first.query), 403, "invalid_signature");
    // Same id, another extension.
    const renamed = first.name.replace(/\.png$/, ".jpg");
    assertError(await host.resolve(renamed, first.query), 403, "invalid_signature");
  });

  test("a missing, repeated or garbage signature is a 403, never a throw", async () => {
    const { host } = await setup();
    const { url } = await host.save(Buffer.from("x"), "image/png");
    const { name, query } = requestOf(url);
    const odd: Array<Record<string, unknown>> = [
      {},
      { expires: query.expires },
      { signature: query.signature },
      { ...query, signature: "" },
      { ...query, signature: "abc" },
      { ...query, signature: "%%%%" },
      { ...query, signature: "é".repeat(43) },
      { ...query, signature: "\0".repeat(43) },
      { ...query, signature: `${query.signature}=` },
      { ...query, signature: "x".repeat(10_000) },
      { ...query, signature: [query.signature, query.signature] },
      { ...query, expires: [query.expires] },
      { ...query, expires: "" },
      { ...query, expires: "-1" },
      { ...query, expires: "1e12" },
      { ...query, expires: "9".repeat(40) },
    ];
    for (const bad of odd) {
      assertError(await host.resolve(name, bad), 403, "invalid_signature");
    }
    for (const badName of ["../../etc/passwd", "", "a/b.png", ".hidden"]) {
      assertError(await host.resolve(badName, query), 403, "invalid_signature");
    }
  });

  test("after an hour the URL answers 410, and 404 once swept", async () => {
    const { host, store, advance, now } = await setup();
    const { url, expiresAt } = await host.save(Buffer.from("x"), "image/png");
    advance(expiresAt - now() - 1);
    assertImage(await resolveUrl(host, url)).stream.destroy();
    advance(1);
    assertError(await resolveUrl(host, url), 410, "url_expired");
    advance(HOUR);
    assertError(await resolveUrl(host, url), 410, "url_expired");
    assert.equal(await store.sweep(now()), 1);
    assertError(await resolveUrl(host, url), 404, "image_not_found");
  });

  test("a validly signed URL whose image is gone answers 404", async () => {
    const { host, store } = await setup();
    const { url } = await host.save(Buffer.from("x"), "image/png");
    await store.delete(requestOf(url).name);
    assertError(await resolveUrl(host, url), 404, "image_not_found");
  });

  test("a URL signed with another secret is refused", async () => {
    const { host, store } = await setup();
    const other = createImageHost({ store, secret: randomBytes(32), publicUrl: PUBLIC_URL });
    const { url } = await other.save(Buffer.from("x"), "image/png");
    assertError(await resolveUrl(host, url), 403, "invalid_signature");
  });

  test("ids are unique across 1000 saves", async () => {
    const saved = new Map<string, number>();
    const store: BlobStore = {
      async put(key) {
        saved.set(key, (saved.get(key) ?? 0) + 1);
      },
      async open() {
        return undefined;
      },
      async delete() {},
      async sweep() {
        return 0;
      },
    };
    const host = createImageHost({ store, secret: randomBytes(32), publicUrl: PUBLIC_URL });
    const urls = new Set<string>();
    for (let index = 0; index < 1000; index += 1) {
      urls.add((await host.save(Buffer.from("x"), "image/png")).url);
    }
    assert.equal(saved.size, 1000);
    assert.equal(urls.size, 1000);
    for (const key of saved.keys()) assert.match(key, /^[A-Za-z0-9_-]{22}\.png$/);
  });

  test("bad options are refused", async () => {
    const { store } = await setup();
    const ok = { store, secret: randomBytes(32), publicUrl: PUBLIC_URL };
    assert.throws(() => createImageHost({ ...ok, secret: randomBytes(16) }), TypeError);
    assert.throws(() => createImageHost({ ...ok, publicUrl: "hub.example.com" }), TypeError);
    assert.throws(() => createImageHost({ ...ok, publicUrl: "ftp://hub.example.com" }), TypeError);
    assert.throws(() => createImageHost({ ...ok, publicUrl: `${PUBLIC_URL}/?a=1` }), TypeError);
    assert.throws(() => createImageHost({ ...ok, ttlSeconds: 0 }), TypeError);
    assert.throws(() => createImageHost({ ...ok, ttlSeconds: 1.5 }), TypeError);
    await assert.rejects(
      createImageHost(ok).save(Buffer.from("x"), "image/gif" as "image/png"),
      TypeError,
    );
  });

  test("ttlSeconds sets the lifetime", async () => {
    const { store } = await setup();
    const now = 1_700_000_000_000;
    const host = createImageHost({
      store,
      secret: randomBytes(32),
      publicUrl: PUBLIC_URL,
      ttlSeconds: 60,
      clock: () => now,
    });
    const { expiresAt } = await host.save(Buffer.from("x"), "image/png");
    assert.equal(expiresAt, now + 60_000);
  });
});

describe("image hosting: what reaches the store", () => {
  const secret = randomBytes(32);
  const now = Date.UTC(2025, 0, 1, 12);
  const future = String(now / 1000 + 600);

  /** A store over a real one that records every key asked of it. */
  async function spiedHost() {
    const root = await mkdtemp(join(tmpdir(), "image-hub-spied-"));
    const directory = join(root, "images");
    const real = await createDiskBlobStore({ directory });
    const opened: string[] = [];
    const store: BlobStore = {
      put: (key, bytes, meta) => real.put(key, bytes, meta),
      open: (key) => {
        opened.push(key);
        return real.open(key);
      },
      delete: (key) => real.delete(key),
      sweep: (time) => real.sweep(time),
    };
    const host = createImageHost({ store, secret, publicUrl: PUBLIC_URL, clock: () => now });
    return { host, opened, root, cleanup: () => rm(root, { recursive: true, force: true }) };
  }

  /** What the hub would sign for `name`: a leaked key, or a bug in what it signs. */
  function signedWithTheKey(name: string, expires = future) {
    const signature = createHmac("sha256", secret)
      .update(`image-hub/image-url/v1\n/files/images/${name}\n${expires}`)
      .digest("base64url");
    return { expires, signature };
  }

  test("forged and tampered URLs never reach the store", async () => {
    const { host, opened, cleanup } = await spiedHost();
    try {
      const { url } = await host.save(Buffer.from("x"), "image/png");
      const { name, query } = requestOf(url);
      const otherKey = createHmac("sha256", randomBytes(32))
        .update(`image-hub/image-url/v1\n/files/images/${name}\n${query.expires}`)
        .digest("base64url");
      for (const [label, candidateName, candidateQuery] of [
        ["no signature", name, { expires: query.expires }],
        ["garbage signature", name, { ...query, signature: "garbage" }],
        ["another key's signature", name, { ...query, signature: otherKey }],
        ["tampered id", `B${name.slice(1)}`, query],
        ["tampered extension", name.replace(".png", ".jpg"), query],
        ["tampered expiry", name, { ...query, expires: String(Number(query.expires) + 1) }],
      ] as const) {
        assertError(await host.resolve(candidateName, candidateQuery), 403, "invalid_signature");
        assert.deepEqual(opened, [], label);
      }
    } finally {
      await cleanup();
    }
  });

  test("names that are not image ids never reach the store, even signed with the key", async () => {
    const { host, opened, cleanup } = await spiedHost();
    const id = "A".repeat(22);
    try {
      for (const name of [
        `../${id}.png`,
        `..\\${id}.png`,
        `/etc/passwd`,
        `/${id}.png`,
        `a/${id}.png`,
        `${id}.png\0`,
        `${id}\0.png`,
        `%2e%2e%2f${id}.png`,
        `${id}.png/..`,
        `${id}.png.png`,
        `${id}.PNG`,
        `${id}.svg`,
        `${id}.html`,
        `${id}.sqlite`,
        `${id}`,
        `.png`,
        `.${id}.png`,
        `${id}A.png`,
        `${"A".repeat(21)}.png`,
        `${"A".repeat(10_000)}.png`,
        `${"A".repeat(21)}\u00c5.png`,
        "..",
        ".",
        "",
      ]) {
        assertError(await host.resolve(name, signedWithTheKey(name)), 404, "image_not_found");
      }
      assert.deepEqual(opened, []);
    } finally {
      await cleanup();
    }
  });

  test("a file outside the store with an image's name is never served", async () => {
    const { host, root, cleanup } = await spiedHost();
    const id = "C".repeat(22);
    try {
      // Beside the store, where `../<id>.png` would lead if the name were used as a path.
      await writeFile(join(root, `${id}.png`), "canary");
      for (const name of [`../${id}.png`, join(root, `${id}.png`)]) {
        assertError(await host.resolve(name, signedWithTheKey(name)), 404, "image_not_found");
      }
    } finally {
      await cleanup();
    }
  });

  test("a validly signed URL past its expiry answers 410 while its image is still stored", async () => {
    const { host, cleanup } = await spiedHost();
    try {
      const { url } = await host.save(Buffer.from("x"), "image/png");
      const { name } = requestOf(url);
      for (const expires of ["0", String(now / 1000), String(now / 1000 - 1)]) {
        assertError(await host.resolve(name, signedWithTheKey(name, expires)), 410, "url_expired");
      }
      const image = assertImage(await host.resolve(name, signedWithTheKey(name)));
      assert.deepEqual(await readAll(image.stream), Buffer.from("x"));
    } finally {
      await cleanup();
    }
  });
});

describe("cacheControlFor", () => {
  test("is private and immutable with the whole seconds left", () => {
    assert.equal(cacheControlFor(10_000 + HOUR, 10_000), "private, max-age=3600, immutable");
    assert.equal(cacheControlFor(10_000, 8_001), "private, max-age=1, immutable");
    assert.equal(cacheControlFor(10_000, 9_500), "private, max-age=0, immutable");
    assert.equal(cacheControlFor(10_000, 20_000), "private, max-age=0, immutable");
  });
});

describe("startSweeper", () => {
  async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!(await condition())) {
      if (Date.now() > deadline) assert.fail("timed out waiting for the sweeper");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  function recordingLog() {
    const entries: Array<{ level: string; details: object; message: string }> = [];
    return {
      entries,
      info: (details: object, message: string) => entries.push({ level: "info", details, message }),
      warn: (details: object, message: string) => entries.push({ level: "warn", details, message }),
    };
  }

  function fakeStore(sweep: (now: number) => Promise<number>): BlobStore {
    return {
      async put() {},
      async open() {
        return undefined;
      },
      async delete() {},
      sweep,
    };
  }

  test("sweeps at once and then every interval with the clock's time, until stopped", async () => {
    const times: number[] = [];
    const log = recordingLog();
    const stop = startSweeper({
      store: fakeStore(async (now) => {
        times.push(now);
        return 2;
      }),
      intervalMs: 10,
      clock: () => 42,
      log,
    });
    await until(() => times.length >= 3);
    await stop();
    const count = times.length;
    assert.ok(count >= 3, `swept ${count} times`);
    assert.ok(times.every((time) => time === 42));
    assert.deepEqual(log.entries[0], {
      level: "info",
      details: { deleted: 2 },
      message: "Swept expired hosted images",
    });
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.equal(times.length, count);
  });

  test("never overlaps sweeps, logs failures and keeps going, and stop waits", async () => {
    let active = 0;
    let overlapped = false;
    let calls = 0;
    let finished = 0;
    const log = recordingLog();
    const stop = startSweeper({
      store: fakeStore(async () => {
        calls += 1;
        active += 1;
        if (active > 1) overlapped = true;
        await new Promise((resolve) => setTimeout(resolve, 15));
        active -= 1;
        finished += 1;
        if (calls === 1) throw new Error("disk on fire");
        return 0;
      }),
      intervalMs: 1,
      log,
    });
    await until(() => calls >= 3);
    await stop();
    assert.equal(overlapped, false);
    assert.equal(finished, calls);
    assert.ok(calls >= 2, `swept ${calls} times`);
    assert.equal(log.entries[0]?.level, "warn");
    assert.equal(log.entries.filter((entry) => entry.level === "info").length, 0);
  });

  test("with a real store, removes what expired", async () => {
    const directory = await mkdtemp(join(tmpdir(), "image-hub-sweeper-"));
    try {
      const store = await createDiskBlobStore({ directory });
      await store.put("old.png", Buffer.from("x"), { contentType: "image/png", expiresAt: 1 });
      await store.put("new.png", Buffer.from("x"), {
        contentType: "image/png",
        expiresAt: Date.now() + HOUR,
      });
      const stop = startSweeper({ store, intervalMs: 60_000, log: recordingLog() });
      await until(async () => (await readdir(directory)).length === 1);
      await stop();
      assert.deepEqual(await readdir(directory), ["new.png"]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe("loadOrCreateSigningSecret", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "image-hub-secret-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test("creates a 32-byte key with mode 0600 once and reads it back after", async () => {
    const dataDir = join(root, "first", "data");
    const secret = await loadOrCreateSigningSecret(dataDir);
    assert.equal(secret.length, 32);
    const file = join(dataDir, "url-signing.key");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await loadOrCreateSigningSecret(dataDir), secret);
    assert.equal((await readFile(file, "utf8")).trim(), secret.toString("base64url"));
    assert.deepEqual(await readdir(dataDir), ["url-signing.key"]);
  });

  test("concurrent first starts agree on one key", async () => {
    const dataDir = join(root, "race");
    const secrets = await Promise.all(
      Array.from({ length: 20 }, () => loadOrCreateSigningSecret(dataDir)),
    );
    for (const secret of secrets) assert.deepEqual(secret, secrets[0]);
    assert.deepEqual(await readdir(dataDir), ["url-signing.key"]);
  });

  test("a file that is not a key is an error and is left in place", async () => {
    const dataDir = join(root, "garbage");
    await loadOrCreateSigningSecret(dataDir);
    const file = join(dataDir, "url-signing.key");
    for (const content of ["short\n", "not base64 at all!\n", ""]) {
      await writeFile(file, content);
      await assert.rejects(loadOrCreateSigningSecret(dataDir), /does not hold a URL signing key/);
      assert.equal(await readFile(file, "utf8"), content);
    }
  });
});
