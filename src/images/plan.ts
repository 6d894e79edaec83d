/**
 * Turns a client's request into a validated job against the catalog. Pure: no I/O, no clock,
 * so every rule here is a row in a table test (test/images/plan.test.ts).
 *
 * What a model cannot honour splits two ways: a hint it has no notion of (a style for Imagen)
 * becomes a warning and is not sent; anything that would change what the client gets (a size,
 * an edit, a transparent background) is a 400 naming the parameter.
 */

import { invalidRequest, modelNotFound } from "../errors.ts";
import type { OutputFormat } from "../providers/types.ts";
import type { Catalog, ModelSpec, ProviderName, SizeRule } from "./catalog.ts";
import { checkExtra } from "./extra-options.ts";
import type { Serving } from "./lifecycle.ts";
import { sizeAllowed } from "./model-fields.ts";
import type { ImageGenerationRequest } from "./schema.ts";
import { nearestSize, substituteJob } from "./substitute.ts";

/** An input image as the client sent it: text (URL, data URL, base64) or multipart bytes. */
export type ImageSource = string | Buffer;

export interface ImageJobRequest extends Omit<ImageGenerationRequest, "image" | "mask"> {
  image?: ImageSource | ImageSource[];
  mask?: ImageSource;
}

export interface ImageJob {
  /** The model that serves the request (a retired model's successor, see `substitutedFor`). */
  model: ModelSpec;
  /** The name the client used, echoed in records. */
  requestedModel: string;
  /** The model the client named when it is retired and `model` serves in its place. */
  substitutedFor: ModelSpec | undefined;
  /**
   * What the client gets of a substituted request: the size it asked for where the successor
   * made the nearest size it can (resized by the hub), and the format it asked for (PNG when it
   * named none). Undefined: images are delivered as the model made them.
   */
  deliver:
    | { size: { width: number; height: number } | undefined; format: OutputFormat }
    | undefined;
  prompt: string;
  n: number;
  /** Counts per upstream call: n split by the model's maxPerCall. */
  calls: number[];
  /** `WxH`, or undefined for `auto` (the model chooses). */
  size: `${number}x${number}` | undefined;
  quality: string | undefined;
  style: string | undefined;
  background: "transparent" | "opaque" | "auto" | undefined;
  outputFormat: OutputFormat | undefined;
  outputCompression: number | undefined;
  moderation: "low" | "auto" | undefined;
  responseFormat: "url" | "b64_json";
  user: string | undefined;
  /** Vendor options the model declares, as the client sent them (images/extra-options.ts). */
  extra: Readonly<Record<string, unknown>> | undefined;
  images: ImageSource[];
  mask: ImageSource | undefined;
  warnings: string[];
}

export interface PlanOptions {
  defaultModel: string;
  /** Whether the hub has credentials for a provider; models without are not available. */
  isProviderConfigured: (provider: ProviderName) => boolean;
  /**
   * Which model serves a request for `model`: itself, or a retired model's successor
   * (images/lifecycle.ts). Every model serves itself when this is not given.
   */
  servingModel?: (model: ModelSpec) => Serving;
}

/** GPT image models take low/medium/high/auto; clients written for DALL·E send standard/hd. */
export const QUALITY_SYNONYMS: Record<string, string> = { standard: "medium", hd: "high" };

export function planImageJob(
  catalog: Catalog,
  request: ImageJobRequest,
  options: PlanOptions,
): ImageJob {
  const requestedModel = (request.model ?? options.defaultModel).trim();
  const model = catalog.find(requestedModel);
  if (!model) throw modelNotFound(requestedModel);
  const serving = options.servingModel?.(model) ?? { model, retired: [] };
  if (!options.isProviderConfigured(serving.model.provider)) {
    const served = serving.model === model ? "its" : `its successor ${serving.model.id}'s`;
    throw modelNotFound(
      requestedModel,
      `is not available: ${served} provider (${serving.model.provider}) has no credentials on this hub`,
    );
  }
  // Validated against the model the client named: what it may ask is what that model takes.
  const job = planFor(model, request, requestedModel);
  if (serving.model === model) return job;
  return substituteJob(job, request, serving, (successorRequest) =>
    planFor(serving.model, successorRequest, requestedModel),
  );
}

/** The job of `request` on `model`, every parameter checked against what the model takes. */
function planFor(model: ModelSpec, request: ImageJobRequest, requestedModel: string): ImageJob {
  if (request.stream === true) {
    throw invalidRequest("Streaming is not supported; send stream: false or omit it.", "stream");
  }
  const warnings: string[] = [];
  const n = request.n ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 10) {
    throw invalidRequest("Invalid 'n': must be a whole number from 1 to 10.", "n", "invalid_value");
  }
  const images = request.image === undefined ? [] : [request.image].flat();

  checkPrompt(model, request.prompt);
  checkEdit(model, images, request.mask);
  const outputFormat = planOutputFormat(model, request);
  const background = planBackground(model, request.background, outputFormat, warnings);

  if (request.output_compression !== undefined && !model.compression) {
    warnings.push(`${model.id} does not take output_compression; it was ignored.`);
  }
  if (request.moderation !== undefined && !model.moderation) {
    warnings.push(`${model.id} does not take moderation; it was ignored.`);
  }

  return {
    model,
    requestedModel,
    substitutedFor: undefined,
    ...planSize(model, request.size, outputFormat, warnings),
    prompt: request.prompt,
    n,
    calls: splitIntoCalls(n, model.maxPerCall),
    quality: planQuality(model, request.quality, warnings),
    style: planStyle(model, request.style, warnings),
    background,
    outputFormat,
    outputCompression: model.compression ? request.output_compression : undefined,
    moderation: model.moderation ? request.moderation : undefined,
    responseFormat: request.response_format ?? "url",
    user: request.user,
    extra: checkExtra(model, request.extra as Readonly<Record<string, unknown>> | undefined),
    images,
    mask: request.mask,
    warnings,
  };
}

/** Splits n images into upstream calls of at most `maxPerCall`: 10 by 4 is [4, 4, 2]. */
export function splitIntoCalls(n: number, maxPerCall: number): number[] {
  const calls: number[] = [];
  for (let left = n; left > 0; left -= maxPerCall) calls.push(Math.min(left, maxPerCall));
  return calls;
}

function checkPrompt(model: ModelSpec, prompt: string): void {
  if (prompt.trim().length === 0) {
    throw invalidRequest("Invalid 'prompt': it must not be empty.", "prompt", "empty_string");
  }
  // Characters, as the schema and the providers count them: code points, not UTF-16 units.
  const length = [...prompt].length;
  if (length > model.maxPromptLength) {
    throw invalidRequest(
      `Invalid 'prompt': ${model.id} takes at most ${model.maxPromptLength} characters, ` +
        `but got ${length}.`,
      "prompt",
      "string_above_max_length",
    );
  }
}

function checkEdit(model: ModelSpec, images: ImageSource[], mask: ImageSource | undefined): void {
  if (images.length > 0 && model.maxInputImages === 0) {
    throw invalidRequest(
      `Model '${model.id}' cannot edit images; remove 'image' or choose a model that edits ` +
        "(see GET /api/models).",
      "image",
      "edits_not_supported",
    );
  }
  if (images.length > model.maxInputImages) {
    throw invalidRequest(
      `Model '${model.id}' takes at most ${model.maxInputImages} input image(s), ` +
        `but got ${images.length}.`,
      "image",
      "too_many_images",
    );
  }
  if (mask !== undefined) {
    if (images.length === 0) {
      throw invalidRequest("A 'mask' needs an 'image' to apply to.", "mask", "mask_without_image");
    }
    if (!model.masks) {
      throw invalidRequest(
        `Model '${model.id}' does not take a mask.`,
        "mask",
        "unsupported_value",
      );
    }
  }
}

/** The largest side the hub resizes an image to (a model that fits sizes, see `planSize`). */
const MAX_FIT_SIDE = 4096;

/**
 * The size to ask the model for, and what the client gets when that is not the size it asked:
 * a model that declares `resize_to_fit` (vendors that take aspect ratios) makes the size nearest
 * to the one asked, and the hub resizes it; any other model answers 400 naming its sizes.
 */
function planSize(
  model: ModelSpec,
  requested: string | undefined,
  outputFormat: OutputFormat | undefined,
  warnings: string[],
): Pick<ImageJob, "size" | "deliver"> {
  const size = requested ?? model.defaultSize;
  if (size === "auto") {
    if (model.sizes.auto) return { size: undefined, deliver: undefined };
    throw invalidSize(model, size);
  }
  const match = /^(\d+)x(\d+)$/.exec(size);
  if (!match) throw invalidSize(model, size);
  const [width, height] = [Number(match[1]), Number(match[2])];
  if (sizeAllowed(model.sizes, size)) return { size: `${width}x${height}`, deliver: undefined };
  const nearest =
    model.resizeToFit && Math.max(width, height) <= MAX_FIT_SIDE
      ? nearestSize(model.sizes, width, height)
      : undefined;
  if (nearest === undefined) throw invalidSize(model, size);
  warnings.push(
    `${model.id} cannot make ${size}: it made ${nearest}, resized by the hub to ${size}.`,
  );
  return {
    size: nearest as `${number}x${number}`,
    deliver: { size: { width, height }, format: outputFormat ?? model.outputFormats[0] ?? "png" },
  };
}

function invalidSize(model: ModelSpec, size: string) {
  return invalidRequest(
    `Invalid 'size': '${size}' is not supported by ${model.id}. ${describeSizes(model.sizes)}`,
    "size",
    "invalid_size",
  );
}

/** Human words for a size rule, used in errors and the model list. */
export function describeSizes(rule: SizeRule): string {
  const auto = rule.auto ? " or auto" : "";
  if (rule.kind === "list") return `Supported: ${rule.sizes.join(", ")}${auto}.`;
  const ratio = (value: number) => (value >= 1 ? `${value}:1` : `1:${Math.round(1 / value)}`);
  const multiple = rule.multipleOf > 1 ? `both sides multiples of ${rule.multipleOf}, ` : "";
  return (
    `Supported: any WxH with ${multiple}the longer side at most ${rule.maxSide}, ` +
    `${rule.minPixels} to ${rule.maxPixels} pixels and an aspect ratio from ` +
    `${ratio(rule.minRatio)} to ${ratio(rule.maxRatio)}${auto}.`
  );
}

function planQuality(
  model: ModelSpec,
  requested: string | undefined,
  warnings: string[],
): string | undefined {
  if (model.qualities.length === 0) {
    // Only what the client sent is worth a word, whatever it was.
    if (requested !== undefined) {
      warnings.push(`${model.id} has no quality setting; quality '${requested}' was ignored.`);
    }
    return undefined;
  }
  if (requested === undefined) return model.defaultQuality;
  if (model.qualities.includes(requested)) return requested;
  const synonym = QUALITY_SYNONYMS[requested];
  if (synonym !== undefined && model.qualities.includes(synonym)) return synonym;
  throw invalidRequest(
    `Invalid 'quality': '${requested}' is not supported by ${model.id}. ` +
      `Supported: ${model.qualities.join(", ")}.`,
    "quality",
    "invalid_value",
  );
}

function planStyle(
  model: ModelSpec,
  requested: string | undefined,
  warnings: string[],
): string | undefined {
  if (model.styles.length === 0) {
    // Sent and dropped is worth a word, the spec's default `vivid` too: the client asked for it.
    if (requested !== undefined) {
      warnings.push(`${model.id} has no style setting; style '${requested}' was ignored.`);
    }
    return undefined;
  }
  const style = requested ?? model.defaultStyle;
  if (style !== undefined && !model.styles.includes(style)) {
    throw invalidRequest(
      `Invalid 'style': ${model.id} supports ${model.styles.join(", ")}.`,
      "style",
      "invalid_value",
    );
  }
  return style;
}

function planOutputFormat(model: ModelSpec, request: ImageJobRequest): OutputFormat | undefined {
  const requested = request.output_format;
  if (requested === undefined) return undefined;
  if (!model.outputFormats.includes(requested)) {
    throw invalidRequest(
      `Invalid 'output_format': ${model.id} makes ${model.outputFormats.join(", ")}.`,
      "output_format",
      "invalid_value",
    );
  }
  return requested;
}

function planBackground(
  model: ModelSpec,
  requested: ImageJob["background"],
  outputFormat: OutputFormat | undefined,
  warnings: string[],
): ImageJob["background"] {
  if (requested === undefined) return undefined;
  if (!model.background) {
    if (requested === "transparent") {
      throw invalidRequest(
        `Model '${model.id}' cannot make a transparent background.`,
        "background",
        "unsupported_value",
      );
    }
    warnings.push(`${model.id} does not take background; it was ignored.`);
    return undefined;
  }
  if (requested === "transparent" && outputFormat === "jpeg") {
    throw invalidRequest(
      "A transparent background needs output_format png or webp; jpeg has no transparency.",
      "background",
      "invalid_value",
    );
  }
  return requested;
}
