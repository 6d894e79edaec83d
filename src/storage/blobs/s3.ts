/**
 * A blob store in an S3 bucket (AWS S3 or an S3-compatible server such as MinIO), through the
 * official AWS SDK v3, so several hub instances serve one another's images.
 *
 * Layout: the blob `key` is the object `<prefix>/<key>` (just `<key>` without a prefix) of
 * `BLOB_STORE_URL=s3://<bucket>/<prefix>`, with the blob's Content-Type, its expiry (unix ms)
 * in the user metadata `x-amz-meta-expires-at`, and the same expiry as the `Expires` header.
 * `open` streams the GetObject body (never buffered) and treats an object whose expiry has
 * passed as missing; `sweep` lists the prefix and deletes the expired blobs (see s3-sweep.ts).
 *
 * Settings: everything but the bucket, the prefix and path-style addressing comes from the
 * SDK's own default chain, nothing is hard-coded: AWS_REGION (or the profile's region; there
 * is no default, and most S3-compatible servers accept us-east-1), AWS_ENDPOINT_URL_S3 for a
 * non-AWS server, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, SSO, web identity,
 * container and instance roles. AWS_ENDPOINT_URL_S3 is read by @smithy/core 3.41.1 (used by
 * @aws-sdk/client-s3 3.1178.0): its endpoint middleware looks up `AWS_ENDPOINT_URL_<service
 * id>` with the id "S3", then AWS_ENDPOINT_URL, then the profile's `endpoint_url`, unless
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is set (endpoints/.../getEndpointUrlConfig.js).
 *
 * Checksums: SDKs since early 2025 compute a CRC32 for every upload by default and send a
 * streaming body as `aws-chunked` with the checksum in a trailer, which several S3-compatible
 * servers reject or store corrupted. This store sets `requestChecksumCalculation` and
 * `responseChecksumValidation` to "WHEN_REQUIRED" and uploads a Buffer with its
 * ContentLength, so a PUT is a plain request with Content-Length and no `aws-chunked`,
 * `x-amz-trailer` or checksum header, which every S3 implementation accepts (the SigV4
 * signature still covers the payload's SHA-256). DeleteObjects, which needs a checksum, gets
 * a Content-MD5 (s3-sweep.ts).
 *
 * Permissions (IAM actions) on `arn:aws:s3:::<bucket>` and `arn:aws:s3:::<bucket>/<prefix>/*`:
 * s3:ListBucket (the start-up HeadBucket and the sweep's ListObjectsV2), s3:GetObject (open,
 * HeadObject in the sweep, presigned URLs), s3:PutObject (put), s3:DeleteObject (delete and
 * the sweep's DeleteObjects). Never s3:CreateBucket: a missing bucket stops the start.
 *
 * Expiry: either call `sweep` now and then (one LIST per 1000 objects plus one HEAD per
 * object), or give the bucket a lifecycle rule expiring the prefix's objects after a day (its
 * finest unit); `open` already hides expired blobs, so the rule only reclaims the space, and a
 * sweep on such a bucket is harmless. A `put` that reuses the key of an expired blob may race
 * the sweep and lose, as with the disk store; keys are written once.
 */
import { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { checkS3BlobStore, DEFAULT_CHECK_TIMEOUT_MS } from "./s3-check.ts";
import { sweepS3Blobs } from "./s3-sweep.ts";
import { EXPIRES_AT_METADATA, expiryOf, isMissingObject, objectKeyOf } from "./s3-util.ts";
import { assertValidBlobKey, type BlobStore } from "./types.ts";

export { checkS3BlobStore } from "./s3-check.ts";
export { parseBlobStoreUrl } from "./s3-url.ts";

export interface S3BlobStoreOptions {
  /** From BLOB_STORE_URL=s3://bucket/prefix (prefix may be empty or nested a/b). */
  bucket: string;
  prefix: string;
  /** S3_FORCE_PATH_STYLE=true for MinIO-like servers. */
  forcePathStyle?: boolean;
  /**
   * Only for tests (build it with `s3ClientConfig` to get the same checksum settings);
   * production uses the SDK's default chain. The store does not destroy a client it was given.
   */
  client?: S3Client;
  clock?: () => number;
  /** The start-up check's time limit; 5 s unless a test is in a hurry. */
  checkTimeoutMs?: number;
}

export type S3BlobStore = BlobStore & {
  /**
   * A presigned GET URL for a stored key that expires at `expiresAt` (unix ms) or up to a
   * second before, never after; for the optional "store's own URLs" mode. With temporary
   * credentials (a role), S3 also ends the URL when those credentials expire.
   */
  presignedUrl(key: string, expiresAt: number): Promise<string>;
};

/** SigV4 presigned URLs live at most seven days. */
const MAX_PRESIGNED_SECONDS = 7 * 24 * 3600;

/**
 * The client settings every S3 blob store uses; the SDK's default chain supplies the rest.
 * Timeouts: 5 s to connect, 60 s for a request to be answered, 60 s of silence mid-stream.
 */
export function s3ClientConfig(options: { forcePathStyle?: boolean } = {}): S3ClientConfig {
  return {
    forcePathStyle: options.forcePathStyle ?? false,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: {
      connectionTimeout: 5_000,
      requestTimeout: 60_000,
      throwOnRequestTimeout: true,
      socketTimeout: 60_000,
    },
  };
}

/**
 * Creates the store and checks, within `checkTimeoutMs`, that the bucket exists and the
 * credentials work (HeadBucket); throws an Error naming BLOB_STORE_URL otherwise.
 */
export async function createS3BlobStore(options: S3BlobStoreOptions): Promise<S3BlobStore> {
  const { bucket, prefix } = options;
  const clock = options.clock ?? Date.now;
  const ownsClient = options.client === undefined;
  const client =
    options.client ?? new S3Client(s3ClientConfig({ forcePathStyle: options.forcePathStyle }));
  try {
    await checkS3BlobStore({
      client,
      bucket,
      timeoutMs: options.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS,
    });
  } catch (error) {
    if (ownsClient) client.destroy();
    throw error;
  }

  return {
    async put(key, bytes, meta) {
      assertValidBlobKey(key);
      if (!Number.isFinite(meta.expiresAt) || Number.isNaN(new Date(meta.expiresAt).getTime())) {
        throw new TypeError("expiresAt must be a finite time in milliseconds.");
      }
      if (!/^[\x21-\x7e][\x20-\x7e]*$/.test(meta.contentType)) {
        throw new TypeError(`Invalid content type ${JSON.stringify(meta.contentType)}.`);
      }
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: objectKeyOf(prefix, key),
          // The Buffer itself with its length: no copy, and a plain PUT (see the top).
          Body: bytes,
          ContentLength: bytes.length,
          ContentType: meta.contentType,
          Metadata: { [EXPIRES_AT_METADATA]: String(Math.round(meta.expiresAt)) },
          Expires: new Date(meta.expiresAt),
        }),
      );
    },

    async open(key) {
      assertValidBlobKey(key);
      let output: Awaited<ReturnType<typeof getObject>>;
      try {
        output = await getObject(key);
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw error;
      }
      const body = output.Body;
      if (!(body instanceof Readable)) {
        throw new Error(`GetObject of ${objectKeyOf(prefix, key)} returned no Node.js stream.`);
      }
      const expiresAt = expiryOf(output.Metadata, output.Expires);
      // Expired (a lifecycle rule or the sweep has not caught up) or not written by a hub.
      if (expiresAt === undefined || expiresAt <= clock()) {
        body.destroy();
        return undefined;
      }
      if (output.ContentLength === undefined) {
        body.destroy();
        throw new Error(`GetObject of ${objectKeyOf(prefix, key)} came without a Content-Length.`);
      }
      return {
        stream: body,
        size: output.ContentLength,
        contentType: output.ContentType ?? "application/octet-stream",
        expiresAt,
      };
    },

    async delete(key) {
      assertValidBlobKey(key);
      try {
        await client.send(
          new DeleteObjectCommand({ Bucket: bucket, Key: objectKeyOf(prefix, key) }),
        );
      } catch (error) {
        // S3 answers 204 for a missing key; some compatible servers say NoSuchKey.
        if (!isMissingObject(error)) throw error;
      }
    },

    sweep(now) {
      return sweepS3Blobs({ client, bucket, prefix, now });
    },

    async presignedUrl(key, expiresAt) {
      assertValidBlobKey(key);
      const signedAt = clock();
      // X-Amz-Date has whole seconds: count from the truncated second so the URL never
      // outlives the blob.
      const expiresIn = Math.floor(expiresAt / 1000) - Math.floor(signedAt / 1000);
      if (!Number.isFinite(expiresIn) || expiresIn < 1 || expiresIn > MAX_PRESIGNED_SECONDS) {
        throw new RangeError(
          `A presigned URL must expire between 1 s and 7 days from now, not at ${expiresAt}.`,
        );
      }
      return getSignedUrl(
        client,
        new GetObjectCommand({ Bucket: bucket, Key: objectKeyOf(prefix, key) }),
        { expiresIn, signingDate: new Date(signedAt) },
      );
    },

    async close() {
      if (ownsClient) client.destroy();
    },
  };

  function getObject(key: string) {
    return client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKeyOf(prefix, key) }));
  }
}
