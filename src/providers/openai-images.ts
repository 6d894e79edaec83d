/**
 * What every adapter of an OpenAI-shaped Images API shares (OpenAI itself, Azure OpenAI, the
 * OpenAI-compatible servers): the multipart form of an edit, and the reading of a reply
 * (`data[].b64_json` or `data[].url`, `usage`), with its base64 kept as the bytes that arrived.
 */
import { upstreamFailed } from "../errors.ts";
import { EXTENSION_OF_MIME_TYPE, MIME_TYPE_OF_FORMAT } from "../image-formats.ts";
import { base64Head, base64Length } from "./base64.ts";
import { cutStringFields } from "./json-cut.ts";
import { type EncodedMultipart, encodeMultipart, type MultipartPart } from "./multipart.ts";
import type {
  Base64,
  ImageMimeType,
  InputImage,
  OutputFormat,
  ProviderImage,
  ProviderResult,
  TokenUsage,
} from "./types.ts";
import { parseUpstreamJson, type UpstreamRequest } from "./upstream.ts";

/**
 * The mime type of a reply's base64 images: from the `output_format` the reply names (undefined
 * when it names none) and, for servers that name nothing, the image's own first bytes.
 */
export type Endpoint = "generation" | "edit";

/** A setting of the call beyond model, prompt, n, size and user, by the name OpenAI gives it. */
export type Parameter =
  | "quality"
  | "style"
  | "background"
  | "output_format"
  | "output_compression"
  | "moderation";

export type MimeTypeOf = (outputFormat: string | undefined, base64: Base64) => ImageMimeType;

/** The mime type of an `output_format` value; undefined for anything else. */
export function mimeTypeOfFormat(format: string | undefined): ImageMimeType | undefined {
  return format === undefined ? undefined : MIME_TYPE_OF_FORMAT[format as OutputFormat];
}

/** The signatures of PNG, JPEG and WebP files as they begin in base64. */
const BASE64_SIGNATURES: [prefix: string, mimeType: ImageMimeType][] = [
  ["iVBORw0KGgo", "image/png"],
  ["/9j/", "image/jpeg"],
  ["UklGR", "image/webp"],
];

/** The image type base64 text begins with, from its first bytes; undefined if none is known. */
export function sniffBase64MimeType(base64: Base64): ImageMimeType | undefined {
  const head = base64Head(base64, 16);
  return BASE64_SIGNATURES.find(([prefix]) => head.startsWith(prefix))?.[1];
}

/**
 * Reads an images reply: the images (base64 kept as the bytes that arrived, see json-cut.ts;
 * anything unusual is parsed whole) and the token usage.
 */
export function imagesResultOf(
  request: Pick<UpstreamRequest, "provider">,
  bytes: Buffer | readonly Buffer[],
  mimeTypeOf: MimeTypeOf,
): Omit<ProviderResult, "warnings"> {
  const cut = cutStringFields(bytes, "b64_json");
  if (cut && base64FieldCount(cut.skeleton) === cut.values.length) {
    return resultOf(request.provider, cut.skeleton, mimeTypeOf, cut.values);
  }
  return resultOf(request.provider, parseUpstreamJson(request, bytes), mimeTypeOf);
}

/** How many `data[].b64_json` strings a reply has: each must match one cut-out value. */
function base64FieldCount(reply: unknown): number {
  const data = (reply as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return -1;
  return data.filter((item) => typeof (item as { b64_json?: unknown })?.b64_json === "string")
    .length;
}

/** Reads only what the hub uses of the reply: the images, their format and the token usage. */
function resultOf(
  provider: string,
  reply: unknown,
  mimeTypeOf: MimeTypeOf,
  cutValues?: Buffer[][],
): Omit<ProviderResult, "warnings"> {
  const body = (typeof reply === "object" && reply !== null ? reply : {}) as {
    data?: unknown;
    output_format?: unknown;
    usage?: unknown;
  };
  if (!Array.isArray(body.data) || body.data.length === 0) {
    throw invalidResponse(`${provider} answered without images.`);
  }
  const format = typeof body.output_format === "string" ? body.output_format : undefined;
  let nextCut = 0;
  const images = body.data.map((item: unknown): ProviderImage => {
    const image = (typeof item === "object" && item !== null ? item : {}) as Record<
      string,
      unknown
    >;
    const revisedPrompt =
      typeof image.revised_prompt === "string" ? image.revised_prompt : undefined;
    if (typeof image.b64_json === "string") {
      const base64 = cutValues ? (cutValues[nextCut++] as Buffer[]) : image.b64_json;
      if (base64Length(base64) > 0) {
        return { kind: "base64", base64, mimeType: mimeTypeOf(format, base64), revisedPrompt };
      }
    }
    if (typeof image.url === "string" && image.url.length > 0) {
      return { kind: "url", url: image.url, revisedPrompt };
    }
    throw invalidResponse(`${provider} answered with an image that has neither b64_json nor url.`);
  });
  return { images, usage: usageOf(body.usage) };
}

/** OpenAI's `usage` of GPT image models; undefined when absent or of another shape. */
export function usageOf(value: unknown): TokenUsage | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const usage = value as Record<string, unknown>;
  const { input_tokens, output_tokens, total_tokens } = usage;
  if (
    typeof input_tokens !== "number" ||
    typeof output_tokens !== "number" ||
    typeof total_tokens !== "number"
  ) {
    return undefined;
  }
  const result: TokenUsage = {
    inputTokens: input_tokens,
    outputTokens: output_tokens,
    totalTokens: total_tokens,
  };
  const details = usage.input_tokens_details as Record<string, unknown> | undefined | null;
  if (typeof details?.image_tokens === "number") result.inputImageTokens = details.image_tokens;
  if (typeof details?.text_tokens === "number") result.inputTextTokens = details.text_tokens;
  return result;
}

/**
 * The multipart form of an edit: the text fields, the images under `imageField` (`image[]` for
 * GPT image models, `image` for dall-e-2), and the mask.
 */
export function editForm(
  fields: Record<string, string | number | boolean>,
  images: readonly InputImage[],
  mask: InputImage | undefined,
  imageField: "image" | "image[]",
): EncodedMultipart {
  const parts: MultipartPart[] = Object.entries(fields).map(([name, value]) => ({
    name,
    value: String(value),
  }));
  images.forEach((image, index) => {
    parts.push(filePart(imageField, `image-${index}`, image));
  });
  if (mask) parts.push(filePart("mask", "mask", mask));
  return encodeMultipart(parts);
}

function filePart(name: string, stem: string, image: InputImage): MultipartPart {
  const filename = `${stem}.${EXTENSION_OF_MIME_TYPE[image.mimeType]}`;
  return { name, filename, contentType: image.mimeType, bytes: image.bytes };
}

/** A JSON generation request with the given headers. */
export function jsonRequestInit(
  headers: Record<string, string>,
  body: Record<string, unknown>,
): UpstreamRequest["init"] {
  return {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  };
}

/** A multipart edit request with the given headers. */
export function multipartRequestInit(
  headers: Record<string, string>,
  form: EncodedMultipart,
): UpstreamRequest["init"] {
  return {
    method: "POST",
    headers: { ...headers, "content-type": form.contentType },
    body: form.body,
  };
}

export function invalidResponse(message: string) {
  return upstreamFailed(message, { code: "upstream_invalid_response" });
}
