/**
 * The blob store the settings name. Its own module so that the AWS SDK is imported only here,
 * and only when a bucket is named.
 */
import path from "node:path";
import type { Config } from "../../config.ts";
import { createDiskBlobStore } from "./disk.ts";
import type { BlobStore } from "./types.ts";

/**
 * The blob store the settings name: DATA_DIR/images, or an S3 bucket (loaded only then: a hub
 * on local disk never loads the AWS SDK). An S3 store checks the bucket and the credentials
 * before the hub serves, and stops the start with a message naming BLOB_STORE_URL if it cannot.
 */
export async function openBlobStore(
  config: Config,
  clock: () => number,
): Promise<{
  store: BlobStore;
  presignedUrl?: (name: string, expiresAt: number) => Promise<string>;
}> {
  if (config.blobStore.kind === "disk") {
    return { store: await createDiskBlobStore({ directory: path.join(config.dataDir, "images") }) };
  }
  const { createS3BlobStore } = await import("./s3.ts");
  const { bucket, prefix, forcePathStyle } = config.blobStore;
  const store = await createS3BlobStore({ bucket, prefix, forcePathStyle, clock });
  return { store, presignedUrl: (name, expiresAt) => store.presignedUrl(name, expiresAt) };
}
