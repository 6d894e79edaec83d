/**
 * Hubs on an S3-compatible store (s3rver on loopback, as MinIO would be), started as a user
 * starts them: BLOB_STORE_URL and the AWS SDK's own settings. A URL one hub made is served by
 * another; IMAGE_URLS=store answers with the store's presigned URL; a missing bucket stops the
 * start at once with a message naming BLOB_STORE_URL and the bucket, and creates nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ListBucketsCommand } from "@aws-sdk/client-s3";
import sharp from "sharp";
import { HubExitedEarly, type HubProcess, startHubProcess } from "../helpers/hub-process.ts";
import {
  S3RVER_CREDENTIALS,
  startS3Server,
  TEST_REGION,
  type TestS3Server,
} from "../helpers/s3-server.ts";

const ADMIN_KEY = "s3-store-admin-key-0123456789";
const SECRET = "s3-store-url-signing-secret-0123456789";
let s3: TestS3Server;
const hubs: HubProcess[] = [];

const s3Env = (bucket: string) => ({
  BLOB_STORE_URL: `s3://${bucket}/hub-images`,
  S3_FORCE_PATH_STYLE: "true",
  AWS_ENDPOINT_URL_S3: s3.endpoint,
  AWS_REGION: TEST_REGION,
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  ADMIN_KEY,
  URL_SIGNING_SECRET: SECRET,
  MODEL_LIST_REFRESH_SECONDS: "0",
});

async function start(env: Record<string, string>): Promise<HubProcess> {
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const path = await import("node:path");
  const hub = await startHubProcess({
    DATA_DIR: await mkdtemp(path.join(tmpdir(), "image-hub-s3-")),
    ...env,
  });
  hubs.push(hub);
  return hub;
}

async function generate(hub: HubProcess, prompt: string): Promise<string> {
  const response = await fetch(`${hub.url}/api/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "local/placeholder", prompt, size: "320x200" }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  const body = (await response.json()) as { data: { url: string }[] };
  return body.data[0]?.url as string;
}

async function assertImage(url: string): Promise<void> {
  const response = await fetch(url);
  assert.equal(response.status, 200, url);
  assert.equal(response.headers.get("content-type"), "image/png");
  const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
  assert.deepEqual([meta.width, meta.height], [320, 200]);
}

before(async () => {
  s3 = await startS3Server();
  await s3.createBucket("images");
});
after(async () => {
  await Promise.all(hubs.map((hub) => hub.stop("SIGTERM")));
  await s3?.close();
});

describe("hubs on an S3 store", () => {
  it("serve each other's URLs: the signature covers the path and expiry, not the host", async () => {
    const one = await start(s3Env("images"));
    const two = await start(s3Env("images"));
    const url = await generate(one, "made by one");
    assert.ok(url.startsWith(one.url));
    await assertImage(url);
    // The same link, asked of the other hub (as a load balancer would send it).
    await assertImage(url.replace(one.url, two.url));
    // Stored where the setting says, with its content type.
    const client = s3.client();
    const name = new URL(url).pathname.split("/").pop();
    const { GetObjectCommand } = await import("@aws-sdk/client-s3");
    const object = await client.send(
      new GetObjectCommand({ Bucket: "images", Key: `hub-images/${name}` }),
    );
    assert.equal(object.ContentType, "image/png");
    client.destroy();
  });

  it("answers with the store's own presigned URL when IMAGE_URLS=store", async () => {
    const hub = await start({ ...s3Env("images"), IMAGE_URLS: "store" });
    const url = await generate(hub, "a presigned one");
    assert.ok(url.startsWith(`${s3.endpoint}/images/hub-images/`), url);
    const expires = Number(new URL(url).searchParams.get("X-Amz-Expires"));
    // The image expires on a whole second after an hour, so the URL lives 3600 s and a part.
    assert.ok(expires > 3590 && expires <= 3601, `expires in ${expires} s`);
    await assertImage(url);
  });

  it("stops the start within seconds when the bucket is missing, and creates none", async () => {
    const started = Date.now();
    await assert.rejects(start(s3Env("no-such-bucket")), (error: unknown) => {
      assert.ok(error instanceof HubExitedEarly);
      assert.notEqual(error.exit.code, 0);
      assert.match(error.output, /BLOB_STORE_URL/);
      assert.match(error.output, /no-such-bucket/);
      return true;
    });
    assert.ok(Date.now() - started < 10_000, "within seconds");
    const client = s3.client();
    const buckets = await client.send(new ListBucketsCommand({}));
    assert.deepEqual(
      buckets.Buckets?.map((bucket) => bucket.Name),
      ["images"],
      "no CreateBucket",
    );
    client.destroy();
  });

  it("refuses to start on a shared database without a shared URL_SIGNING_SECRET", async () => {
    await assert.rejects(
      start({
        ...s3Env("images"),
        URL_SIGNING_SECRET: "",
        DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test",
      }),
      (error: unknown) => {
        assert.ok(error instanceof HubExitedEarly);
        assert.match(error.output, /URL_SIGNING_SECRET is required with DATABASE_URL/);
        return true;
      },
    );
  });
});
