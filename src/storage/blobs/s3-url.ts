/**
 * `BLOB_STORE_URL=s3://bucket/prefix`, read apart from the store itself so that reading the
 * settings loads no AWS SDK (a hub on local disk never loads it).
 */

const BUCKET_PATTERN = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/i;
const PREFIX_SEGMENT_PATTERN = /^[A-Za-z0-9._-]+$/;
const MAX_PREFIX_LENGTH = 512;

/** Reads `s3://bucket/prefix`; throws an Error naming BLOB_STORE_URL for anything else. */
export function parseBlobStoreUrl(url: string): { bucket: string; prefix: string } {
  const fail = (why: string): never => {
    throw new Error(
      `BLOB_STORE_URL must look like s3://bucket or s3://bucket/some/prefix: ${why} (got ${JSON.stringify(url.slice(0, 200))}).`,
    );
  };
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(url.trim());
  if (!match) return fail("only s3:// is supported");
  const bucket = match[1] ?? "";
  if (bucket === "") return fail("the bucket is missing");
  if (!BUCKET_PATTERN.test(bucket) || bucket.includes("..")) {
    return fail(
      `'${bucket}' is not a bucket name (3 to 63 letters, digits, '.', '-' or '_', starting and ending with a letter or digit)`,
    );
  }
  const prefix = (match[2] ?? "").replace(/\/$/, "");
  if (prefix.length > MAX_PREFIX_LENGTH) return fail("the prefix is too long");
  if (prefix !== "") {
    for (const segment of prefix.split("/")) {
      if (!PREFIX_SEGMENT_PATTERN.test(segment) || segment === "." || segment === "..") {
        return fail(
          `the prefix segment '${segment}' is not allowed (use letters, digits, '.', '-' and '_' between single slashes)`,
        );
      }
    }
  }
  return { bucket, prefix };
}
