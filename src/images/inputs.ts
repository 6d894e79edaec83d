/**
 * Input images for edits: from a URL (through the SSRF-guarded fetcher), a base64 data URL or
 * bare base64, to checked bytes with their type and size.
 *
 * Checks, cheapest first: the size of base64 before decoding it; the magic bytes (PNG, JPEG or
 * WebP, what the OpenAI edit endpoints take); the header's pixel count against `maxPixels`
 * before any pixel is decoded (a 20000x20000 PNG of one colour is a few hundred KB and would
 * decode to over a GB); then one full decode, so a truncated or corrupt file is refused here
 * rather than by the provider after the cost was reserved.
 */
import type { Metadata } from "sharp";
import { HubError, invalidRequest, tooLarge } from "../errors.ts";
import { FORMAT_OF_MIME_TYPE, looksLikeGif, sniffImageType } from "../image-formats.ts";
import type { SafeFetcher } from "../net/safe-fetch.ts";
import type { ImageMimeType, InputImage } from "../providers/types.ts";
import { loadSharp } from "../sharp.ts";

export interface LoadInputImagesOptions {
  /** Fetches http(s) sources; `createSafeFetcher` from net/safe-fetch. */
  fetcher: Pick<SafeFetcher, "fetch">;
  /** Largest image accepted, in bytes (decoded bytes for base64). */
  maxBytes: number;
  /** Largest image accepted, in pixels (width × height). */
  maxPixels: number;
  /** The request field: "image", "mask". With several sources, errors name "image[i]". */
  param: string;
  signal?: AbortSignal;
}

export interface DecodeImageOptions {
  maxPixels: number;
  param: string;
}

/** Characters and padding of standard base64, nothing else (no whitespace, no URL alphabet). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const SCHEME = /^[a-zA-Z][a-zA-Z0-9+.-]*:/;
const DATA_URL = /^data:/i;
/** A data URL's header (`data:image/png;base64`) is short; a longer one is not an image. */
const MAX_DATA_URL_HEADER = 256;

/**
 * Loads every source concurrently; the first failure aborts the others and is thrown.
 *
 * @example
 * const images = await loadInputImages(["https://example.com/a.png", "iVBORw0KGgo..."], {
 *   fetcher,
 *   maxBytes: 20 * 1024 * 1024,
 *   maxPixels: 16_000_000,
 *   param: "image",
 *   signal,
 * });
 */
export async function loadInputImages(
  sources: readonly string[],
  options: LoadInputImagesOptions,
): Promise<InputImage[]> {
  options.signal?.throwIfAborted();
  const failed = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, failed.signal]) : failed.signal;
  return Promise.all(
    sources.map(async (source, index) => {
      const param = sources.length > 1 ? `${options.param}[${index}]` : options.param;
      try {
        return await loadInputImage(source, { ...options, param, signal });
      } catch (error) {
        failed.abort(error);
        throw error;
      }
    }),
  );
}

/**
 * Checks bytes already received (a multipart file): format by magic bytes, pixel count by
 * the header, then a full decode.
 */
export async function decodeImageBytes(
  bytes: Buffer,
  options: DecodeImageOptions,
): Promise<InputImage> {
  const sharp = await loadSharp();
  const { param, maxPixels } = options;
  const mimeType = imageTypeOf(bytes, param);
  const expected = FORMAT_OF_MIME_TYPE[mimeType];
  let metadata: Metadata;
  try {
    // Reads the header only, so no pixel limit is needed yet; the limit is checked below with
    // the dimensions in the message.
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw invalidImage(`The image could not be read as ${expected.toUpperCase()}.`, param, error);
  }
  const { width, height, format } = metadata;
  if (format !== expected || !width || !height) {
    throw invalidImage(
      `The image starts like ${expected.toUpperCase()} but is not a valid ${expected.toUpperCase()} file.`,
      param,
    );
  }
  if (width * height > maxPixels) {
    throw tooLarge(
      `The image is ${width}x${height} pixels; at most ${maxPixels} pixels are accepted.`,
      param,
    );
  }
  try {
    // A full decode (to a thumbnail, so memory stays small) catches a truncated or corrupt body
    // that the header alone does not show.
    await sharp(bytes, { limitInputPixels: maxPixels, failOn: "error" })
      .resize(8, 8, { fit: "fill" })
      .raw()
      .toBuffer();
  } catch (error) {
    throw invalidImage(
      `The image is a damaged ${expected.toUpperCase()} file and could not be decoded.`,
      param,
      error,
    );
  }
  return { bytes, mimeType, width, height };
}

async function loadInputImage(
  source: string,
  options: LoadInputImagesOptions & { signal: AbortSignal },
): Promise<InputImage> {
  const { param, signal, maxBytes, maxPixels } = options;
  let bytes: Buffer;
  if (DATA_URL.test(source)) {
    bytes = decodeBase64(dataUrlPayload(source, param), maxBytes, param);
  } else if (SCHEME.test(source)) {
    // Any other scheme goes to the fetcher, the one place that says which schemes are allowed.
    ({ bytes } = await options.fetcher.fetch(source, { param, signal, maxBytes }));
  } else {
    bytes = decodeBase64(source, maxBytes, param);
  }
  signal.throwIfAborted();
  return decodeImageBytes(bytes, { maxPixels, param });
}

/** The base64 text of `data:image/...;base64,...`. */
function dataUrlPayload(source: string, param: string): string {
  const comma = source.indexOf(",");
  if (comma === -1 || comma > MAX_DATA_URL_HEADER) {
    throw invalidImage("The image data URL is malformed.", param);
  }
  const [mediaType = "", ...parameters] = source.slice(5, comma).toLowerCase().split(";");
  if (!mediaType.startsWith("image/")) {
    throw invalidImage(
      `The image data URL has the type '${mediaType}'; expected image/png, image/jpeg or image/webp.`,
      param,
    );
  }
  if (!parameters.includes("base64")) {
    throw invalidImage("The image data URL must be base64-encoded (';base64,').", param);
  }
  return source.slice(comma + 1);
}

/** Decodes strict base64, refusing it by its length before any byte is decoded. */
function decodeBase64(text: string, maxBytes: number, param: string): Buffer {
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const decodedLength = Math.floor((text.length * 3) / 4) - padding;
  if (decodedLength > maxBytes) {
    throw tooLarge(`The image is larger than ${maxBytes} bytes.`, param);
  }
  const lengthFits = padding > 0 ? text.length % 4 === 0 : text.length % 4 !== 1;
  if (text.length === 0 || !lengthFits || !BASE64.test(text)) {
    throw invalidImage("The image is neither an http(s) URL, a data URL nor valid base64.", param);
  }
  return Buffer.from(text, "base64");
}

/** The type the bytes say they are; the Content-Type or data URL type is not trusted. */
function imageTypeOf(bytes: Buffer, param: string): ImageMimeType {
  if (bytes.length === 0) throw invalidImage("The image is empty.", param);
  const mimeType = sniffImageType(bytes);
  if (mimeType) return mimeType;
  throw invalidRequest(
    `The image is ${looksLikeGif(bytes) ? "a GIF" : "not a known image format"}; PNG, JPEG and WebP are accepted.`,
    param,
    "unsupported_image_format",
  );
}

function invalidImage(message: string, param: string, cause?: unknown): HubError {
  return new HubError(message, {
    status: 400,
    type: "invalid_request_error",
    code: "invalid_image",
    param,
    cause,
  });
}
