import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import sharp from "sharp";
import {
  createS3BlobStore,
  parseBlobStoreUrl,
  type S3BlobStore,
  type S3BlobStoreOptions,
} from "../../../src/storage/blobs/s3.ts";
import { sweepS3Blobs } from "../../../src/storage/blobs/s3-sweep.ts";
import {
  S3RVER_CREDENTIALS,
  startFakeS3,
  startRecordingProxy,
  startS3Server,
  TEST_REGION,
  type TestS3Server,
  unusedEndpoint,
  withEnv,
} from "../../helpers/s3-server.ts";
import { assertContentTypesKept, assertImageRoundTrip, HOUR, png, readAll } from "./contract.ts";

const PREFIX = "hub/images";

async function listKeys(client: S3Client, bucket: string): Promise<string[]> {
  const listing = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (listing.Contents ?? []).map((object) => object.Key ?? "").sort();
}

describe("S3 blob store", () => {
  let s3: TestS3Server;
  let admin: S3Client;
  let buckets = 0;
  before(async () => {
    s3 = await startS3Server();
    admin = s3.client();
  });
  after(async () => {
    await s3.close();
  });

  /** A new bucket (made by the test, never by the store) and a store on it. */
  async function freshStore(
    options: Partial<S3BlobStoreOptions> = {},
  ): Promise<{ store: S3BlobStore; bucket: string }> {
    buckets += 1;
    const bucket = `test-bucket-${buckets}`;
    await s3.createBucket(bucket);
    const store = await createS3BlobStore({ bucket, prefix: PREFIX, client: admin, ...options });
    return { store, bucket };
  }

  test("BLOB_STORE_URL is read as s3://bucket/prefix and anything else is refused by name", () => {
    assert.deepEqual(parseBlobStoreUrl("s3://images"), { bucket: "images", prefix: "" });
    assert.deepEqual(parseBlobStoreUrl("s3://images/"), { bucket: "images", prefix: "" });
    assert.deepEqual(parseBlobStoreUrl("s3://my.bucket-1/a/b_c/"), {
      bucket: "my.bucket-1",
      prefix: "a/b_c",
    });
    for (const bad of [
      "",
      "images",
      "https://images/x",
      "s3://",
      "s3:///prefix",
      "s3://ab",
      "s3://-images",
      "s3://im ages",
      "s3://a..b",
      `s3://${"b".repeat(64)}`,
      "s3://images/a//b",
      "s3://images/../x",
      "s3://images/a b",
      "s3://images/a?x=1",
      "s3://images/a#x",
      "s3://images/%2e%2e",
    ]) {
      assert.throws(() => parseBlobStoreUrl(bad), /^Error: BLOB_STORE_URL /, bad);
    }
  });

  test("put then open returns the same PNG with its content type, size and expiry", async () => {
    const { store, bucket } = await freshStore();
    const expiresAt = await assertImageRoundTrip(store);
    assert.deepEqual(await listKeys(admin, bucket), ["hub/images/image.png"]);

    // What another S3 client sees: the content type, the expiry metadata and header.
    const raw = await admin.send(
      new GetObjectCommand({ Bucket: bucket, Key: "hub/images/image.png" }),
    );
    await raw.Body?.transformToByteArray();
    assert.equal(raw.ContentType, "image/png");
    assert.equal(raw.Metadata?.["expires-at"], String(expiresAt));
    assert.equal(raw.ExpiresString, new Date(expiresAt).toUTCString());
  });

  test("the content type is kept as given", async () => {
    const { store } = await freshStore();
    await assertContentTypesKept(store);
    const meta = { expiresAt: Date.now() + HOUR };
    await assert.rejects(
      store.put("d.png", Buffer.from("x"), { ...meta, contentType: "image/png\r\nx-evil: 1" }),
      TypeError,
    );
    await assert.rejects(
      store.put("d.png", Buffer.from("x"), { contentType: "image/png", expiresAt: Number.NaN }),
      TypeError,
    );
  });

  test("open of a key never stored is undefined; delete removes and ignores a missing one", async () => {
    const { store } = await freshStore();
    assert.equal(await store.open("missing.png"), undefined);
    await store.put("gone.png", Buffer.from("x"), {
      contentType: "image/png",
      expiresAt: Date.now() + HOUR,
    });
    await store.delete("gone.png");
    assert.equal(await store.open("gone.png"), undefined);
    await store.delete("gone.png");
    await store.delete("never-there.png");
  });

  test("a blob is hidden once its expiry passes, by the injected clock", async () => {
    let now = 1_000_000_000_000;
    const { store, bucket } = await freshStore({ clock: () => now });
    await store.put("soon.png", Buffer.from("x"), {
      contentType: "image/png",
      expiresAt: now + 10,
    });
    const blob = await store.open("soon.png");
    assert.equal(blob?.expiresAt, now + 10);
    blob?.stream.destroy();
    now += 9;
    const stillThere = await store.open("soon.png");
    assert.ok(stillThere);
    stillThere.stream.destroy();
    now += 1;
    assert.equal(await store.open("soon.png"), undefined);
    // Hidden, not deleted: removing it is the sweep's (or a lifecycle rule's) job.
    assert.deepEqual(await listKeys(admin, bucket), ["hub/images/soon.png"]);
  });

  test("invalid keys are rejected before any request", async () => {
    const proxy = await startRecordingProxy(s3.endpoint);
    try {
      const { store } = await freshStore({ client: s3.client({ endpoint: proxy.endpoint }) });
      const sent = proxy.requests.length;
      const meta = { contentType: "application/octet-stream", expiresAt: Date.now() + HOUR };
      for (const key of ["../x", "a/b", ".hidden", "", "a.b.c", "a b", "x".repeat(201), "é.png"]) {
        await assert.rejects(store.put(key, Buffer.from("x"), meta), TypeError, key);
        await assert.rejects(store.open(key), TypeError, key);
        await assert.rejects(store.delete(key), TypeError, key);
        await assert.rejects(store.presignedUrl(key, Date.now() + HOUR), TypeError, key);
      }
      assert.equal(proxy.requests.length, sent);
    } finally {
      await proxy.close();
    }
  });

  test("put sends one plain PUT: Content-Length, no aws-chunked, no trailer, no checksum", async () => {
    const proxy = await startRecordingProxy(s3.endpoint);
    try {
      const { store } = await freshStore({ client: s3.client({ endpoint: proxy.endpoint }) });
      const bytes = randomBytes(300_000);
      const expiresAt = Date.now() + HOUR;
      await store.put("plain.png", bytes, { contentType: "image/png", expiresAt });

      const puts = proxy.requests.filter((request) => request.method === "PUT");
      assert.equal(puts.length, 1);
      const [put] = puts;
      assert.ok(put);
      assert.equal(put.url.split("?")[0], `/test-bucket-${buckets}/hub/images/plain.png`);
      assert.equal(put.headers["content-length"], String(bytes.length));
      assert.equal(put.bodyLength, bytes.length);
      assert.equal(put.headers["content-encoding"], undefined);
      assert.equal(put.headers["transfer-encoding"], undefined);
      assert.equal(put.headers["x-amz-trailer"], undefined);
      assert.equal(put.headers["x-amz-decoded-content-length"], undefined);
      const checksumHeaders = Object.keys(put.headers).filter((name) =>
        /^x-amz-(sdk-)?checksum-/.test(name),
      );
      assert.deepEqual(checksumHeaders, []);
      // The signed payload hash is the bytes' SHA-256, not a STREAMING-* marker.
      assert.equal(
        put.headers["x-amz-content-sha256"],
        createHash("sha256").update(bytes).digest("hex"),
      );
      assert.equal(put.headers["content-type"], "image/png");
      assert.equal(put.headers["x-amz-meta-expires-at"], String(expiresAt));
      assert.equal(put.headers.expires, new Date(expiresAt).toUTCString());
    } finally {
      await proxy.close();
    }
  });

  test("an 8 MB blob streams back intact, in chunks", async () => {
    const { store } = await freshStore();
    const bytes = randomBytes(8 * 1024 * 1024);
    await store.put("big.png", bytes, { contentType: "image/png", expiresAt: Date.now() + HOUR });
    const blob = await store.open("big.png");
    assert.ok(blob);
    assert.equal(blob.size, bytes.length);
    const hash = createHash("sha256");
    let chunks = 0;
    let largest = 0;
    for await (const chunk of blob.stream) {
      chunks += 1;
      largest = Math.max(largest, (chunk as Buffer).length);
      hash.update(chunk as Buffer);
    }
    assert.equal(hash.digest("hex"), createHash("sha256").update(bytes).digest("hex"));
    assert.ok(chunks > 1 && largest < bytes.length, `${chunks} chunks, largest ${largest}`);
  });

  test("sweep deletes only expired blobs under the prefix and leaves others' objects", async () => {
    const { store, bucket } = await freshStore();
    const now = Date.now();
    const put = (key: string, expiresAt: number) =>
      store.put(key, Buffer.from(key), { contentType: "image/png", expiresAt });
    await put("old.png", now - HOUR);
    await put("edge.png", now);
    await put("fresh.png", now + 1);
    await put("later.png", now + HOUR);
    // Objects that are not the store's, all with an expiry long gone.
    const old = { "expires-at": String(now - HOUR) };
    for (const key of [
      "outside.png",
      "hub/imagesX/sibling.png",
      "hub/images/not a key.txt",
      "hub/images/nested/deeper.png",
    ]) {
      await admin.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: "theirs", Metadata: old }),
      );
    }
    await admin.send(
      new PutObjectCommand({ Bucket: bucket, Key: "hub/images/no-expiry.png", Body: "theirs" }),
    );

    assert.equal(await store.sweep(now), 2);
    assert.deepEqual(await listKeys(admin, bucket), [
      "hub/images/fresh.png",
      "hub/images/later.png",
      "hub/images/nested/deeper.png",
      "hub/images/no-expiry.png",
      "hub/images/not a key.txt",
      "hub/imagesX/sibling.png",
      "outside.png",
    ]);
    assert.equal(await store.open("no-expiry.png"), undefined);
    assert.equal(await store.sweep(now), 0);
    assert.equal(await store.sweep(now + HOUR), 2);
  });

  test("sweep pages through the listing, batches deletes and sends DeleteObjects a Content-MD5", async () => {
    const proxy = await startRecordingProxy(s3.endpoint);
    try {
      const client = s3.client({ endpoint: proxy.endpoint });
      const { store, bucket } = await freshStore({ client });
      const now = Date.now();
      const meta = { contentType: "image/png" };
      for (let index = 0; index < 7; index += 1) {
        await store.put(`dead-${index}.png`, Buffer.from("d"), { ...meta, expiresAt: now - 1 });
        await store.put(`live-${index}.png`, Buffer.from("l"), { ...meta, expiresAt: now + HOUR });
      }
      const deleted = await sweepS3Blobs({
        client,
        bucket,
        prefix: PREFIX,
        now,
        pageSize: 4,
        deleteBatchSize: 3,
      });
      assert.equal(deleted, 7);
      const remaining = await listKeys(admin, bucket);
      assert.deepEqual(
        remaining,
        Array.from({ length: 7 }, (_, index) => `hub/images/live-${index}.png`).sort(),
      );

      const lists = proxy.requests.filter((request) => /[?&]list-type=2/.test(request.url));
      assert.ok(lists.length >= 4, `${lists.length} listing pages`);
      const deletes = proxy.requests.filter(
        (request) => request.method === "POST" && /[?&]delete/.test(request.url),
      );
      assert.ok(deletes.length >= 3, `${deletes.length} DeleteObjects requests`);
      for (const request of deletes) {
        assert.ok(request.body);
        assert.equal(
          request.headers["content-md5"],
          createHash("md5").update(request.body).digest("base64"),
        );
        assert.deepEqual(
          Object.keys(request.headers).filter((name) => /^x-amz-(sdk-)?checksum-/.test(name)),
          [],
        );
      }
    } finally {
      await proxy.close();
    }
  });

  test("concurrent puts and sweeps lose no live blob and keep every expired one out", async () => {
    const { store, bucket } = await freshStore();
    const now = Date.now();
    const bytes = await png(4, 4);
    const live = Array.from({ length: 40 }, (_, index) => `live-${index}.png`);
    const dead = Array.from({ length: 40 }, (_, index) => `dead-${index}.png`);
    const puts = [
      ...live.map((key) =>
        store.put(key, bytes, { contentType: "image/png", expiresAt: now + HOUR }),
      ),
      ...dead.map((key) => store.put(key, bytes, { contentType: "image/png", expiresAt: now - 1 })),
    ];
    const sweeps = Array.from({ length: 4 }, () => store.sweep(now));
    await Promise.all([...puts, ...sweeps]);
    await store.sweep(now);
    assert.deepEqual(await listKeys(admin, bucket), live.map((key) => `${PREFIX}/${key}`).sort());
    for (const key of live.slice(0, 5)) {
      const blob = await store.open(key);
      assert.ok(blob);
      assert.deepEqual(await readAll(blob.stream), bytes);
    }
  });

  test("without a prefix, blobs sit at the bucket's top and the sweep stays there", async () => {
    const { store, bucket } = await freshStore({ prefix: "" });
    const now = Date.now();
    await store.put("top.png", Buffer.from("t"), { contentType: "image/png", expiresAt: now - 1 });
    await admin.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: "other/app.png",
        Body: "theirs",
        Metadata: { "expires-at": String(now - 1) },
      }),
    );
    assert.deepEqual(await listKeys(admin, bucket), ["other/app.png", "top.png"]);
    assert.equal(await store.sweep(now), 1);
    assert.deepEqual(await listKeys(admin, bucket), ["other/app.png"]);
  });

  test("with no client, the endpoint, region and credentials come from the environment", async () => {
    await s3.createBucket("env-bucket");
    const proxy = await startRecordingProxy(s3.endpoint);
    const restore = withEnv({
      AWS_ENDPOINT_URL_S3: proxy.endpoint,
      AWS_ENDPOINT_URL: undefined,
      AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: undefined,
      AWS_REGION: TEST_REGION,
      AWS_DEFAULT_REGION: undefined,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
    });
    try {
      const store = await createS3BlobStore({
        bucket: "env-bucket",
        prefix: "from-env",
        forcePathStyle: true,
      });
      const bytes = await png(3, 2);
      await store.put("env.png", bytes, { contentType: "image/png", expiresAt: Date.now() + HOUR });
      const blob = await store.open("env.png");
      assert.ok(blob);
      assert.deepEqual(await readAll(blob.stream), bytes);
      await store.close?.();

      const seen = proxy.requests.map((request) => `${request.method} ${request.url}`);
      assert.equal(seen[0], "HEAD /env-bucket/");
      assert.ok(
        seen.some((line) => line.startsWith("PUT /env-bucket/from-env/env.png")),
        `${seen}`,
      );
      const authorization = String(proxy.requests[0]?.headers.authorization);
      assert.match(authorization, /Credential=S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request/);
    } finally {
      restore();
      await proxy.close();
    }
  });

  test("a missing bucket stops the start with a message naming BLOB_STORE_URL and the bucket", async () => {
    await assert.rejects(
      createS3BlobStore({ bucket: "no-such-bucket", prefix: PREFIX, client: admin }),
      (error: Error) => {
        assert.match(
          error.message,
          /^BLOB_STORE_URL: bucket 'no-such-bucket' does not exist \(404 from http:\/\/127\.0\.0\.1:\d+\); the hub never creates buckets/,
        );
        return true;
      },
    );
    // Nothing was created on its behalf.
    await assert.rejects(admin.send(new ListObjectsV2Command({ Bucket: "no-such-bucket" })));
  });

  test("credentials the store refuses stop the start with a clear message", async () => {
    await s3.createBucket("creds-bucket");
    // s3rver checks a SigV4 request's access key id (not its signature): an unknown one is 403.
    await assert.rejects(
      createS3BlobStore({
        bucket: "creds-bucket",
        prefix: "",
        client: s3.client({ accessKeyId: "WRONGKEY" }),
      }),
      /^Error: BLOB_STORE_URL: bucket 'creds-bucket': the store refused the credentials \(403 .*from http:\/\/127\.0\.0\.1:\d+\)/,
    );
    // The same from a server answering as S3 does to a HEAD it denies: a bare 403.
    const denying = await startFakeS3(403);
    try {
      await assert.rejects(
        createS3BlobStore({
          bucket: "creds-bucket",
          prefix: "",
          client: s3.client({ endpoint: denying.endpoint }),
        }),
        /^Error: BLOB_STORE_URL: bucket 'creds-bucket': the store refused the credentials \(403/,
      );
    } finally {
      await denying.close();
    }
  });

  test("an unreachable or silent endpoint stops the start within the time limit", async () => {
    const nothing = await unusedEndpoint();
    let started = Date.now();
    await assert.rejects(
      createS3BlobStore({
        bucket: "any-bucket",
        prefix: "",
        client: s3.client({ endpoint: nothing }),
      }),
      (error: Error) => {
        assert.match(
          error.message,
          /^BLOB_STORE_URL: bucket 'any-bucket': (could not reach|no answer from) http:\/\/127\.0\.0\.1:\d+/,
        );
        return true;
      },
    );
    assert.ok(Date.now() - started < 5_500, `${Date.now() - started} ms`);

    const silent = await startFakeS3(undefined);
    try {
      started = Date.now();
      await assert.rejects(
        createS3BlobStore({
          bucket: "any-bucket",
          prefix: "",
          client: s3.client({ endpoint: silent.endpoint }),
          checkTimeoutMs: 400,
        }),
        /^Error: BLOB_STORE_URL: bucket 'any-bucket': no answer from http:\/\/127\.0\.0\.1:\d+ within 0\.4 s/,
      );
      assert.ok(Date.now() - started < 2_000, `${Date.now() - started} ms`);
    } finally {
      await silent.close();
    }
  });

  test("a presigned URL serves the blob to plain fetch and expires with it", async () => {
    const { store } = await freshStore();
    const bytes = await png(6, 6);
    const expiresAt = Date.now() + HOUR;
    await store.put("shared.png", bytes, { contentType: "image/png", expiresAt });
    const url = new URL(await store.presignedUrl("shared.png", expiresAt));
    assert.equal(url.pathname, `/test-bucket-${buckets}/hub/images/shared.png`);
    const lifetime = Number(url.searchParams.get("X-Amz-Expires"));
    assert.ok(lifetime >= 3599 && lifetime <= 3600, `X-Amz-Expires=${lifetime}`);
    const signedAt = url.searchParams.get("X-Amz-Date") ?? "";
    const signedMs = Date.parse(
      signedAt.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"),
    );
    assert.ok(signedMs + lifetime * 1000 <= expiresAt, "the URL never outlives the blob");
    assert.equal(url.searchParams.get("x-amz-checksum-mode"), null);

    const response = await fetch(url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "image/png");
    const fetched = Buffer.from(await response.arrayBuffer());
    assert.deepEqual(fetched, bytes);
    assert.equal((await sharp(fetched).metadata()).width, 6);

    await assert.rejects(store.presignedUrl("shared.png", Date.now() - 1), RangeError);
    await assert.rejects(store.presignedUrl("shared.png", Date.now() + 8 * 24 * HOUR), RangeError);
  });
});
