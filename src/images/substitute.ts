/**
 * A request for a retired model, translated for the model that serves in its place. The request
 * was validated against the model the client named (dall-e-3 at 256x256 stays a 400); here each
 * parameter is carried over so the client gets what that model promised:
 *
 * - the size it asked for: sent as is where the successor makes it, else the successor makes the
 *   nearest size it can at the same aspect ratio and the hub resizes the result (`job.deliver`);
 * - quality by meaning (`standard` → `medium`, `hd` → `high`), or the successor's default;
 * - a style the successor has no notion of is reported in the warnings, not sent;
 * - PNG unless the client asked for another format.
 *
 * Pure, like plan.ts, whose `planFor` it calls back for the successor's own checks.
 */
import { invalidRequest, isHubError } from "../errors.ts";
import type { OutputFormat } from "../providers/types.ts";
import type { SizeRule } from "./catalog.ts";
import type { Serving } from "./lifecycle.ts";
import { sizeAllowed } from "./model-fields.ts";
import { type ImageJob, type ImageJobRequest, QUALITY_SYNONYMS } from "./plan.ts";

export function substituteJob(
  job: ImageJob,
  request: ImageJobRequest,
  serving: Serving,
  planSuccessor: (request: ImageJobRequest) => ImageJob,
): ImageJob {
  const requested = job.model;
  const successor = serving.model;
  const because = serving.retired[0]?.because ?? "it is retired";
  const notes = [`${requested.id} is retired (${because}); ${successor.id} served this request.`];

  // The size the client asked for, even where the named model itself would have resized.
  const fitted = job.deliver?.size;
  const asked: ImageJob["size"] = fitted ? `${fitted.width}x${fitted.height}` : job.size;
  const { size, resizeTo } = translateSize(asked, successor.sizes, successor.defaultSize);
  if (resizeTo) {
    notes.push(
      `${successor.id} cannot make ${asked}: it made ${size}, resized by the hub to ${asked}.`,
    );
  }
  let quality = job.quality;
  if (quality !== undefined && successor.qualities.length > 0) {
    const meaning = QUALITY_SYNONYMS[quality];
    const known =
      successor.qualities.includes(quality) ||
      (meaning !== undefined && successor.qualities.includes(meaning));
    if (!known) {
      notes.push(`${successor.id} has no quality '${quality}'; its default was used.`);
      quality = undefined;
    }
  }
  let style = job.style;
  if (style !== undefined && !successor.styles.includes(style)) {
    // Only what the client asked for is worth a word; dall-e-3's own default is not.
    if (request.style !== undefined) {
      notes.push(`${successor.id} has no style setting; style '${request.style}' was not sent.`);
    }
    style = undefined;
  }

  // The named model's vendor options mean nothing to another model: not sent, and said so.
  const dropped = Object.keys(request.extra ?? {}).filter((name) => !successor.extraOptions[name]);
  if (dropped.length > 0) {
    notes.push(`${successor.id} does not take ${dropped.join(", ")} in extra; not sent.`);
  }
  const extra = Object.fromEntries(
    Object.entries(request.extra ?? {}).filter(([name]) => !dropped.includes(name)),
  );
  const successorRequest: ImageJobRequest = {
    ...request,
    model: successor.id,
    size: size ?? "auto",
    quality,
    style,
    extra,
  };
  let planned: ImageJob;
  try {
    planned = planSuccessor(successorRequest);
  } catch (error) {
    if (!isHubError(error) || error.status !== 400) throw error;
    throw invalidRequest(
      `The model '${job.requestedModel}' is retired and served by '${successor.id}', which cannot take this request: ${error.message}`,
      error.param,
      error.code,
    );
  }
  const format: OutputFormat = job.outputFormat ?? "png";
  return {
    ...planned,
    substitutedFor: requested,
    deliver: { size: resizeTo, format },
    // The successor's own warnings: what the model named would have dropped is beside the point.
    warnings: [...new Set([...notes, ...planned.warnings])],
  };
}

function translateSize(
  size: ImageJob["size"],
  rule: SizeRule,
  defaultSize: string,
): { size: string | undefined; resizeTo: { width: number; height: number } | undefined } {
  if (size === undefined) return { size: rule.auto ? undefined : defaultSize, resizeTo: undefined };
  if (sizeAllowed(rule, size)) return { size, resizeTo: undefined };
  const [width, height] = size.split("x").map(Number) as [number, number];
  const nearest = nearestSize(rule, width, height);
  if (nearest === undefined) {
    throw invalidRequest(
      `Invalid 'size': the model that now serves this one cannot make ${size} or a size near it.`,
      "size",
      "invalid_size",
    );
  }
  return { size: nearest, resizeTo: { width, height } };
}

/**
 * The size a model can make that is nearest to `width`x`height`: the same aspect ratio as near
 * as the model allows, then the pixel count nearest to the one asked (by ratio, so 2x larger and
 * 2x smaller are as far). Undefined when the model makes no size at all.
 *
 * @example nearestSize(gptImage2.sizes, 256, 256) // "816x816": its fewest pixels at 1:1
 */
export function nearestSize(rule: SizeRule, width: number, height: number): string | undefined {
  const candidates =
    rule.kind === "list" ? listed(rule.sizes) : ruleCandidates(rule, width, height);
  const ratio = Math.log(width / height);
  const pixels = width * height;
  let best: { size: string; score: [number, number] } | undefined;
  for (const candidate of candidates) {
    if (!sizeAllowed(rule, `${candidate.width}x${candidate.height}`)) continue;
    const area = candidate.width * candidate.height;
    const score: [number, number] = [
      Math.round(Math.abs(Math.log(candidate.width / candidate.height) - ratio) * 1e4),
      Math.abs(Math.log(area / pixels)),
    ];
    if (!best || isLess(score, best.score)) {
      best = { size: `${candidate.width}x${candidate.height}`, score };
    }
  }
  return best?.size;
}

function listed(sizes: readonly string[]) {
  return sizes.map((size) => {
    const [width, height] = size.split("x").map(Number) as [number, number];
    return { width, height };
  });
}

/** Sizes around the asked ratio at the pixel count the rule allows, on its grid. */
function ruleCandidates(rule: Extract<SizeRule, { kind: "rule" }>, width: number, height: number) {
  const ratio = Math.min(Math.max(width / height, rule.minRatio), rule.maxRatio);
  const pixels = Math.min(Math.max(width * height, rule.minPixels), rule.maxPixels);
  let idealWidth = Math.sqrt(pixels * ratio);
  let idealHeight = Math.sqrt(pixels / ratio);
  const over = Math.max(idealWidth, idealHeight) / rule.maxSide;
  if (over > 1) {
    idealWidth /= over;
    idealHeight /= over;
  }
  const step = rule.multipleOf;
  const around = (value: number) => {
    const base = Math.floor(value / step) * step;
    return [base - step, base, base + step, base + 2 * step].filter((side) => side > 0);
  };
  return around(idealWidth).flatMap((candidateWidth) =>
    around(idealHeight).map((candidateHeight) => ({
      width: candidateWidth,
      height: candidateHeight,
    })),
  );
}

function isLess(a: readonly number[], b: readonly number[]): boolean {
  for (let index = 0; index < a.length; index++) {
    if ((a[index] ?? 0) !== (b[index] ?? 0)) return (a[index] ?? 0) < (b[index] ?? 0);
  }
  return false;
}
