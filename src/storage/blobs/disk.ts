/**
 * A blob store in one local directory, with no database beside it.
 *
 * Layout: each blob is the file `<directory>/<key>`, holding exactly the bytes given to `put`.
 * - The expiry is the file's mtime: `put` sets mtime = expiresAt with `utimes`, so the sweep is a
 *   readdir plus one `lstat` per file, and `open` reads the expiry from the same `fstat` that
 *   gives the size.
 * - The content type is implied by the key's extension (`.png` → `image/png`; no or an unknown
 *   extension → `application/octet-stream`), so `put` refuses a `contentType` that disagrees
 *   with the key rather than forget it.
 * - Writes are atomic: the bytes go to a temporary file in the same directory, get their mtime,
 *   and are renamed onto the key, so a reader sees the whole image with its expiry or nothing.
 *   Temporary names start with `.tmp-`, which no valid key can, so they never collide with a
 *   blob. There is no fsync: a hosted image lives an hour, and a power cut may lose it.
 * - Keys are checked before any path is built (`[A-Za-z0-9_-]`, at most one `.ext`), so no key
 *   can leave the directory, and the sweep ignores every file whose name is not a key.
 *
 * Sweeping while `put`s run is safe: a `put` only ever renames a complete file onto a key, a
 * temporary file is removed only when its ctime (which `utimes` refreshes and nobody can set)
 * is several minutes old, and a file that vanishes between listing and deleting is skipped.
 * Keys are meant to be written once (the image host makes random ones); a `put` that reuses the
 * key of an expired blob may race the sweep and lose.
 *
 * Restoring the directory with a copy that does not keep mtimes makes every blob look expired.
 */
import { randomBytes } from "node:crypto";
import {
  constants,
  rename as renameCallbackForm,
  utimes as utimesCallbackForm,
  writeFile as writeFileCallbackForm,
} from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { lstat, mkdir, open, readdir, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { assertValidBlobKey, type BlobStore, isValidBlobKey } from "./types.ts";

/** A temporary file older than this belongs to a `put` that died midway. */
export const STRAY_TEMPORARY_AGE_MS = 5 * 60_000;

const TEMPORARY_PREFIX = ".tmp-";

const writeFileCallback = promisify(writeFileCallbackForm);
const utimesCallback = promisify(utimesCallbackForm);
const renameCallback = promisify(renameCallbackForm);

const CONTENT_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
};

export interface DiskBlobStoreOptions {
  /** Created (mode 0700) when missing. */
  directory: string;
}

/**
 * @example
 * const store = await createDiskBlobStore({ directory: join(dataDir, "images") });
 * await store.put("abc.png", bytes, { contentType: "image/png", expiresAt: Date.now() + 3_600_000 });
 */
export async function createDiskBlobStore(options: DiskBlobStoreOptions): Promise<BlobStore> {
  const { directory } = options;
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const instanceTag = randomBytes(6).toString("hex");
  let written = 0;

  return {
    async put(key, bytes, meta) {
      assertValidBlobKey(key);
      const contentType = contentTypeOfKey(key);
      if (meta.contentType !== contentType) {
        throw new TypeError(
          `The disk blob store keeps the content type in the key's extension: "${key}" is ${contentType}, not ${meta.contentType}.`,
        );
      }
      if (!Number.isFinite(meta.expiresAt))
        throw new TypeError("expiresAt must be a finite number.");

      // Unique within the process by its counter and across processes by the random part (and
      // `wx` refuses a name in use); the callback forms of fs, which cost the event loop less
      // than fs/promises' FileHandle per call (a re-hosted image's write is on every url reply).
      const temporary = join(directory, `${TEMPORARY_PREFIX}${instanceTag}-${++written}`);
      try {
        await writeFileCallback(temporary, bytes, { flag: "wx" });
        await utimesCallback(temporary, new Date(), new Date(meta.expiresAt));
        await renameCallback(temporary, join(directory, key));
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
    },

    async open(key) {
      assertValidBlobKey(key);
      let handle: FileHandle;
      try {
        // O_NOFOLLOW: a symlink planted in the directory is not a blob.
        handle = await open(join(directory, key), constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
      try {
        const stats = await handle.stat();
        if (!stats.isFile()) {
          await handle.close();
          return undefined;
        }
        // The stream owns the handle from here and closes it when it ends or is destroyed.
        return {
          stream: handle.createReadStream(),
          size: stats.size,
          contentType: contentTypeOfKey(key),
          expiresAt: Math.round(stats.mtimeMs),
        };
      } catch (error) {
        await handle.close();
        throw error;
      }
    },

    async delete(key) {
      assertValidBlobKey(key);
      await rm(join(directory, key), { force: true });
    },

    async sweep(now) {
      let names: string[];
      try {
        names = await readdir(directory);
      } catch (error) {
        if (isMissing(error)) return 0;
        throw error;
      }
      let deleted = 0;
      const errors: unknown[] = [];
      for (const name of names) {
        const isTemporary = name.startsWith(TEMPORARY_PREFIX);
        if (!isTemporary && !isValidBlobKey(name)) continue;
        const file = join(directory, name);
        try {
          const stats = await lstat(file);
          if (!stats.isFile()) continue;
          const due = isTemporary
            ? stats.ctimeMs + STRAY_TEMPORARY_AGE_MS <= now
            : Math.round(stats.mtimeMs) <= now;
          if (!due) continue;
          await unlink(file);
          if (!isTemporary) deleted += 1;
        } catch (error) {
          // Gone between listing and deleting: a concurrent sweep or delete got there first.
          if (!isMissing(error)) errors.push(error);
        }
      }
      if (errors.length > 0) {
        throw new AggregateError(
          errors,
          `Blob sweep deleted ${deleted} expired files but failed on ${errors.length} in ${directory}.`,
        );
      }
      return deleted;
    },
  };
}

function contentTypeOfKey(key: string): string {
  const dot = key.lastIndexOf(".");
  if (dot === -1) return "application/octet-stream";
  return CONTENT_TYPES[key.slice(dot + 1).toLowerCase()] ?? "application/octet-stream";
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}
