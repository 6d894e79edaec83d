/**
 * Hosted images: `response_format: "url"` answers with a link that works without an API key
 * until it expires. The link is a capability, so it is unguessable (a random 128-bit id) and
 * tamper-proof (an HMAC-SHA256 over its path and expiry):
 *
 *   `${publicUrl}/files/images/<id>.<ext>?expires=<unix seconds>&signature=<base64url HMAC>`
 *
 * Changing the name, the extension or the expiry breaks the signature. The signature covers the
 * path below `publicUrl`, so a hub behind a proxy that adds a path prefix still verifies.
 */
import { createHmac, createSecretKey, randomBytes, timingSafeEqual } from "node:crypto";
import { HubError } from "../errors.ts";
import { EXTENSION_OF_MIME_TYPE } from "../image-formats.ts";
import type { ImageMimeType } from "../providers/types.ts";
import type { BlobStore, StoredBlob } from "../storage/blobs/types.ts";

export const DEFAULT_IMAGE_URL_TTL_SECONDS = 3600;

/** Where hosted images live, below `publicUrl`; the route is `${IMAGE_ROUTE_PREFIX}/:name`. */
export const IMAGE_ROUTE_PREFIX = "/files/images";

/** Keeps these signatures apart from any other use of the same secret. */
const SIGNATURE_CONTEXT = "image-hub/image-url/v1";

/** What `save` names images: 22 base64url characters (128 bits) and one extension we make. */
const NAME_PATTERN = /^[A-Za-z0-9_-]{22}\.(?:png|jpg|webp)$/;
const EXPIRES_PATTERN = /^[0-9]{1,12}$/;

export type HostedImage = StoredBlob;

export interface ImageHostOptions {
  store: BlobStore;
  /** HMAC key, at least 32 bytes; see images/secret.ts. */
  secret: Buffer;
  /** Absolute http(s) base of the hub as clients reach it, e.g. `https://hub.example.com`. */
  publicUrl: string;
  ttlSeconds?: number;
  /** Unix milliseconds; injected so tests can move time. */
  clock?: () => number;
  /**
   * The store's own URL for a stored image (IMAGE_URLS=store: an S3 presigned GET that ends
   * when the image does), instead of the hub's signed one; the hub's still work.
   */
  storeUrl?: (name: string, expiresAt: number) => Promise<string>;
}

export interface ImageHost {
  /** Stores the image until the URL expires and returns the signed, absolute URL. */
  save(
    bytes: Buffer,
    mimeType: ImageMimeType,
  ): Promise<{ url: string; name: string; expiresAt: number }>;
  /** The URL of an image `save` stored, for as long as it lives (the gallery). */
  urlOf(name: string, expiresAt: number): Promise<string>;
  /**
   * What `GET /files/images/:name?expires&signature` serves: the image, or the `HubError` to
   * answer with (403 `invalid_signature`, 404 `image_not_found`, 410 `url_expired`). These are
   * returned, not thrown: they are answers to expect, not faults. Storage faults still throw.
   */
  resolve(
    name: string,
    query: { expires?: unknown; signature?: unknown },
  ): Promise<HostedImage | HubError>;
}

const NAME_BYTES = 16;
const NAMES_PER_DRAW = 256;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/**
 * 128 random bits as base64url. Drawn from a pool filled 256 names at a time, as `randomUUID`
 * does: a CSPRNG call per name cost about 1% of a re-hosted reply's CPU.
 */
function randomName(): string {
  if (randomOffset + NAME_BYTES > randomPool.length) {
    randomPool = randomBytes(NAME_BYTES * NAMES_PER_DRAW);
    randomOffset = 0;
  }
  randomOffset += NAME_BYTES;
  return randomPool.toString("base64url", randomOffset - NAME_BYTES, randomOffset);
}

/**
 * @example
 * const host = createImageHost({ store, secret, publicUrl: "https://hub.example.com" });
 * const { url } = await host.save(pngBytes, "image/png");
 */
export function createImageHost(options: ImageHostOptions): ImageHost {
  const { store, secret } = options;
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_IMAGE_URL_TTL_SECONDS;
  const clock = options.clock ?? Date.now;
  const publicUrl = normalisePublicUrl(options.publicUrl);
  if (secret.length < 32) throw new TypeError("The URL signing secret must be at least 32 bytes.");
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError("ttlSeconds must be a positive integer.");
  }

  // Imported once: an HMAC with a raw Buffer key imports it anew on every signature.
  const key = createSecretKey(secret);
  function sign(name: string, expires: string): string {
    return createHmac("sha256", key)
      .update(`${SIGNATURE_CONTEXT}\n${IMAGE_ROUTE_PREFIX}/${name}\n${expires}`)
      .digest("base64url");
  }

  function signedUrlOf(name: string, expiresAt: number): string {
    const expires = String(Math.ceil(expiresAt / 1000));
    const signature = sign(name, expires);
    return `${publicUrl}${IMAGE_ROUTE_PREFIX}/${name}?expires=${expires}&signature=${signature}`;
  }
  const urlOf = async (name: string, expiresAt: number): Promise<string> =>
    options.storeUrl ? options.storeUrl(name, expiresAt) : signedUrlOf(name, expiresAt);

  return {
    async save(bytes, mimeType) {
      const extension = EXTENSION_OF_MIME_TYPE[mimeType];
      if (extension === undefined) throw new TypeError(`Cannot host images of type ${mimeType}.`);
      const name = `${randomName()}.${extension}`;
      // Whole seconds, rounded up, so the URL and the stored blob expire at the same instant.
      const expiresSeconds = Math.ceil(clock() / 1000) + ttlSeconds;
      const expiresAt = expiresSeconds * 1000;
      await store.put(name, bytes, { contentType: mimeType, expiresAt });
      return { url: await urlOf(name, expiresAt), name, expiresAt };
    },
    urlOf,

    async resolve(name, query) {
      const { expires, signature } = query;
      // Repeated parameters arrive as arrays: not a link we made.
      if (typeof expires !== "string" || typeof signature !== "string") return invalidSignature();
      if (!EXPIRES_PATTERN.test(expires) || !safeEqual(signature, sign(name, expires))) {
        return invalidSignature();
      }
      // Signed by us, so well formed; checked again because the store throws on bad keys.
      if (!NAME_PATTERN.test(name)) return imageNotFound();
      const image = await store.open(name);
      // Gone before or after its expiry (swept, or the data directory was reset): 404 either way.
      if (image === undefined) return imageNotFound();
      if (Number(expires) * 1000 <= clock()) {
        image.stream.destroy();
        return urlExpired();
      }
      return image;
    },
  };
}

/**
 * The `Cache-Control` of a hosted image: cacheable until the link expires, and `private`
 * because the URL is a capability that shared caches should not keep.
 */
export function cacheControlFor(expiresAt: number, now: number): string {
  const seconds = Math.max(0, Math.floor((expiresAt - now) / 1000));
  return `private, max-age=${seconds}, immutable`;
}

export interface SweepLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface SweeperOptions {
  store: BlobStore;
  intervalMs: number;
  /** Unix milliseconds; defaults to `Date.now`. */
  clock?: () => number;
  log: SweepLogger;
}

/**
 * Sweeps expired images now and then every `intervalMs`, one sweep at a time, on a timer that
 * does not keep the process alive. The returned `stop` cancels the timer and waits for a sweep
 * in progress, so the store can be closed after it.
 *
 * @example
 * const stopSweeper = startSweeper({ store, intervalMs: 60_000, log: app.log });
 * app.addHook("onClose", stopSweeper);
 */
export function startSweeper(options: SweeperOptions): () => Promise<void> {
  const { store, intervalMs, log } = options;
  const clock = options.clock ?? Date.now;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new TypeError("intervalMs must be a positive number.");
  }
  let stopped = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function sweepOnce(): Promise<void> {
    try {
      const deleted = await store.sweep(clock());
      if (deleted > 0) log.info({ deleted }, "Swept expired hosted images");
    } catch (error) {
      log.warn({ err: error }, "Sweeping expired hosted images failed");
    }
  }

  function schedule(delayMs: number): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweepOnce().finally(() => {
        running = undefined;
        schedule(intervalMs);
      });
    }, delayMs);
    timer.unref();
  }

  schedule(0);
  return async function stop() {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}

function safeEqual(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function normalisePublicUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`publicUrl must be an absolute URL, got ${JSON.stringify(value)}.`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash) {
    throw new TypeError(`publicUrl must be an http(s) URL without query or fragment: ${value}.`);
  }
  return url.href.replace(/\/+$/, "");
}

function invalidSignature(): HubError {
  return new HubError("This image URL has an invalid or missing signature.", {
    status: 403,
    type: "permission_error",
    code: "invalid_signature",
  });
}

function imageNotFound(): HubError {
  return new HubError("No image is hosted at this URL.", {
    status: 404,
    type: "invalid_request_error",
    code: "image_not_found",
  });
}

function urlExpired(): HubError {
  return new HubError("This image URL has expired; generate the image again for a new URL.", {
    status: 410,
    type: "invalid_request_error",
    code: "url_expired",
  });
}
