import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createDiskBlobStore, STRAY_TEMPORARY_AGE_MS } from "../../../src/storage/blobs/disk.ts";
import type { BlobStore } from "../../../src/storage/blobs/types.ts";
import { assertContentTypesKept, assertImageRoundTrip, HOUR, png, readAll } from "./contract.ts";

describe("disk blob store", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "image-hub-blobs-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function freshStore(): Promise<{ store: BlobStore; directory: string }> {
    const directory = await mkdtemp(join(root, "store-"));
    return { store: await createDiskBlobStore({ directory }), directory };
  }

  test("creates a missing directory", async () => {
    const directory = join(root, "nested", "images");
    await createDiskBlobStore({ directory });
    assert.ok((await stat(directory)).isDirectory());
  });

  test("put then open returns the same PNG with its content type, size and expiry", async () => {
    const { store } = await freshStore();
    await assertImageRoundTrip(store);
  });

  test("content type follows the extension, and a contradicting one is refused", async () => {
    const { store } = await freshStore();
    await assertContentTypesKept(store);
    const meta = { expiresAt: Date.now() + HOUR };
    await assert.rejects(
      store.put("d.png", Buffer.from("x"), { ...meta, contentType: "image/jpeg" }),
      TypeError,
    );
    assert.equal(await store.open("d.png"), undefined);
  });

  test("open of a key never stored is undefined", async () => {
    const { store } = await freshStore();
    assert.equal(await store.open("missing.png"), undefined);
  });

  test("a write leaves no temporary file and never shows a partial file under the key", async () => {
    const { store, directory } = await freshStore();
    const bytes = Buffer.alloc(8 * 1024 * 1024, 7);
    const expiresAt = Date.now() + HOUR;
    let sawPartial = false;
    let polling = true;
    // Polls the final name while the write runs: it is either absent or complete.
    const poller = (async () => {
      while (polling) {
        const blob = await store.open("big.png");
        if (blob) {
          if (blob.size !== bytes.length) sawPartial = true;
          blob.stream.destroy();
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await store.put("big.png", bytes, { contentType: "image/png", expiresAt });
    polling = false;
    await poller;
    assert.equal(sawPartial, false);
    assert.deepEqual(await readdir(directory), ["big.png"]);
    assert.deepEqual(await readFile(join(directory, "big.png")), bytes);
  });

  test("invalid keys are rejected by put, open and delete", async () => {
    const { store, directory } = await freshStore();
    const meta = { contentType: "application/octet-stream", expiresAt: Date.now() + HOUR };
    const bad = [
      "../x",
      "a/b",
      "a\\b",
      ".hidden",
      "",
      ".",
      "..",
      "a.b.c",
      "a.",
      "a b",
      "a\0b",
      "x".repeat(201),
      "é.png",
      "a.p/ng",
    ];
    for (const key of bad) {
      await assert.rejects(store.put(key, Buffer.from("x"), meta), TypeError, key);
      await assert.rejects(store.open(key), TypeError, key);
      await assert.rejects(store.delete(key), TypeError, key);
    }
    assert.deepEqual(await readdir(directory), []);
    // The longest and oddest keys that are allowed.
    for (const key of ["x".repeat(200), "-_.bin", "A-z_09"]) {
      await store.put(key, Buffer.from("ok"), meta);
    }
    assert.equal((await readdir(directory)).length, 3);
  });

  test("delete removes a blob and ignores a missing one", async () => {
    const { store } = await freshStore();
    await store.put("gone.png", Buffer.from("x"), {
      contentType: "image/png",
      expiresAt: Date.now() + HOUR,
    });
    await store.delete("gone.png");
    assert.equal(await store.open("gone.png"), undefined);
    await store.delete("gone.png");
  });

  test("open does not follow a symlink planted in the directory", async () => {
    const { store, directory } = await freshStore();
    const outside = join(root, "secret.txt");
    await writeFile(outside, "secret");
    await symlink(outside, join(directory, "link.png"));
    await assert.rejects(store.open("link.png"));
  });

  test("sweep deletes only expired blobs and counts them", async () => {
    const { store, directory } = await freshStore();
    const now = Date.now();
    const put = (key: string, expiresAt: number) =>
      store.put(key, Buffer.from(key), { contentType: "image/png", expiresAt });
    await put("old.png", now - HOUR);
    await put("edge.png", now);
    await put("fresh.png", now + 1);
    await put("later.png", now + HOUR);
    await writeFile(join(directory, "not a key.txt"), "left alone");

    assert.equal(await store.sweep(now), 2);
    assert.deepEqual((await readdir(directory)).sort(), [
      "fresh.png",
      "later.png",
      "not a key.txt",
    ]);
    assert.equal(await store.sweep(now), 0);
    assert.equal(await store.sweep(now + HOUR), 2);
    assert.deepEqual(await readdir(directory), ["not a key.txt"]);
  });

  test("sweep removes stray temporary files only once they are old", async () => {
    const { store, directory } = await freshStore();
    const stray = join(directory, ".tmp-deadbeef");
    await writeFile(stray, "half an image");
    // A future mtime (as a crashed put leaves it) must not keep a stray alive: age is by ctime.
    await utimes(stray, new Date(), new Date(Date.now() + 10 * HOUR));
    const now = Date.now();
    assert.equal(await store.sweep(now), 0);
    assert.deepEqual(await readdir(directory), [".tmp-deadbeef"]);
    assert.equal(await store.sweep(now + STRAY_TEMPORARY_AGE_MS + 1000), 0);
    assert.deepEqual(await readdir(directory), []);
  });

  test("sweep of a directory removed under it finds nothing", async () => {
    const { store, directory } = await freshStore();
    await rm(directory, { recursive: true });
    assert.equal(await store.sweep(Date.now()), 0);
  });

  test("concurrent puts and sweeps lose no live blob and keep every expired one out", async () => {
    const { store, directory } = await freshStore();
    const now = Date.now();
    const bytes = await png(4, 4);
    const live = Array.from({ length: 200 }, (_, index) => `live-${index}.png`);
    const dead = Array.from({ length: 200 }, (_, index) => `dead-${index}.png`);
    const puts = [
      ...live.map((key) =>
        store.put(key, bytes, { contentType: "image/png", expiresAt: now + HOUR }),
      ),
      ...dead.map((key) => store.put(key, bytes, { contentType: "image/png", expiresAt: now - 1 })),
    ];
    const sweeps = Array.from({ length: 10 }, () => store.sweep(now));
    await Promise.all(puts);
    const sweptWhilePutting = (await Promise.all(sweeps)).reduce((sum, count) => sum + count, 0);
    const sweptAfter = await store.sweep(now);
    assert.equal(sweptWhilePutting + sweptAfter, dead.length);
    assert.deepEqual((await readdir(directory)).sort(), [...live].sort());
    for (const key of live.slice(0, 20)) {
      const blob = await store.open(key);
      assert.ok(blob);
      assert.deepEqual(await readAll(blob.stream), bytes);
    }
  });
});
