/** Small pieces the S3 blob store's files share: object keys, the stored expiry, SDK errors. */

/** User metadata (`x-amz-meta-expires-at`) holding the blob's expiry in unix milliseconds. */
export const EXPIRES_AT_METADATA = "expires-at";

/** `<prefix>/<key>`, or just `<key>` without a prefix; never a leading slash. */
export function objectKeyOf(prefix: string, key: string): string {
  return prefix === "" ? key : `${prefix}/${key}`;
}

/**
 * The expiry of an object the store wrote: the metadata first (milliseconds), else the
 * `Expires` header (seconds). An object with neither is not one of the hub's blobs.
 */
export function expiryOf(
  metadata: Record<string, string> | undefined,
  expires: Date | undefined,
): number | undefined {
  const stored = metadata?.[EXPIRES_AT_METADATA];
  if (stored !== undefined && /^-?\d{1,16}$/.test(stored.trim())) return Number(stored.trim());
  const time = expires?.getTime();
  return time !== undefined && Number.isFinite(time) ? time : undefined;
}

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $response?: { headers?: Record<string, string | undefined> };
}

/** The HTTP status an SDK error came with, if the store answered at all. */
export function httpStatusOf(error: unknown): number | undefined {
  const status = (error as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

export function errorNameOf(error: unknown): string {
  const shape = error as SdkErrorShape | undefined;
  if (typeof shape?.code === "string" && /^E[A-Z_]+$/.test(shape.code)) return shape.code;
  return typeof shape?.name === "string" ? shape.name : "Error";
}

export function responseHeaderOf(error: unknown, name: string): string | undefined {
  return (error as SdkErrorShape | undefined)?.$response?.headers?.[name];
}

/**
 * Whether the object (not the bucket) is missing. A missing bucket is a configuration error
 * that must surface, not a blob that was swept.
 */
export function isMissingObject(error: unknown): boolean {
  const name = errorNameOf(error);
  if (name === "NoSuchKey") return true;
  return httpStatusOf(error) === 404 && name !== "NoSuchBucket";
}
