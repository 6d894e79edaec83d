/**
 * What every blob store must do (storage/blobs/types.ts), as checks both stores' tests run:
 * the disk store and the S3 store keep the same promises.
 */
import assert from "node:assert/strict";
import type { Readable } from "node:stream";
import sharp from "sharp";
import type { BlobStore } from "../../../src/storage/blobs/types.ts";

export const HOUR = 3_600_000;

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function png(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 4, background: "#3366ff" } })
    .png()
    .toBuffer();
}

/** Puts a 7x5 PNG under "image.png" and reads it back whole: bytes, type, size, expiry. */
export async function assertImageRoundTrip(store: BlobStore): Promise<number> {
  const bytes = await png(7, 5);
  const expiresAt = Date.now() + HOUR + 123;
  await store.put("image.png", bytes, { contentType: "image/png", expiresAt });
  const blob = await store.open("image.png");
  assert.ok(blob);
  assert.equal(blob.contentType, "image/png");
  assert.equal(blob.size, bytes.length);
  assert.equal(blob.expiresAt, expiresAt);
  const read = await readAll(blob.stream);
  assert.deepEqual(read, bytes);
  const metadata = await sharp(read).metadata();
  assert.equal(metadata.format, "png");
  assert.equal(metadata.width, 7);
  assert.equal(metadata.height, 5);
  return expiresAt;
}

/** A JPEG, a WebP and an untyped blob come back with the content type they were put with. */
export async function assertContentTypesKept(store: BlobStore): Promise<void> {
  const meta = { expiresAt: Date.now() + HOUR };
  await store.put("a.jpg", Buffer.from("j"), { ...meta, contentType: "image/jpeg" });
  await store.put("b.webp", Buffer.from("w"), { ...meta, contentType: "image/webp" });
  await store.put("c", Buffer.from("x"), { ...meta, contentType: "application/octet-stream" });
  for (const [key, type] of [
    ["a.jpg", "image/jpeg"],
    ["b.webp", "image/webp"],
    ["c", "application/octet-stream"],
  ] as const) {
    const blob = await store.open(key);
    assert.equal(blob?.contentType, type);
    blob?.stream.destroy();
  }
}
