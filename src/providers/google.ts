/**
 * Google's image models behind one provider, chosen by the upstream model id: `imagen-*` through
 * Imagen's `:predict`, every other id (gemini-2.5-flash-image, gemini-3-pro-image-preview, …)
 * through Gemini's `:generateContent`. Both on the Gemini API
 * (generativelanguage.googleapis.com), authenticated with `x-goog-api-key`, never a query key.
 * `listModels` reads `GET /v1beta/models`, page by page; it carries no shutdown dates (Google
 * publishes those only on its deprecations page).
 *
 * @example
 * const google = createGoogleProvider({ apiKey: process.env.GEMINI_API_KEY ?? "", baseURL: GOOGLE_DEFAULT_BASE_URL });
 * const { images } = await google.generate({ model: "imagen-4.0-generate-001", count: 2, size: "1408x768", ... });
 */
import { contentPolicy, HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import type {
  HttpProviderOptions,
  ImageMimeType,
  ImageProvider,
  ProviderCall,
  ProviderImage,
  ProviderResult,
  TokenUsage,
  UpstreamModel,
} from "./types.ts";
import type { UpstreamErrorBody } from "./upstream.ts";
import { DEFAULT_UPSTREAM_TIMEOUT_MS, requestUpstreamJson } from "./upstream.ts";

export const GOOGLE_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com";

/** The aspect ratios of Gemini's `imageConfig.aspectRatio`. */
export const GEMINI_ASPECT_RATIOS = [
  "1:1",
  "2:3",
  "3:2",
  "3:4",
  "4:3",
  "4:5",
  "5:4",
  "9:16",
  "16:9",
  "21:9",
] as const;

/** The aspect ratios of Imagen's `parameters.aspectRatio`. */
export const IMAGEN_ASPECT_RATIOS = ["1:1", "3:4", "4:3", "9:16", "16:9"] as const;

export type GeminiImageSize = "1K" | "2K" | "4K";

/**
 * How far a size may sit from a ratio, as |ln(w/h) − ln(ratio)|, and still name it. Google's own
 * output sizes are rounded to multiples of 16 to 64 pixels and so sit off their ratio: Gemini's
 * 16:9 is 1344x768 (1.6 % off), Imagen's 4:3 is 1280x896 (7 % off).
 */
const RATIO_TOLERANCE = 0.075;

/** Gemini stops for these reasons when a safety or policy filter withheld the image. */
const SAFETY_FINISH_REASONS = new Set([
  "SAFETY",
  "IMAGE_SAFETY",
  "PROHIBITED_CONTENT",
  "IMAGE_PROHIBITED_CONTENT",
  "BLOCKLIST",
  "SPII",
  "RECITATION",
]);

/**
 * The aspect ratio among `ratios` that a `WxH` size names, or undefined when it names none.
 * The nearest ratio wins, within a tolerance wide enough for Google's own documented sizes.
 *
 * @example
 * aspectRatioOfSize("1344x768"); // "16:9"
 * aspectRatioOfSize("1280x896", IMAGEN_ASPECT_RATIOS); // "4:3"
 * aspectRatioOfSize("1536x1024", IMAGEN_ASPECT_RATIOS); // undefined: Imagen has no 3:2
 */
export function aspectRatioOfSize(
  size: string | undefined,
  ratios: readonly string[] = GEMINI_ASPECT_RATIOS,
): string | undefined {
  const dimensions = parseSize(size);
  if (!dimensions) return undefined;
  const wanted = Math.log(dimensions.width / dimensions.height);
  let nearest: string | undefined;
  let nearestDistance = Number.POSITIVE_INFINITY;
  for (const ratio of ratios) {
    const [width, height] = ratio.split(":").map(Number);
    if (!width || !height) continue;
    const distance = Math.abs(wanted - Math.log(width / height));
    if (distance < nearestDistance) {
      nearest = ratio;
      nearestDistance = distance;
    }
  }
  return nearestDistance <= RATIO_TOLERANCE ? nearest : undefined;
}

/**
 * Gemini 3's `imageConfig.imageSize` for a `WxH` size: the smallest tier at least as large.
 * Tiers are measured by area (1K is about 1024², whatever the ratio), so 1344x768 stays 1K;
 * 5 % slack covers Google's rounded sizes such as 1584x672.
 *
 * @example
 * imageSizeOfSize("1024x1024"); // "1K"
 * imageSizeOfSize("2048x2048"); // "2K"
 * imageSizeOfSize("4096x4096"); // "4K"
 */
export function imageSizeOfSize(size: string | undefined): GeminiImageSize | undefined {
  const dimensions = parseSize(size);
  if (!dimensions) return undefined;
  const side = Math.sqrt(dimensions.width * dimensions.height);
  if (side <= 1024 * 1.05) return "1K";
  if (side <= 2048 * 1.05) return "2K";
  return "4K";
}

/** Google's largest page; a list longer than this many pages is cut there. */
const MODEL_LIST_PAGE_SIZE = 1000;
const MAX_MODEL_LIST_PAGES = 10;

type Post = (
  model: string,
  method: "generateContent" | "predict",
  body: unknown,
  call: Pick<ProviderCall, "signal" | "timeoutMs">,
) => Promise<unknown>;

export function createGoogleProvider(options: HttpProviderOptions): ImageProvider {
  const baseURL = (options.baseURL || GOOGLE_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;

  const post: Post = async (model, method, body, { signal, timeoutMs: callTimeoutMs }) => {
    try {
      return await requestUpstreamJson({
        provider: "Google",
        dispatcher: options.dispatcher,
        byteBudget: options.byteBudget,
        url: `${baseURL}/v1beta/models/${encodeURIComponent(model)}:${method}`,
        init: {
          method: "POST",
          headers: { "content-type": "application/json", "x-goog-api-key": options.apiKey },
          body: JSON.stringify(body),
        },
        timeoutMs: callTimeoutMs ?? timeoutMs,
        maxReplyBytes: options.maxReplyBytes,
        signal,
        isContentPolicy: isSafetyRejection,
      });
    } catch (error) {
      throw keyRejectionAsAuthFailure(error);
    }
  };

  const getPage = async (
    pageToken: string | undefined,
    { signal, timeoutMs: listTimeoutMs }: { signal: AbortSignal; timeoutMs: number },
  ): Promise<unknown> => {
    const token = pageToken === undefined ? "" : `&pageToken=${encodeURIComponent(pageToken)}`;
    try {
      return await requestUpstreamJson({
        provider: "Google",
        dispatcher: options.dispatcher,
        byteBudget: options.byteBudget,
        url: `${baseURL}/v1beta/models?pageSize=${MODEL_LIST_PAGE_SIZE}${token}`,
        init: {
          method: "GET",
          headers: { accept: "application/json", "x-goog-api-key": options.apiKey },
        },
        timeoutMs: listTimeoutMs,
        maxReplyBytes: options.maxReplyBytes,
        signal,
      });
    } catch (error) {
      throw keyRejectionAsAuthFailure(error);
    }
  };

  return {
    name: "google",
    async generate(call) {
      call.signal.throwIfAborted();
      return call.model.startsWith("imagen-")
        ? generateWithImagen(call, post)
        : generateWithGemini(call, post);
    },
    async listModels(listOptions) {
      listOptions.signal.throwIfAborted();
      const models: UpstreamModel[] = [];
      let pageToken: string | undefined;
      for (let page = 0; page < MAX_MODEL_LIST_PAGES; page++) {
        const reply = await getPage(pageToken, listOptions);
        // proto3 JSON leaves an empty `models` out: fine on a last page, not on the first, where
        // it would say that every model is gone.
        const entries = isObject(reply) ? (reply.models ?? (page > 0 ? [] : undefined)) : undefined;
        if (!isObject(reply) || !Array.isArray(entries)) {
          throw invalidModelList("Google answered a model list that is not one.");
        }
        for (const entry of entries) {
          const name = isObject(entry) ? entry.name : undefined;
          if (typeof name !== "string") continue;
          const id = name.startsWith("models/") ? name.slice("models/".length) : name;
          if (id !== "") models.push({ id, shutdownDate: null });
        }
        const next = reply.nextPageToken;
        if (typeof next !== "string" || next === "") return models;
        pageToken = next;
      }
      // A cut list would read as models gone; better to know nothing new.
      throw invalidModelList(`Google's model list goes on past ${MAX_MODEL_LIST_PAGES} pages.`);
    },
  };
}

async function generateWithGemini(call: ProviderCall, post: Post): Promise<ProviderResult> {
  if (call.count !== 1) {
    // The catalog's maxPerCall for Gemini models is 1; fan-out makes the others.
    throw new Error(`Gemini makes one image per call; ${call.model} was asked for ${call.count}.`);
  }
  if (call.mask) {
    throw invalidRequest(`${call.model} takes no mask: describe the change in the prompt.`, "mask");
  }
  const aspectRatio = requiredAspectRatio(call, GEMINI_ASPECT_RATIOS);
  const warnings = ignoredSettings(call, false);
  const imageConfig: { aspectRatio?: string; imageSize?: GeminiImageSize } = {};
  if (aspectRatio) imageConfig.aspectRatio = aspectRatio;
  const imageSize = imageSizeOfSize(call.size);
  // Only the Gemini 3 image models take imageSize; gemini-2.5-flash-image always makes about 1K.
  if (imageSize && call.model.startsWith("gemini-3")) imageConfig.imageSize = imageSize;
  else if (imageSize && imageSize !== "1K") {
    warnings.push(`${call.model} makes images of about 1K; size ${call.size} sets only the ratio.`);
  }

  const body = {
    contents: [
      {
        role: "user",
        parts: [
          { text: call.prompt },
          ...call.images.map((image) => ({
            inlineData: { mimeType: image.mimeType, data: image.bytes.toString("base64") },
          })),
        ],
      },
    ],
    generationConfig: {
      responseModalities: ["TEXT", "IMAGE"],
      ...(Object.keys(imageConfig).length > 0 ? { imageConfig } : {}),
    },
  };
  const reply = await post(call.model, "generateContent", body, call);

  const root = isObject(reply) ? reply : {};
  const candidate = Array.isArray(root.candidates) ? root.candidates[0] : undefined;
  const content = isObject(candidate) ? candidate.content : undefined;
  const parts = isObject(content) && Array.isArray(content.parts) ? content.parts : [];
  const images: ProviderImage[] = [];
  for (const part of parts) {
    // Gemini 3 sends its draft images as `thought` parts; only the final image is the answer.
    // Text parts are the model talking, not a revised prompt.
    if (!isObject(part) || part.thought === true) continue;
    const blob = part.inlineData ?? part.inline_data;
    if (!isObject(blob) || typeof blob.data !== "string" || blob.data === "") continue;
    const mimeType = imageMimeTypeOf(blob.mimeType ?? blob.mime_type);
    if (!mimeType) continue;
    images.push({ kind: "base64", base64: blob.data, mimeType, revisedPrompt: undefined });
  }

  if (images.length === 0) {
    const feedback = isObject(root.promptFeedback) ? root.promptFeedback : {};
    const blockReason = typeof feedback.blockReason === "string" ? feedback.blockReason : undefined;
    const finishReason =
      isObject(candidate) && typeof candidate.finishReason === "string"
        ? candidate.finishReason
        : undefined;
    if (blockReason) {
      throw contentPolicy(`Google's safety system blocked the prompt (${blockReason}).`, {
        blockReason,
      });
    }
    if (finishReason && SAFETY_FINISH_REASONS.has(finishReason)) {
      throw contentPolicy(`Google's safety system withheld the image (${finishReason}).`, {
        finishReason,
      });
    }
    throw upstreamFailed(
      `Google answered without an image${finishReason ? ` (finish reason ${finishReason})` : ""}.`,
      { code: "upstream_no_image", cause: { finishReason } },
    );
  }

  const delivered = images.slice(0, call.count);
  const image = delivered[0];
  if (
    call.outputFormat &&
    image?.kind === "base64" &&
    image.mimeType !== `image/${call.outputFormat}`
  ) {
    warnings.push(
      `${call.model} chooses its own format: output_format ${call.outputFormat} was not applied (got ${image.mimeType}).`,
    );
  }
  return { images: delivered, usage: usageOf(root.usageMetadata), warnings };
}

async function generateWithImagen(call: ProviderCall, post: Post): Promise<ProviderResult> {
  if (call.images.length > 0) {
    throw invalidRequest(
      `${call.model} cannot edit images, it only draws from a prompt; use a Gemini image model to edit.`,
      "image",
    );
  }
  if (call.mask) throw invalidRequest(`${call.model} takes no mask.`, "mask");
  const aspectRatio = requiredAspectRatio(call, IMAGEN_ASPECT_RATIOS);
  const warnings = ignoredSettings(call, call.outputFormat === "jpeg");
  // Ask for the filter's reasons: without them Imagen drops filtered images without a word.
  const parameters: Record<string, unknown> = { sampleCount: call.count, includeRaiReason: true };
  if (aspectRatio) parameters.aspectRatio = aspectRatio;
  if (call.outputFormat === "jpeg") {
    parameters.outputOptions = {
      mimeType: "image/jpeg",
      ...(call.outputCompression !== undefined
        ? { compressionQuality: call.outputCompression }
        : {}),
    };
  } else if (call.outputFormat === "webp") {
    warnings.push(
      `${call.model} makes PNG or JPEG only: output_format webp was not applied (PNG sent).`,
    );
  }

  const reply = await post(
    call.model,
    "predict",
    { instances: [{ prompt: call.prompt }], parameters },
    call,
  );

  const root = isObject(reply) ? reply : {};
  const predictions = Array.isArray(root.predictions) ? root.predictions : [];
  const fallbackMimeType: ImageMimeType = call.outputFormat === "jpeg" ? "image/jpeg" : "image/png";
  const images: ProviderImage[] = [];
  const filterReasons: string[] = [];
  for (const prediction of predictions) {
    if (!isObject(prediction)) continue;
    if (typeof prediction.raiFilteredReason === "string") {
      filterReasons.push(prediction.raiFilteredReason);
      continue;
    }
    const base64 = prediction.bytesBase64Encoded;
    if (typeof base64 !== "string" || base64 === "") continue;
    const mimeType = imageMimeTypeOf(prediction.mimeType) ?? fallbackMimeType;
    images.push({ kind: "base64", base64, mimeType, revisedPrompt: undefined });
  }

  if (images.length === 0) {
    // Imagen's safety filter drops images silently: nothing back means it took them all.
    if (predictions.length === 0 || filterReasons.length > 0) {
      const reason = filterReasons[0];
      throw contentPolicy(
        `Google's safety filter removed every image${reason ? `: ${reason}` : "."}`,
        { filtered: filterReasons.length, asked: call.count },
      );
    }
    throw upstreamFailed("Google answered with predictions that hold no image.", {
      code: "upstream_invalid_response",
    });
  }
  if (images.length < call.count) {
    warnings.push(
      `Google's safety filter removed ${call.count - images.length} of ${call.count} images.`,
    );
  }
  return { images: images.slice(0, call.count), usage: undefined, warnings };
}

/** The call's size as an aspect ratio the model takes; undefined when the call names no size. */
function requiredAspectRatio(call: ProviderCall, ratios: readonly string[]): string | undefined {
  if (call.size === undefined) return undefined;
  const ratio = aspectRatioOfSize(call.size, ratios);
  if (!ratio) {
    throw invalidRequest(
      `Size ${call.size} matches no aspect ratio ${call.model} supports (${ratios.join(", ")}).`,
      "size",
    );
  }
  return ratio;
}

/** Hints Google's image models have no notion of: reported, not sent. */
function ignoredSettings(call: ProviderCall, takesCompression: boolean): string[] {
  const warnings: string[] = [];
  const ignored = (setting: string, value: unknown) =>
    warnings.push(`${call.model} does not support ${setting} (${String(value)}); it was ignored.`);
  if (call.quality !== undefined) ignored("quality", call.quality);
  if (call.style !== undefined) ignored("style", call.style);
  if (call.background !== undefined && call.background !== "auto") {
    ignored("background", call.background);
  }
  if (call.outputCompression !== undefined && !takesCompression) {
    ignored("output_compression", call.outputCompression);
  }
  if (call.moderation === "low") ignored("moderation", call.moderation);
  return warnings;
}

function usageOf(metadata: unknown): TokenUsage | undefined {
  if (!isObject(metadata)) return undefined;
  const inputTokens = numberOf(metadata.promptTokenCount) ?? 0;
  // Thinking tokens are billed as output.
  const outputTokens =
    (numberOf(metadata.candidatesTokenCount) ?? 0) + (numberOf(metadata.thoughtsTokenCount) ?? 0);
  const usage: TokenUsage = {
    inputTokens,
    outputTokens,
    totalTokens: numberOf(metadata.totalTokenCount) ?? inputTokens + outputTokens,
  };
  if (Array.isArray(metadata.promptTokensDetails)) {
    let text = 0;
    let image = 0;
    for (const detail of metadata.promptTokensDetails) {
      if (!isObject(detail)) continue;
      const tokens = numberOf(detail.tokenCount) ?? 0;
      if (detail.modality === "TEXT") text += tokens;
      else if (detail.modality === "IMAGE") image += tokens;
    }
    usage.inputTextTokens = text;
    usage.inputImageTokens = image;
  }
  return usage;
}

/**
 * A Google 400 is a content-policy refusal when its message says so, as Imagen's do
 * ("… violate Google's Responsible AI practices …"). Messages about the API key are not.
 */
function isSafetyRejection(status: number, upstream: UpstreamErrorBody): boolean {
  const message = upstream.message ?? "";
  return (
    status === 400 &&
    !isKeyRejection(message) &&
    /safety|responsible ai|prohibited|blocked/i.test(message)
  );
}

function isKeyRejection(message: string): boolean {
  return /\bAPI key\b/i.test(message);
}

/**
 * Google answers a wrong or expired key with 400 INVALID_ARGUMENT ("API key not valid. Please
 * pass a valid API key."), not 401. That is about the hub's credentials, so it becomes the same
 * auth failure as a 401/403, without the upstream message.
 */
function keyRejectionAsAuthFailure(error: unknown): unknown {
  if (!(error instanceof HubError)) return error;
  const cause = error.cause;
  if (!isObject(cause) || cause.status !== 400 || !isObject(cause.upstream)) return error;
  const message = cause.upstream.message;
  if (typeof message !== "string" || !isKeyRejection(message)) return error;
  return upstreamFailed("Google refused the hub's credentials.", {
    code: "upstream_auth_failed",
    // An invalid key, as Google says it: to credential health the same as a 401.
    upstreamStatus: 401,
    cause,
  });
}

function invalidModelList(message: string): HubError {
  return upstreamFailed(message, { code: "upstream_invalid_response" });
}

function parseSize(size: string | undefined): { width: number; height: number } | undefined {
  const match = /^(\d+)x(\d+)$/.exec(size ?? "");
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  return width > 0 && height > 0 ? { width, height } : undefined;
}

function imageMimeTypeOf(value: unknown): ImageMimeType | undefined {
  const mimeType = typeof value === "string" ? value.toLowerCase() : "";
  if (mimeType === "image/png" || mimeType === "image/jpeg" || mimeType === "image/webp") {
    return mimeType;
  }
  return undefined;
}

function numberOf(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
