/**
 * Ideogram 3.0 through Ideogram's v2 API (https://api.ideogram.ai, key in an `Api-Key` header),
 * run as a task: `POST /v2/image/generate/ideogram-3` (or `/v2/image/remix/ideogram-3` for an
 * edit) with `async: true` answers at once with a `generation_id`, and
 * `GET /v2/generations/{generation_id}` answers `pending`, `failed` (with a `failure_reason`) or
 * `completed` with the images as short-lived URLs (`…/ephemeral/….png?exp=<unix s>&sig=…`).
 *
 * Why v2 and not v1's `POST /v1/ideogram-v3/generate`: that endpoint only answers synchronously
 * (v1's async endpoints are Ideogram 4.0 and P-Image only), and Ideogram's docs now default to v2,
 * where every image endpoint takes `async`. v2 takes the Ideogram 3.0 options in lower case
 * (`rendering_speed: turbo|default|quality`; v1's FLASH does not exist there).
 *
 * Ideogram has no cancel endpoint: a call that runs out of time or whose client leaves simply
 * stops polling (`cancel` is left out, so the engine sends nothing more).
 *
 * Sizes: Ideogram 3.0 takes `resolution` as one of 69 `WxH` values, the pixels it makes; the
 * hub's `WxH` is sent as is. Without a size, Ideogram makes 1x1, i.e. 1024x1024.
 *
 * Where Ideogram departs from what the shared error mapping assumes:
 * - 422 with a safety message is a refused prompt or image (content policy);
 * - 402 is the hub's Ideogram account out of credit, not the client's fault;
 * - a poll answered 429 (polling is rate limited per organization) or 5xx is not the task's
 *   failure: the task runs on upstream, so the engine waits as told and polls again;
 * - `is_image_safe: false` images come without a URL: dropped, a refusal when none is left.
 *
 * @example
 * const provider = createTaskProvider(createIdeogramTaskApi({ apiKey, baseURL: IDEOGRAM_DEFAULT_BASE_URL }));
 * await provider.generate(call); // call.model "ideogram-3", call.size "1344x768"
 */
import { contentPolicy, HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import { EXTENSION_OF_MIME_TYPE } from "../image-formats.ts";
import type { ExtraOption } from "../images/extra-options.ts";
import { encodeMultipart, type MultipartPart } from "./multipart.ts";
import type { SubmittedTask, TaskApi, TaskStatus } from "./tasks.ts";
import type { HttpProviderOptions, ProviderCall, ProviderImage } from "./types.ts";
import { requestUpstreamJson, type UpstreamErrorBody, type UpstreamRequest } from "./upstream.ts";

export const IDEOGRAM_DEFAULT_BASE_URL = "https://api.ideogram.ai";
const PROVIDER = "Ideogram";

/** Ideogram 3.0's `resolution` values (ResolutionV3): exactly the pixels it makes. */
export const IDEOGRAM_RESOLUTIONS = [
  ...["512x1536", "576x1408", "576x1472", "576x1536", "640x1344", "640x1408", "640x1472"],
  ...["640x1536", "704x1152", "704x1216", "704x1280", "704x1344", "704x1408", "704x1472"],
  ...["736x1312", "768x1088", "768x1216", "768x1280", "768x1344", "800x1280", "832x960"],
  ...["832x1024", "832x1088", "832x1152", "832x1216", "832x1248", "864x1152", "896x960"],
  ...["896x1024", "896x1088", "896x1120", "896x1152", "960x832", "960x896", "960x1024"],
  ...["960x1088", "1024x832", "1024x896", "1024x960", "1024x1024", "1088x768", "1088x832"],
  ...["1088x896", "1088x960", "1120x896", "1152x704", "1152x832", "1152x864", "1152x896"],
  ...["1216x704", "1216x768", "1216x832", "1248x832", "1280x704", "1280x768", "1280x800"],
  ...["1312x736", "1344x640", "1344x704", "1344x768", "1408x576", "1408x640", "1408x704"],
  ...["1472x576", "1472x640", "1472x704", "1536x512", "1536x576", "1536x640"],
] as const;

/** What Ideogram makes without a `resolution` (aspect ratio 1x1). */
export const IDEOGRAM_DEFAULT_SIZE = "1024x1024";

/** The hub's qualities are Ideogram's rendering speeds, which is also what it bills by. */
export const IDEOGRAM_RENDERING_SPEEDS = ["turbo", "default", "quality"] as const;

/** IdeogramV3StylePreset: more than an `enum` may hold in the catalog, so checked here. */
export const IDEOGRAM_STYLE_PRESETS = new Set([
  ...["80s_illustration", "90s_nostalgia", "abstract_organic", "analog_nostalgia", "art_brut"],
  ...["art_deco", "art_poster", "aura", "avant_garde", "bauhaus", "blueprint", "blurry_motion"],
  ...["bright_art", "c4d_cartoon", "childrens_book", "collage", "coloring_book_i"],
  ...["coloring_book_ii", "cubism", "dark_aura", "doodle", "double_exposure", "dramatic_cinema"],
  ...["editorial", "emotional_minimal", "ethereal_party", "expired_film", "flat_art"],
  ...["flat_vector", "forest_reverie", "geo_minimalist", "glass_prism", "golden_hour"],
  ...["graffiti_i", "graffiti_ii", "halftone_print", "high_contrast", "hippie_era", "iconic"],
  ...["japandi_fusion", "jazzy", "long_exposure", "magazine_editorial", "minimal_illustration"],
  ...["mixed_media", "monochrome", "nightlife", "oil_painting", "old_cartoons", "paint_gesture"],
  ...["pop_art", "retro_etching", "riviera_pop", "spotlight_80s", "stylized_red"],
  ...["surreal_collage", "travel_poster", "vintage_geo", "vintage_poster", "watercolor"],
  ...["weird", "woodblock_print"],
]);

/** Vendor options by Ideogram's names, for the catalog's `extra_options`. */
export const IDEOGRAM_EXTRA_OPTIONS = {
  negative_prompt: {
    type: "string",
    max_length: 10000,
    description: "What the images should not show; the prompt wins where they disagree.",
  },
  seed: { type: "integer", minimum: 0, maximum: 2147483647, description: "For repeatable images." },
  style_type: {
    type: "string",
    enum: ["auto", "general", "realistic", "design", "fiction", "stylized"],
    description: "The kind of image; general when unset.",
  },
  magic_prompt: {
    type: "string",
    enum: ["auto", "on", "off"],
    description: "Whether Ideogram rewrites the prompt first; auto when unset.",
  },
  style_preset: {
    type: "string",
    max_length: 32,
    description: "One of Ideogram 3.0's style presets, e.g. watercolor, art_deco, flat_vector.",
  },
  image_weight: {
    type: "integer",
    minimum: 1,
    maximum: 100,
    description: "Edits only: how closely the result follows the input image; 50 when unset.",
  },
} as const satisfies Record<string, ExtraOption>;

const SENT_AS_IS = ["negative_prompt", "seed", "style_type", "magic_prompt", "style_preset"];

export interface IdeogramTaskApiOptions extends HttpProviderOptions {
  /** Wall-clock ms, to tell an expired result URL (`exp`, Unix seconds); tests pin it. */
  now?: () => number;
}

export function createIdeogramTaskApi(options: IdeogramTaskApiOptions): TaskApi {
  const baseURL = (options.baseURL || IDEOGRAM_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const now = options.now ?? Date.now;
  const request = (fields: Pick<UpstreamRequest, "url" | "init" | "timeoutMs" | "signal">) =>
    requestUpstreamJson({
      provider: PROVIDER,
      dispatcher: options.dispatcher,
      byteBudget: options.byteBudget,
      maxReplyBytes: options.maxReplyBytes,
      isContentPolicy: isSafetyRefusal,
      ...fields,
    });

  return {
    name: "ideogram",
    async submit(call, context): Promise<SubmittedTask> {
      const { body, contentType, action, warnings } = requestOf(call);
      let reply: unknown;
      try {
        reply = await request({
          url: `${baseURL}/v2/image/${action}/${encodeURIComponent(call.model)}`,
          init: {
            method: "POST",
            headers: { "api-key": options.apiKey, "content-type": contentType },
            body,
          },
          ...context,
        });
      } catch (error) {
        throw submitFailure(error);
      }
      const id = (reply as { generation_id?: unknown } | null)?.generation_id;
      if (typeof id !== "string" || id.length === 0) {
        throw upstreamFailed(`${PROVIDER} accepted the request without a generation id.`, {
          code: "upstream_invalid_response",
        });
      }
      // The warnings ride along with the task, to be reported with its result.
      return { id, state: { generation_id: id, warnings: JSON.stringify(warnings) } };
    },

    async poll(task, context): Promise<TaskStatus> {
      let reply: unknown;
      try {
        reply = await request({
          url: `${baseURL}/v2/generations/${encodeURIComponent(task.id)}`,
          init: { method: "GET", headers: { "api-key": options.apiKey } },
          ...context,
        });
      } catch (error) {
        return pollFailure(error);
      }
      return statusOf(reply, warningsOf(task), now());
    },
  };
}

interface BuiltRequest {
  body: string | Buffer;
  contentType: string;
  action: "generate" | "remix";
  warnings: string[];
}

/** The request for the call: JSON for a generation, multipart for a remix (it carries the image). */
function requestOf(call: ProviderCall): BuiltRequest {
  const warnings: string[] = [];
  const ignored = (name: string, value: unknown) =>
    warnings.push(`${call.model} takes no '${name}'; '${String(value)}' was not sent.`);
  if (call.mask) {
    throw invalidRequest(`${call.model} takes no mask: describe the change in the prompt.`, "mask");
  }
  if (call.images.length > 1) throw invalidRequest(`${call.model} remixes one image.`, "image");
  if (call.outputFormat !== undefined && call.outputFormat !== "png") {
    throw invalidRequest(`${call.model} makes PNG images only.`, "output_format");
  }
  if (call.size !== undefined && !(IDEOGRAM_RESOLUTIONS as readonly string[]).includes(call.size)) {
    throw invalidRequest(`${call.model} makes none of its images at ${call.size}.`, "size");
  }
  const speed = call.quality;
  if (speed !== undefined && !(IDEOGRAM_RENDERING_SPEEDS as readonly string[]).includes(speed)) {
    throw invalidRequest(`quality must be ${IDEOGRAM_RENDERING_SPEEDS.join(", ")}.`, "quality");
  }
  const extra = call.extra ?? {};
  const preset = extra.style_preset;
  if (preset !== undefined && !IDEOGRAM_STYLE_PRESETS.has(String(preset))) {
    throw invalidRequest(
      `'${String(preset)}' is not an Ideogram 3.0 style preset.`,
      "extra.style_preset",
    );
  }

  const fields: Record<string, string | number | boolean> = {
    prompt: call.prompt,
    num_images: call.count,
    async: true,
  };
  if (call.size !== undefined) fields.resolution = call.size;
  if (speed !== undefined) fields.rendering_speed = speed;
  for (const [name, value] of Object.entries(extra)) {
    if (SENT_AS_IS.includes(name)) fields[name] = value as string | number;
    else if (name !== "image_weight") ignored(name, value);
  }
  if (call.style !== undefined) ignored("style", call.style);
  if (call.background !== undefined && call.background !== "auto") {
    ignored("background", call.background);
  }
  if (call.outputCompression !== undefined) ignored("output_compression", call.outputCompression);
  if (call.moderation === "low") ignored("moderation", call.moderation);

  const input = call.images[0];
  if (!input) {
    if (extra.image_weight !== undefined) {
      warnings.push(`'image_weight' applies to edits only; it was not sent.`);
    }
    return {
      body: JSON.stringify(fields),
      contentType: "application/json",
      action: "generate",
      warnings,
    };
  }
  if (extra.image_weight !== undefined) fields.image_weight = extra.image_weight as number;
  const parts: MultipartPart[] = Object.entries(fields).map(([name, value]) => ({
    name,
    value: String(value),
  }));
  parts.push({
    name: "image",
    filename: `image.${EXTENSION_OF_MIME_TYPE[input.mimeType]}`,
    contentType: input.mimeType,
    bytes: input.bytes,
  });
  const { body, contentType } = encodeMultipart(parts);
  return { body, contentType, action: "remix", warnings };
}

interface GeneratedImage {
  url?: unknown;
  is_image_safe?: unknown;
  prompt?: unknown;
}

/** Reads `GET /v2/generations/{id}`: pending, failed (why), or the images. */
function statusOf(reply: unknown, warnings: string[], nowMs: number): TaskStatus {
  const root = (reply ?? {}) as { status?: unknown; failure_reason?: unknown; data?: unknown };
  if (root.status === "pending") return { kind: "pending" };
  if (root.status === "failed") {
    const reason = typeof root.failure_reason === "string" ? root.failure_reason : undefined;
    const error =
      reason === "content_policy_violation"
        ? contentPolicy(`${PROVIDER} refused the request under its content policy.`, { reason })
        : upstreamFailed(`${PROVIDER} could not make the image${reason ? ` (${reason})` : ""}.`, {
            code: "upstream_task_failed",
            cause: { reason },
          });
    return { kind: "failed", error };
  }
  if (root.status !== "completed" || !Array.isArray(root.data)) {
    return { kind: "failed", error: invalidReply(`an unknown status ${String(root.status)}`) };
  }
  const items = root.data as GeneratedImage[];
  const safe = items.filter(
    (item) => item.is_image_safe !== false && typeof item.url === "string" && item.url !== "",
  );
  if (safe.length === 0) {
    const error = contentPolicy(`${PROVIDER}'s safety check withheld every image.`);
    return { kind: "failed", error: items.length > 0 ? error : invalidReply("no image") };
  }
  if (safe.some((item) => expired(String(item.url), nowMs))) {
    const error = upstreamFailed(`${PROVIDER}'s result links have expired.`, {
      code: "upstream_result_expired",
    });
    return { kind: "failed", error };
  }
  const dropped = items.length - safe.length;
  const images = safe.map(
    (item): ProviderImage => ({
      kind: "url",
      url: String(item.url),
      revisedPrompt: typeof item.prompt === "string" ? item.prompt : undefined,
    }),
  );
  if (dropped > 0) {
    warnings.push(`${PROVIDER}'s safety check withheld ${dropped} of ${items.length} images.`);
  }
  return { kind: "done", result: { images, usage: undefined, warnings } };
}

/** Ideogram signs its result links with `exp`, Unix seconds; past it, the link answers 403. */
function expired(url: string, nowMs: number): boolean {
  let exp: string | null = null;
  try {
    exp = new URL(url).searchParams.get("exp");
  } catch {
    return false;
  }
  return exp !== null && Number.isFinite(Number(exp)) && Number(exp) * 1000 <= nowMs;
}

function warningsOf(task: SubmittedTask): string[] {
  try {
    const parsed: unknown = JSON.parse(task.state.warnings ?? "[]");
    return Array.isArray(parsed) ? parsed.filter((item) => typeof item === "string") : [];
  } catch {
    return [];
  }
}

function invalidReply(what: string) {
  return upstreamFailed(`${PROVIDER} answered the generation with ${what}.`, {
    code: "upstream_invalid_response",
  });
}

/** v2's safety refusal is 422 `{"error": "Prompt provided failed safety check …"}`. */
function isSafetyRefusal(status: number, body: UpstreamErrorBody): boolean {
  return status === 422 && /safety|prohibited/i.test(body.message ?? "");
}

function causeOf(error: HubError) {
  return error.cause as { status?: number; upstream?: UpstreamErrorBody } | undefined;
}

/** 402 is the hub's Ideogram balance (`reject_reason: insufficient_funds`), not the client's. */
function submitFailure(error: unknown): unknown {
  if (!(error instanceof HubError) || causeOf(error)?.status !== 402) return error;
  return upstreamFailed(`The hub's Ideogram account cannot pay for this request.`, {
    code: "upstream_insufficient_credit",
    upstreamStatus: 402,
    cause: error.cause,
  });
}

/**
 * A poll that failed says nothing of the task, which runs on upstream: a rate limit or a passing
 * fault means "look again later". An unknown id is lost for good; the hub's key refused is thrown.
 */
function pollFailure(error: unknown): TaskStatus {
  if (!(error instanceof HubError)) throw error;
  const status = causeOf(error)?.status;
  if (status === 404) {
    return {
      kind: "failed",
      error: upstreamFailed(`${PROVIDER} no longer knows the generation.`, {
        code: "upstream_task_not_found",
        cause: error.cause,
      }),
    };
  }
  if (error.retryable) {
    const seconds = error.retryAfterSeconds;
    return seconds === undefined
      ? { kind: "pending" }
      : { kind: "pending", retryAfterMs: seconds * 1000 };
  }
  throw error;
}
