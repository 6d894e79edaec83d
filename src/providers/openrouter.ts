/**
 * OpenRouter's dedicated Image API (openrouter.ai/docs/guides/overview/multimodal/image-generation):
 * `POST /images` with `{model, prompt, n, size | aspect_ratio + resolution, quality,
 * output_format, background, output_compression, seed, input_references}`, answered with
 * `{created, data: [{b64_json, media_type}], usage: {prompt_tokens, completion_tokens, cost}}`.
 * OpenRouter's docs recommend it over the older route (chat completions with
 * `modalities: ["image", "text"]` and images as `data:` URLs in `message.images`): one request
 * shape for every image model, `n` up to 10, and all-or-nothing billing (a generation that does
 * not complete is a 502, never a partial charge). `listModels` reads `GET /images/models`, which
 * lists image models only.
 *
 * Sizes: OpenAI's models on OpenRouter take explicit pixels (`size: "1536x1024"`, which the docs
 * call authoritative); every other model is asked by `aspect_ratio` and `resolution` tier, since
 * OpenRouter derives their pixels per provider and the catalog lists the sizes that come back
 * (Gemini 3: 1K, 2K, 4K at each ratio, see the table in google.ts).
 *
 * @example
 * const openrouter = createOpenRouterProvider({ apiKey, baseURL: OPENROUTER_DEFAULT_BASE_URL });
 * await openrouter.generate({ ...call, model: "google/gemini-3.1-flash-image", size: "1376x768" });
 */
import {
  contentPolicy,
  HubError,
  invalidRequest,
  upstreamFailed,
  upstreamTimeout,
} from "../errors.ts";
import { base64Length } from "./base64.ts";
import { aspectRatioOfSize, imageSizeOfSize } from "./google.ts";
import { cutStringFields } from "./json-cut.ts";
import { jsonRequestInit, sniffBase64MimeType } from "./openai-images.ts";
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
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  parseUpstreamJson,
  requestUpstreamJson,
  requestUpstreamPieces,
  type UpstreamErrorBody,
} from "./upstream.ts";

export const OPENROUTER_DEFAULT_BASE_URL = "https://openrouter.ai/api/v1";

/** The aspect ratios of the Image API's `aspect_ratio` (OpenAPI `ImageGenerationRequest`). */
export const OPENROUTER_ASPECT_RATIOS = [
  "1:1",
  "1:2",
  "1:4",
  "1:8",
  "2:1",
  "2:3",
  "3:2",
  "3:4",
  "4:1",
  "4:3",
  "4:5",
  "5:4",
  "8:1",
  "9:16",
  "16:9",
  "9:19.5",
  "19.5:9",
  "9:20",
  "20:9",
  "9:21",
  "21:9",
] as const;

/**
 * Vendor options the Image API takes beyond OpenAI's, for the catalog's `extra_options`. `seed`
 * is an integer the docs bound no further; determinism "is not guaranteed for all providers".
 */
export const OPENROUTER_EXTRA_OPTIONS = {
  seed: {
    type: "integer",
    minimum: 0,
    maximum: 2_147_483_647,
    description: "Sample deterministically where the provider can.",
  },
} as const;

export interface OpenRouterOptions extends HttpProviderOptions {
  /** `HTTP-Referer`: the app's URL, for OpenRouter's rankings (optional). */
  appUrl?: string;
  /** `X-OpenRouter-Title`: the app's name in OpenRouter's rankings (optional). */
  appTitle?: string;
}

/** Messages of a 403 that is a content refusal, not a key problem (moderation, guardrails). */
const REFUSAL_MESSAGE = /flagged|moderation|blocked|content polic|safety|prohibited/i;
/** How OpenRouter says a model id is unknown (400 `model_not_found`, not 404). */
const UNKNOWN_MODEL_MESSAGE = /not a valid model|model .*not (?:found|exist)|no endpoints found/i;

export function createOpenRouterProvider(options: OpenRouterOptions): ImageProvider {
  const baseURL = (options.baseURL || OPENROUTER_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.apiKey}`,
    accept: "application/json",
  };
  if (options.appUrl) headers["http-referer"] = options.appUrl;
  if (options.appTitle) headers["x-openrouter-title"] = options.appTitle;

  return {
    name: "openrouter",
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      if (call.mask) {
        throw invalidRequest(
          `${call.model} takes no mask on OpenRouter: describe the change in the prompt.`,
          "mask",
        );
      }
      const { body, warnings } = bodyOf(call);
      const request = {
        provider: "OpenRouter",
        dispatcher: options.dispatcher,
        byteBudget: options.byteBudget,
        url: `${baseURL}/images`,
        init: jsonRequestInit(headers, body),
        timeoutMs: call.timeoutMs ?? timeoutMs,
        maxReplyBytes: options.maxReplyBytes,
        signal: call.signal,
        isContentPolicy,
      };
      let bytes: Buffer[];
      try {
        bytes = await requestUpstreamPieces(request);
      } catch (error) {
        throw openRouterFailure(error);
      }
      const result = readImagesReply(bytes);
      if (result.images.length < call.count) {
        warnings.push(`OpenRouter made ${result.images.length} of the ${call.count} images asked.`);
      }
      return { images: result.images.slice(0, call.count), usage: result.usage, warnings };
    },
    async listModels({ signal, timeoutMs: listTimeoutMs }) {
      signal.throwIfAborted();
      let reply: unknown;
      try {
        reply = await requestUpstreamJson({
          provider: "OpenRouter",
          dispatcher: options.dispatcher,
          byteBudget: options.byteBudget,
          url: `${baseURL}/images/models`,
          init: { method: "GET", headers },
          timeoutMs: listTimeoutMs,
          maxReplyBytes: options.maxReplyBytes,
          signal,
        });
      } catch (error) {
        throw openRouterFailure(error);
      }
      return modelsOf(reply);
    },
  };
}

type BodyValue = string | number | boolean | object;

/** The request body, and the call's hints the Image API has no field for. */
function bodyOf(call: ProviderCall): { body: Record<string, BodyValue>; warnings: string[] } {
  const body: Record<string, BodyValue> = { model: call.model, prompt: call.prompt };
  const warnings: string[] = [];
  // `n` is an upper bound; single-image providers reject n > 1, so 1 is left to the default.
  if (call.count > 1) body.n = call.count;
  Object.assign(body, sizeFieldsOf(call));
  if (call.quality !== undefined) body.quality = call.quality;
  if (call.background !== undefined) body.background = call.background;
  if (call.outputFormat !== undefined) body.output_format = call.outputFormat;
  if (call.outputCompression !== undefined) body.output_compression = call.outputCompression;
  if (call.style !== undefined) {
    warnings.push(`OpenRouter's Image API has no style; '${call.style}' was not sent.`);
  }
  if (call.moderation !== undefined && call.moderation !== "auto") {
    warnings.push(`OpenRouter's Image API has no moderation; '${call.moderation}' was not sent.`);
  }
  for (const [option, value] of Object.entries(call.extra ?? {})) {
    if (Object.hasOwn(OPENROUTER_EXTRA_OPTIONS, option) && typeof value === "number") {
      body[option] = value;
    } else {
      warnings.push(`OpenRouter takes no vendor option '${option}'; it was not sent.`);
    }
  }
  if (call.images.length > 0) {
    body.input_references = call.images.map((image) => ({
      type: "image_url",
      image_url: { url: `data:${image.mimeType};base64,${image.bytes.toString("base64")}` },
    }));
  }
  return { body, warnings };
}

/**
 * `size` for OpenAI's models (explicit pixels), `aspect_ratio` and `resolution` for the others:
 * 1376x768 → 16:9 at 1K, 2752x1536 → 16:9 at 2K (tiers by area, as google.ts measures them).
 */
function sizeFieldsOf(call: ProviderCall): Record<string, string> {
  if (call.size === undefined) return {};
  if (call.model.startsWith("openai/")) return { size: call.size };
  const aspectRatio = aspectRatioOfSize(call.size, OPENROUTER_ASPECT_RATIOS);
  const resolution = imageSizeOfSize(call.size);
  if (!aspectRatio || !resolution) {
    throw invalidRequest(`Size ${call.size} matches no aspect ratio OpenRouter takes.`, "size");
  }
  return { aspect_ratio: aspectRatio, resolution };
}

/** A 4xx whose message says a filter refused the prompt or the image. */
function isContentPolicy(_status: number, upstream: UpstreamErrorBody): boolean {
  return REFUSAL_MESSAGE.test(upstream.message ?? "");
}

/**
 * OpenRouter's statuses where upstream.ts's mapping (made for OpenAI) would mislead:
 * - 402: the hub's OpenRouter account has no credit. That is the operator's problem, not the
 *   client's, so it is a 502 naming it, not a 402 (the client owes nothing).
 * - 403 with a moderation or guardrail message: a content refusal, not a key problem.
 * - 400 saying the model is unknown: OpenRouter's `model_not_found` is a 400.
 * - 408: OpenRouter's own timeout.
 * - any other 4xx: `error.code` is the status as a number, which is no code for a client.
 */
function openRouterFailure(error: unknown): unknown {
  if (!(error instanceof HubError)) return error;
  const cause = error.cause as { status?: number; upstream?: UpstreamErrorBody } | undefined;
  const status = cause?.status;
  const message = cause?.upstream?.message ?? "";
  if (status === 402) {
    return upstreamFailed("The hub's OpenRouter account has run out of credit.", {
      code: "upstream_insufficient_credit",
      upstreamStatus: 402,
      cause,
    });
  }
  if (status === 403 && REFUSAL_MESSAGE.test(message)) {
    return contentPolicy(message, cause);
  }
  if (status === 400 && UNKNOWN_MODEL_MESSAGE.test(message)) {
    return upstreamFailed(`OpenRouter does not know the model: ${message}`, {
      code: "upstream_model_not_found",
      cause,
    });
  }
  if (status === 408) return upstreamTimeout("OpenRouter timed out.", cause);
  if (error.code === String(status)) {
    return new HubError(error.message, {
      status: error.status,
      type: error.type,
      code: "upstream_rejected",
      param: error.param,
      cause,
    });
  }
  return error;
}

/** `data[].id` of `GET /images/models`; entries without a string id are skipped. */
function modelsOf(reply: unknown): UpstreamModel[] {
  const data = (reply as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) {
    throw upstreamFailed("OpenRouter answered a model list without data.", {
      code: "upstream_invalid_response",
    });
  }
  const models: UpstreamModel[] = [];
  for (const entry of data) {
    const id = (entry as { id?: unknown } | null)?.id;
    if (typeof id === "string" && id !== "") models.push({ id, shutdownDate: null });
  }
  return models;
}

/**
 * The images of a reply, base64 kept as the bytes that arrived (json-cut.ts), with their type
 * from `media_type` or, where OpenRouter could not tell, from their first bytes. No image at
 * all is `upstream_no_image`: OpenRouter answered 200 and made nothing.
 */
function readImagesReply(bytes: Buffer[]): Omit<ProviderResult, "warnings"> {
  const cut = cutStringFields(bytes, "b64_json");
  const reply = cut?.skeleton ?? parseUpstreamJson({ provider: "OpenRouter" }, bytes);
  const root = (typeof reply === "object" && reply !== null ? reply : {}) as Record<
    string,
    unknown
  >;
  const data = Array.isArray(root.data) ? root.data : [];
  const images: ProviderImage[] = [];
  let nextCut = 0;
  for (const item of data) {
    const entry = (typeof item === "object" && item !== null ? item : {}) as Record<
      string,
      unknown
    >;
    if (typeof entry.b64_json !== "string") continue;
    const base64 = cut ? cut.values[nextCut++] : entry.b64_json;
    if (base64 === undefined || base64Length(base64) === 0) continue;
    const mimeType = mimeTypeOf(entry.media_type) ?? sniffBase64MimeType(base64);
    if (!mimeType) {
      throw upstreamFailed(`OpenRouter answered an image of a type the hub does not serve.`, {
        code: "upstream_invalid_response",
        cause: { mediaType: entry.media_type },
      });
    }
    images.push({ kind: "base64", base64, mimeType, revisedPrompt: undefined });
  }
  if (images.length === 0) {
    throw upstreamFailed("OpenRouter answered without an image.", { code: "upstream_no_image" });
  }
  return { images, usage: usageOf(root.usage) };
}

function mimeTypeOf(value: unknown): ImageMimeType | undefined {
  return value === "image/png" || value === "image/jpeg" || value === "image/webp"
    ? value
    : undefined;
}

/**
 * OpenRouter's usage (`prompt_tokens`, `completion_tokens`). Its `cost` (USD, exact) has no place
 * in TokenUsage yet, so billing settles from tokens and the price list.
 */
function usageOf(value: unknown): TokenUsage | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const usage = value as Record<string, unknown>;
  const input = usage.prompt_tokens;
  const output = usage.completion_tokens;
  if (typeof input !== "number" || typeof output !== "number") return undefined;
  // The Image API's prompt_tokens_details has no image/text split (audio, cached, file, video).
  return {
    inputTokens: input,
    outputTokens: output,
    totalTokens: typeof usage.total_tokens === "number" ? usage.total_tokens : input + output,
  };
}
