/**
 * Where the hub keeps the images it hosts. Each blob is written once under a key, carries an
 * expiry, and is removed by `sweep` after it. The interface asks nothing a local directory or
 * an S3 bucket (object metadata for the content type, a lifecycle rule or a listing for the
 * sweep) could not give.
 */
import type { Readable } from "node:stream";

export interface BlobMeta {
  contentType: string;
  /** Unix time in milliseconds after which the blob may be deleted. */
  expiresAt: number;
}

export interface StoredBlob {
  /** The bytes; whoever opens a blob must consume or destroy this stream. */
  stream: Readable;
  size: number;
  contentType: string;
  /** Unix time in milliseconds, as given to `put`. */
  expiresAt: number;
}

export interface BlobStore {
  /**
   * Stores `bytes` under `key`. A reader sees either the whole blob or none of it. Keys are
   * `[A-Za-z0-9_-]` with at most one `.ext`; any other key is rejected with a `TypeError`.
   */
  put(key: string, bytes: Buffer, meta: BlobMeta): Promise<void>;
  /** The blob, or undefined when there is none (never stored, deleted or swept). */
  open(key: string): Promise<StoredBlob | undefined>;
  /** Removes the blob; removing one that is not there is not an error. */
  delete(key: string): Promise<void>;
  /** Deletes every blob whose expiry is at or before `now` (unix ms); returns how many. */
  sweep(now: number): Promise<number>;
  close?(): Promise<void>;
}

const KEY_PATTERN = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9]+)?$/;
const MAX_KEY_LENGTH = 200;

/** Whether `key` is one a store accepts: safe as a file name and an object key alike. */
export function isValidBlobKey(key: unknown): key is string {
  return typeof key === "string" && key.length <= MAX_KEY_LENGTH && KEY_PATTERN.test(key);
}

/** Throws a `TypeError` for a key no store accepts (a caller's bug, never a client's input). */
export function assertValidBlobKey(key: unknown): asserts key is string {
  if (!isValidBlobKey(key)) {
    throw new TypeError(
      `Invalid blob key ${JSON.stringify(String(key).slice(0, 100))}: use [A-Za-z0-9_-] and at most one ".ext".`,
    );
  }
}
