/**
 * Stability AI's Stable Image API (https://api.stability.ai, the API root): one endpoint per
 * service, `POST /v2beta/stable-image/generate/{ultra|core|sd3}`, the SD 3.5 models named by a
 * `model` field on `sd3`. Requests are multipart/form-data only, even without a file; Stability
 * refuses a JSON body. The adapter asks for `Accept: application/json`, so the image comes as
 * base64 in `image` next to `finish_reason` and `seed` (with `image/*` those two travel as headers,
 * which the shared upstream client does not return, and a filtered image could not be told apart).
 *
 * Stability takes an aspect ratio, not a size: `STABILITY_SIZES` lists the pixel size made for
 * each `aspect_ratio`, and the catalog lists exactly those sizes. One image per call (the hub fans
 * out). Edits are image-to-image on the generate endpoints (Ultra, and `mode=image-to-image` on
 * sd3), with `strength`, declared as an extra option; Core takes no image.
 *
 * Where Stability departs from what the shared error mapping assumes:
 * - a refused prompt is 403 `{"name":"content_moderation"}`: a content-policy refusal, not the
 *   hub's credentials (a 403 is otherwise read as one);
 * - `finish_reason: CONTENT_FILTERED` on a 200 is a blurred image: a content-policy refusal too;
 * - 402 is the hub's Stability account out of credits: an upstream failure, not the client's.
 *
 * @example
 * const stability = createStabilityProvider({ apiKey, baseURL: "https://api.stability.ai" });
 * await stability.generate(call); // call.model "sd3.5-large", call.size "1344x768" → 16:9
 */
import { contentPolicy, HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import { EXTENSION_OF_MIME_TYPE, MIME_TYPE_OF_FORMAT } from "../image-formats.ts";
import type { ExtraOption } from "../images/extra-options.ts";
import { base64Length } from "./base64.ts";
import { cutStringFields } from "./json-cut.ts";
import { encodeMultipart, type MultipartPart } from "./multipart.ts";
import { invalidResponse, sniffBase64MimeType } from "./openai-images.ts";
import type {
  Base64,
  HttpProviderOptions,
  ImageProvider,
  InputImage,
  OutputFormat,
  ProviderCall,
  ProviderResult,
} from "./types.ts";
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  parseUpstreamJson,
  requestUpstreamPieces,
  type UpstreamErrorBody,
} from "./upstream.ts";

export const STABILITY_DEFAULT_BASE_URL = "https://api.stability.ai";

/**
 * The pixel size made for each `aspect_ratio` (Stability's enum: 16:9 1:1 21:9 2:3 3:2 4:5 5:4
 * 9:16 9:21). Stability documents the ratios and about one megapixel, not the pixels: these are
 * the SD3-family one-megapixel buckets its API is reported to return (1:1 → 1024x1024).
 */
export const STABILITY_SIZES = {
  "1:1": "1024x1024",
  "16:9": "1344x768",
  "9:16": "768x1344",
  "21:9": "1536x640",
  "9:21": "640x1536",
  "3:2": "1216x832",
  "2:3": "832x1216",
  "5:4": "1088x896",
  "4:5": "896x1088",
} as const;

const RATIO_OF_SIZE = new Map<string, string>(
  Object.entries(STABILITY_SIZES).map(([ratio, size]) => [size, ratio]),
);

export const STABILITY_STYLE_PRESETS = [
  "3d-model",
  "analog-film",
  "anime",
  "cinematic",
  "comic-book",
  "digital-art",
  "enhance",
  "fantasy-art",
  "isometric",
  "line-art",
  "low-poly",
  "modeling-compound",
  "neon-punk",
  "origami",
  "photographic",
  "pixel-art",
  "tile-texture",
] as const;

/** Vendor options by Stability's names, for the catalog's `extra_options` (each model a subset). */
export const STABILITY_EXTRA_OPTIONS = {
  seed: {
    type: "integer",
    minimum: 0,
    maximum: 4294967294,
    description: "Noise seed; 0 or none for a random one.",
  },
  negative_prompt: {
    type: "string",
    max_length: 10000,
    description: "What the image should not show.",
  },
  style_preset: {
    type: "string",
    enum: [...STABILITY_STYLE_PRESETS],
    description: "Guides the model towards a style.",
  },
  strength: {
    type: "number",
    minimum: 0,
    maximum: 1,
    description:
      "Edits only: how far the result may depart from the input image (0 keeps it, 1 ignores it); 0.5 if unset.",
  },
  cfg_scale: {
    type: "number",
    minimum: 1,
    maximum: 10,
    description: "SD 3.5 models only: how closely to follow the prompt.",
  },
} as const satisfies Record<string, ExtraOption>;

/** The `strength` of an edit that names none (Stability requires one with an image). */
export const DEFAULT_EDIT_STRENGTH = 0.5;

type Service = "ultra" | "core" | "sd3";

interface ServiceRules {
  /** The extra options the service takes on a generation. */
  extras: readonly string[];
  /** Whether it takes an input image (image-to-image). */
  edits: boolean;
  formats: readonly OutputFormat[];
}

const SERVICES: Record<Service, ServiceRules> = {
  ultra: {
    extras: ["seed", "negative_prompt", "style_preset"],
    edits: true,
    formats: ["png", "jpeg", "webp"],
  },
  core: {
    extras: ["seed", "negative_prompt", "style_preset"],
    edits: false,
    formats: ["png", "jpeg", "webp"],
  },
  sd3: {
    extras: ["seed", "negative_prompt", "style_preset", "cfg_scale"],
    edits: true,
    formats: ["png", "jpeg"],
  },
};

/** `stable-image-ultra` and `stable-image-core` by name; any other id is an `sd3` model. */
function serviceOf(model: string): Service {
  if (model === "stable-image-ultra" || model === "ultra") return "ultra";
  if (model === "stable-image-core" || model === "core") return "core";
  return "sd3";
}

export function createStabilityProvider(options: HttpProviderOptions): ImageProvider {
  const baseURL = (options.baseURL || STABILITY_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;

  return {
    name: "stability",
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      if (call.count !== 1) {
        throw invalidRequest(`${call.model} makes one image per call, not ${call.count}.`, "n");
      }
      const service = serviceOf(call.model);
      const { parts, warnings, format } = formOf(call, service);
      const { body, contentType } = encodeMultipart(parts);
      const headers: Record<string, string> = {
        authorization: `Bearer ${options.apiKey}`,
        accept: "application/json",
        "content-type": contentType,
      };
      // Stability's field for the end user, to name them when it reports abuse. A header value
      // must be visible ASCII; an id that is not is left out rather than failing the call.
      const user = call.user?.slice(0, 256);
      if (user !== undefined && /^[\x20-\x7e]+$/.test(user)) {
        headers["stability-client-user-id"] = user;
      }
      let bytes: Buffer[];
      try {
        bytes = await requestUpstreamPieces({
          provider: "Stability AI",
          dispatcher: options.dispatcher,
          byteBudget: options.byteBudget,
          url: `${baseURL}/v2beta/stable-image/generate/${service}`,
          init: { method: "POST", headers, body },
          timeoutMs: call.timeoutMs ?? timeoutMs,
          maxReplyBytes: options.maxReplyBytes,
          signal: call.signal,
        });
      } catch (error) {
        throw stabilityFailure(error);
      }
      return { images: [imageOf(bytes, format)], usage: undefined, warnings };
    },
  };
}

/** The form fields for the call, the hints it could not pass on, and the format asked for. */
function formOf(call: ProviderCall, service: Service) {
  const rules = SERVICES[service];
  const warnings: string[] = [];
  const ignored = (name: string, value: unknown) =>
    warnings.push(`${call.model} takes no '${name}'; '${String(value)}' was not sent.`);
  if (call.mask) {
    throw invalidRequest(`${call.model} takes no mask: describe the change in the prompt.`, "mask");
  }
  if (call.images.length > 1) {
    throw invalidRequest(`${call.model} edits one image at a time.`, "image");
  }
  const input = call.images[0];
  if (input && !rules.edits) {
    throw invalidRequest(
      `${call.model} makes images from a prompt only; it takes no image.`,
      "image",
    );
  }
  const format = call.outputFormat ?? "png";
  if (!rules.formats.includes(format)) {
    throw invalidRequest(
      `${call.model} makes ${rules.formats.join(", ")} images, not ${format}.`,
      "output_format",
    );
  }

  const parts: MultipartPart[] = [{ name: "prompt", value: call.prompt }];
  if (service === "sd3") {
    parts.push({ name: "model", value: call.model });
    parts.push({ name: "mode", value: input ? "image-to-image" : "text-to-image" });
  }
  const ratio = aspectRatioOf(call, input);
  if (ratio !== undefined) parts.push({ name: "aspect_ratio", value: ratio });
  parts.push({ name: "output_format", value: format });

  const extra = call.extra ?? {};
  for (const [name, value] of Object.entries(extra)) {
    if (name === "strength") continue;
    if (rules.extras.includes(name)) parts.push({ name, value: String(value) });
    else ignored(name, value);
  }
  if (input) {
    parts.push({
      name: "image",
      filename: `image.${EXTENSION_OF_MIME_TYPE[input.mimeType]}`,
      contentType: input.mimeType,
      bytes: input.bytes,
    });
    parts.push({ name: "strength", value: String(extra.strength ?? DEFAULT_EDIT_STRENGTH) });
  } else if (extra.strength !== undefined) {
    warnings.push(`'strength' applies to edits only; '${String(extra.strength)}' was not sent.`);
  }

  if (call.quality !== undefined) ignored("quality", call.quality);
  if (call.style !== undefined) ignored("style", call.style);
  if (call.background !== undefined && call.background !== "auto") {
    ignored("background", call.background);
  }
  if (call.outputCompression !== undefined) ignored("output_compression", call.outputCompression);
  if (call.moderation === "low") ignored("moderation", call.moderation);
  return { parts, warnings, format };
}

/**
 * The `aspect_ratio` of the call's size. An edit takes its shape from the input image (the sd3
 * endpoint refuses `aspect_ratio` with an image), so there a size of another ratio is refused
 * rather than answered with an image of a shape the client did not ask for.
 */
function aspectRatioOf(call: ProviderCall, input: InputImage | undefined): string | undefined {
  if (call.size === undefined) return undefined;
  const ratio = RATIO_OF_SIZE.get(call.size);
  if (ratio === undefined) {
    const sizes = Object.values(STABILITY_SIZES).join(", ");
    throw invalidRequest(`${call.model} makes ${sizes}; not ${call.size}.`, "size");
  }
  if (!input) return ratio;
  if (nearestRatio(input.width, input.height) !== ratio) {
    throw invalidRequest(
      `${call.model} edits an image at that image's aspect ratio; size ${call.size} is ${ratio}, the image ${input.width}x${input.height} is not.`,
      "size",
    );
  }
  return undefined;
}

/** The ratio among Stability's whose size is nearest in shape to `width`×`height`. */
export function nearestRatio(width: number, height: number): keyof typeof STABILITY_SIZES {
  let nearest: keyof typeof STABILITY_SIZES = "1:1";
  let distance = Number.POSITIVE_INFINITY;
  for (const [ratio, size] of Object.entries(STABILITY_SIZES)) {
    const [w, h] = size.split("x").map(Number) as [number, number];
    const gap = Math.abs(Math.log(width / height) - Math.log(w / h));
    if (gap < distance) [nearest, distance] = [ratio as keyof typeof STABILITY_SIZES, gap];
  }
  return nearest;
}

/** Reads `{image, finish_reason, seed}`, the base64 kept as the bytes that came. */
function imageOf(bytes: Buffer[], format: OutputFormat) {
  const cut = cutStringFields(bytes, "image");
  const usable = cut !== undefined && cut.values.length === 1;
  const reply = usable ? cut.skeleton : parseUpstreamJson({ provider: "Stability AI" }, bytes);
  const root =
    typeof reply === "object" && reply !== null ? (reply as Record<string, unknown>) : {};
  if (root.finish_reason === "CONTENT_FILTERED") {
    // Stability blurs the image and still answers 200: never deliver it.
    throw contentPolicy("Stability AI's content filter withheld the image.", {
      finishReason: root.finish_reason,
      seed: root.seed,
    });
  }
  const base64: Base64 | undefined =
    usable && cut.values[0]?.length ? cut.values[0] : stringOrUndefined(root.image);
  if (base64 === undefined || base64Length(base64) === 0) {
    throw upstreamFailed("Stability AI answered without an image.", { code: "upstream_no_image" });
  }
  if (root.finish_reason !== undefined && root.finish_reason !== "SUCCESS") {
    throw invalidResponse(`Stability AI finished with ${String(root.finish_reason)}.`);
  }
  const mimeType = sniffBase64MimeType(base64) ?? MIME_TYPE_OF_FORMAT[format];
  return { kind: "base64" as const, base64, mimeType, revisedPrompt: undefined };
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * Stability's statuses the shared mapping reads another way: a moderation 403 is a refusal of
 * the prompt (not of the key, so it must not mark the credential refused), and 402 is the hub's
 * account out of credits, which the client does not owe (a 502 naming it, not a 400).
 */
function stabilityFailure(error: unknown): unknown {
  if (!(error instanceof HubError)) return error;
  const cause = error.cause as { status?: number; upstream?: UpstreamErrorBody } | undefined;
  if (cause?.status === 403 && cause.upstream?.code === "content_moderation") {
    return contentPolicy(
      cause.upstream.message ?? "Stability AI's content moderation refused the request.",
      cause,
    );
  }
  if (cause?.status === 402) {
    return upstreamFailed("The hub's Stability AI account has run out of credits.", {
      code: "upstream_insufficient_credit",
      upstreamStatus: 402,
      cause,
    });
  }
  return error;
}
