/**
 * The image formats the hub handles (PNG, JPEG, WebP): their MIME types, file extensions and
 * magic bytes, in one place for providers, inputs, results and hosting.
 */
import type { ImageMimeType, OutputFormat } from "./providers/types.ts";

export const MIME_TYPE_OF_FORMAT: Record<OutputFormat, ImageMimeType> = {
  png: "image/png",
  jpeg: "image/jpeg",
  webp: "image/webp",
};

export const FORMAT_OF_MIME_TYPE: Record<ImageMimeType, OutputFormat> = {
  "image/png": "png",
  "image/jpeg": "jpeg",
  "image/webp": "webp",
};

export const EXTENSION_OF_MIME_TYPE: Record<ImageMimeType, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/webp": "webp",
};

/**
 * The type the bytes say they are, by their magic bytes; undefined for anything else. A
 * Content-Type or a data URL's type is never trusted over this.
 */
export function sniffImageType(bytes: Uint8Array): ImageMimeType | undefined {
  if (startsWith(bytes, 0, PNG_SIGNATURE)) return "image/png";
  if (startsWith(bytes, 0, JPEG_SIGNATURE)) return "image/jpeg";
  if (startsWith(bytes, 0, RIFF) && startsWith(bytes, 8, WEBP)) return "image/webp";
  return undefined;
}

/** Whether the bytes start like a GIF: worth naming in an error, since clients send them. */
export function looksLikeGif(bytes: Uint8Array): boolean {
  return startsWith(bytes, 0, GIF);
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];
const RIFF = ascii("RIFF");
const WEBP = ascii("WEBP");
const GIF = ascii("GIF8");

function startsWith(bytes: Uint8Array, offset: number, expected: readonly number[]): boolean {
  return (
    bytes.length >= offset + expected.length &&
    expected.every((byte, index) => bytes[offset + index] === byte)
  );
}

function ascii(text: string): number[] {
  return [...text].map((character) => character.charCodeAt(0));
}
