/**
 * The S3 blob store's sweep. A listing gives keys but not user metadata, so each listed blob
 * is HEADed (a few at a time) for its expiry, and the expired ones are removed with
 * DeleteObjects, up to 1000 keys a request.
 *
 * Only the objects directly under the prefix whose names are valid blob keys and that carry
 * the store's expiry are ever deleted: the listing uses the delimiter `/`, so other
 * applications' objects elsewhere in a shared bucket (and deeper "folders" under the prefix)
 * are never even looked at, and an object without the expiry metadata is left alone.
 *
 * DeleteObjects carries a Content-MD5 header: the S3 API required one for this call for years,
 * and S3-compatible servers still do (the SDK now sends a CRC32 header instead, which AWS
 * accepts and they refuse). Deleting a key that vanished meanwhile succeeds, as on S3, so two
 * sweeps running at once may both count it.
 */
import { createHash } from "node:crypto";
import {
  DeleteObjectsCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from "@aws-sdk/client-s3";
import { expiryOf, isMissingObject } from "./s3-util.ts";
import { isValidBlobKey } from "./types.ts";

export interface S3SweepOptions {
  client: S3Client;
  bucket: string;
  prefix: string;
  now: number;
  /** Keys per listing page (S3's maximum is 1000); smaller only in tests. */
  pageSize?: number;
  /** Keys per DeleteObjects request (S3's maximum is 1000). */
  deleteBatchSize?: number;
  /** HEAD requests in flight at once. */
  concurrency?: number;
}

/** At most this many of a sweep's errors are kept in the AggregateError it throws. */
const KEPT_ERRORS = 10;

export async function sweepS3Blobs(options: S3SweepOptions): Promise<number> {
  const { client, bucket, prefix, now } = options;
  const deleteBatchSize = Math.min(options.deleteBatchSize ?? 1000, 1000);
  const concurrency = options.concurrency ?? 8;
  const listPrefix = prefix === "" ? "" : `${prefix}/`;
  const errors: unknown[] = [];
  let failures = 0;
  const fail = (error: unknown) => {
    failures += 1;
    if (errors.length < KEPT_ERRORS) errors.push(error);
  };

  let deleted = 0;
  let due: string[] = [];
  const flush = async () => {
    while (due.length > 0) {
      const batch = due.slice(0, deleteBatchSize);
      due = due.slice(batch.length);
      deleted += await deleteBatch(client, bucket, batch, fail);
    }
  };

  const pages = paginateListObjectsV2(
    { client, pageSize: options.pageSize ?? 1000 },
    { Bucket: bucket, Prefix: listPrefix, Delimiter: "/" },
  );
  for await (const page of pages) {
    const keys = (page.Contents ?? [])
      .map((object) => object.Key ?? "")
      .filter((key) => key.startsWith(listPrefix) && isValidBlobKey(key.slice(listPrefix.length)));
    await forEachLimited(keys, concurrency, async (key) => {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        const expiresAt = expiryOf(head.Metadata, head.Expires);
        if (expiresAt !== undefined && expiresAt <= now) due.push(key);
      } catch (error) {
        if (!isMissingObject(error)) fail(error);
      }
    });
    if (due.length >= deleteBatchSize) await flush();
  }
  await flush();

  if (failures > 0) {
    throw new AggregateError(
      errors,
      `Blob sweep deleted ${deleted} expired objects but failed on ${failures} in s3://${bucket}/${listPrefix}.`,
    );
  }
  return deleted;
}

async function deleteBatch(
  client: S3Client,
  bucket: string,
  keys: string[],
  fail: (error: unknown) => void,
): Promise<number> {
  const command = new DeleteObjectsCommand({
    Bucket: bucket,
    Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
  });
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      const { headers, body } = request ?? {};
      if (headers && (typeof body === "string" || body instanceof Uint8Array)) {
        for (const name of Object.keys(headers)) {
          const lower = name.toLowerCase();
          if (lower.startsWith("x-amz-checksum-") || lower.startsWith("x-amz-sdk-checksum-")) {
            delete headers[name];
          }
        }
        headers["content-md5"] = createHash("md5").update(body).digest("base64");
      }
      return next(args);
    },
    // Low in the build step: after the SDK's checksum middleware has added its headers.
    { step: "build", priority: "low", name: "imageHubContentMd5" },
  );
  try {
    const result = await client.send(command);
    const failed = (result.Errors ?? []).filter((entry) => entry.Code !== "NoSuchKey");
    for (const entry of failed) {
      fail(new Error(`DeleteObjects refused ${entry.Key}: ${entry.Code} ${entry.Message ?? ""}`));
    }
    return keys.length - failed.length;
  } catch (error) {
    fail(error);
    return 0;
  }
}

async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
