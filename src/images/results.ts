/**
 * Provider images turned into what the client asked for: base64 passed on as it came (never
 * decoded just to be encoded again), or bytes stored behind a signed URL; a retired model's
 * successor's image brought to the size and format the client was promised (deliver-as.ts).
 * An image the upstream gave as a URL is fetched once, through the SSRF guard.
 */
import { isHubError, upstreamFailed } from "../errors.ts";
import { MIME_TYPE_OF_FORMAT, sniffImageType } from "../image-formats.ts";
import { base64Head, decodeBase64 } from "../providers/base64.ts";
import type { Base64, ImageMimeType, ProviderImage } from "../providers/types.ts";
import { deliverAs } from "./deliver-as.ts";
import type { ImageJob } from "./plan.ts";

export interface GeneratedImageData {
  url?: string;
  /** As the provider gave it: a string, or views of its bytes (see providers/base64.ts). */
  b64_json?: Base64;
  revised_prompt?: string;
  /** The image's type; not part of the OpenAI reply, but AIGNE's names it per image. */
  mimeType: ImageMimeType;
  /** Where a hosted image is kept, and until when (the gallery); not part of any reply. */
  hosted?: { name: string; expiresAt: number };
}

export interface DeliveryDeps {
  /** Fetches an image an upstream answered with as a URL, so clients never depend on it. */
  fetchUpstreamImage(url: string, signal: AbortSignal): Promise<Buffer>;
  /** Stores an image: its signed, expiring URL, its name in the store and its expiry. */
  hostImage(
    bytes: Buffer,
    mimeType: ImageMimeType,
  ): Promise<{ url: string; name: string; expiresAt: number }>;
}

export function createDelivery(deps: DeliveryDeps) {
  return async function deliver(
    job: ImageJob,
    images: ProviderImage[],
    signal: AbortSignal,
  ): Promise<GeneratedImageData[]> {
    return Promise.all(
      images.map(async (image) => {
        const revised = image.revisedPrompt ? { revised_prompt: image.revisedPrompt } : {};
        const converted = job.deliver && (await convertedFor(job.deliver, image, signal));
        if (job.responseFormat === "b64_json") {
          if (image.kind === "base64" && !converted) {
            return { b64_json: image.base64, mimeType: image.mimeType, ...revised };
          }
          const { bytes, mimeType } = converted ?? (await bytesOf(image, signal));
          return { b64_json: bytes.toString("base64"), mimeType, ...revised };
        }
        const { bytes, mimeType } = converted ?? (await bytesOf(image, signal));
        const { url, name, expiresAt } = await deps.hostImage(bytes, mimeType);
        return { url, mimeType, hosted: { name, expiresAt }, ...revised };
      }),
    );
  };

  /** The image at the size and in the format a substituted request promised, if it is not. */
  async function convertedFor(
    wanted: NonNullable<ImageJob["deliver"]>,
    image: ProviderImage,
    signal: AbortSignal,
  ) {
    const mimeOk = image.kind !== "url" && image.mimeType === MIME_TYPE_OF_FORMAT[wanted.format];
    if (!wanted.size && mimeOk) return undefined;
    const { bytes } = await bytesOf(image, signal);
    return deliverAs(bytes, wanted);
  }

  async function bytesOf(
    image: ProviderImage,
    signal: AbortSignal,
  ): Promise<{ bytes: Buffer; mimeType: ImageMimeType }> {
    if (image.kind === "base64") {
      return { bytes: decodeBase64(image.base64), mimeType: image.mimeType };
    }
    if (image.kind === "bytes") return { bytes: image.bytes, mimeType: image.mimeType };
    const bytes = await deps.fetchUpstreamImage(image.url, signal).catch((error: unknown) => {
      // The fetcher speaks to clients about their URLs (400, 413); this URL is the upstream's.
      if (!isHubError(error) || error.status >= 500 || signal.aborted) throw error;
      throw upstreamFailed(`The upstream answered with an image URL the hub cannot use.`, {
        code: "upstream_invalid_response",
        cause: error,
      });
    });
    const mimeType = sniffImageType(bytes);
    if (!mimeType) {
      throw upstreamFailed("The upstream answered with a URL that does not hold an image.", {
        code: "upstream_invalid_response",
      });
    }
    return { bytes, mimeType };
  }
}

/**
 * Whether an image's first bytes are those of a PNG, JPEG or WebP. Base64 is checked by its head
 * alone (24 characters, 18 bytes), so megabytes are never decoded just to look; URLs are
 * checked once fetched.
 */
export function startsLikeAnImage(image: ProviderImage): boolean {
  if (image.kind === "url") return true;
  if (image.kind === "bytes") return sniffImageType(image.bytes) !== undefined;
  return sniffImageType(Buffer.from(base64Head(image.base64, 24), "base64")) !== undefined;
}
