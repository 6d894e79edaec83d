/**
 * Replicate's predictions API (https://api.replicate.com/v1) as a task API for the task engine
 * (providers/tasks.ts). An official model (`owner/name`) is run with
 * `POST /v1/models/{owner}/{name}/predictions`; a pinned version (`owner/name:<64 hex>`, or the
 * bare version id) with `POST /v1/predictions` and `version`. The prediction is then read with
 * `GET /v1/predictions/{id}` until it is `succeeded`, `failed`, `canceled` or `aborted`, and
 * cancelled with `POST /v1/predictions/{id}/cancel`.
 *
 * - Sync first: the create request asks `Prefer: wait=N` (N within the request's time left, at
 *   most `syncWaitSeconds`), so a fast model (FLUX schnell, ~1 s) answers finished in one round
 *   trip; the finished prediction is kept in memory and the engine's first poll reads it there.
 * - `Cancel-After` (the call's budget, plus a little) makes Replicate itself stop a prediction the
 *   hub lost track of: a client that leaves during the sync wait, or a hub that crashed.
 * - `urls.get` and `urls.cancel` are followed only on the configured base URL's origin; anything
 *   else is replaced by the path built from the prediction id (a reply must not steer the hub's
 *   credentials to another host).
 * - Output is a URL or a list of URLs on replicate.delivery, removed after an hour
 *   (`data_removed`); the engine fetches them at once.
 * - A refusal by a safety checker is a `failed` prediction whose `error` names NSFW content or
 *   "flagged as sensitive … (E005)": a content-policy violation, not an upstream fault.
 *
 * Sizes: each built-in model's table below maps `WxH` to the model's own input (FLUX schnell's
 * `aspect_ratio`, FLUX 1.1 Pro's `custom` width and height, Ideogram v3's `resolution`); the
 * catalog lists exactly those sizes. A model the table does not know gets the nearest FLUX ratio.
 *
 * @example
 * const replicate = createTaskProvider(createReplicateTaskApi({ apiKey, baseURL }));
 * await replicate.generate(call); // call.model "black-forest-labs/flux-schnell", size "1344x768"
 */
import {
  contentPolicy,
  HubError,
  invalidRequest,
  upstreamFailed,
  upstreamRateLimited,
} from "../errors.ts";
import { MIME_TYPE_OF_FORMAT } from "../image-formats.ts";
import type { ExtraOption } from "../images/extra-options.ts";
import type { SubmittedTask, TaskApi, TaskRequestContext, TaskStatus } from "./tasks.ts";
import type { HttpProviderOptions, OutputFormat, ProviderCall, ProviderImage } from "./types.ts";
import { redactSecrets, requestUpstreamJson, type UpstreamErrorBody } from "./upstream.ts";

export const REPLICATE_DEFAULT_BASE_URL = "https://api.replicate.com";

/** FLUX.1 on Replicate: pixels per `aspect_ratio` at 1 megapixel (replicate/cog-flux predict.py). */
export const FLUX_ASPECT_SIZES = {
  "1:1": "1024x1024",
  "16:9": "1344x768",
  "21:9": "1536x640",
  "3:2": "1216x832",
  "2:3": "832x1216",
  "4:5": "896x1088",
  "5:4": "1088x896",
  "3:4": "896x1152",
  "4:3": "1152x896",
  "9:16": "768x1344",
  "9:21": "640x1536",
} as const;

/** Ideogram v3's `resolution` enum on Replicate: the exact pixel sizes it makes. */
export const IDEOGRAM_V3_RESOLUTIONS: readonly string[] = [
  "512x1536 576x1408 576x1472 576x1536 640x1344 640x1408 640x1472 640x1536 704x1152 704x1216",
  "704x1280 704x1344 704x1408 704x1472 736x1312 768x1088 768x1216 768x1280 768x1344 800x1280",
  "832x960 832x1024 832x1088 832x1152 832x1216 832x1248 864x1152 896x960 896x1024 896x1088",
  "896x1120 896x1152 960x832 960x896 960x1024 960x1088 1024x832 1024x896 1024x960 1024x1024",
  "1088x768 1088x832 1088x896 1088x960 1120x896 1152x704 1152x832 1152x864 1152x896 1216x704",
  "1216x768 1216x832 1248x832 1280x704 1280x768 1280x800 1312x736 1344x640 1344x704 1344x768",
  "1408x576 1408x640 1408x704 1472x576 1472x640 1472x704 1536x512 1536x576 1536x640",
]
  .join(" ")
  .split(" ");

/** FLUX 1.1 Pro's `aspect_ratio: custom`: width and height from 256 to 1440, multiples of 32. */
export const FLUX_CUSTOM_SIDES = { minimum: 256, maximum: 1440, multipleOf: 32 } as const;

/** Vendor options by Replicate's input names, for the catalog's `extra_options` (per model). */
export const REPLICATE_EXTRA_OPTIONS = {
  seed: {
    type: "integer",
    minimum: 0,
    maximum: 2147483647,
    description: "Random seed, for reproducible generation.",
  },
  go_fast: {
    type: "boolean",
    description:
      "FLUX schnell: the fp8 model (default true); outputs are not deterministic with it.",
  },
  num_inference_steps: {
    type: "integer",
    minimum: 1,
    maximum: 4,
    description: "FLUX schnell: denoising steps (4 by default).",
  },
  safety_tolerance: {
    type: "integer",
    minimum: 1,
    maximum: 5,
    description: "FLUX 1.1 Pro: 1 most strict, 5 most permissive (2 by default).",
  },
  prompt_upsampling: {
    type: "boolean",
    description: "FLUX 1.1 Pro: rewrite the prompt for more creative results.",
  },
  magic_prompt_option: {
    type: "string",
    enum: ["Auto", "On", "Off"],
    description: "Ideogram: let Magic Prompt rewrite the prompt (Auto by default).",
  },
  style_type: {
    type: "string",
    enum: ["None", "Auto", "General", "Realistic", "Design"],
    description: "Ideogram: the aesthetic of the image.",
  },
} as const satisfies Record<string, ExtraOption>;

type Sizing = "aspect_ratio" | "custom" | "resolution";

interface ModelRules {
  sizing: Sizing;
  /** Whether it takes `num_outputs` (more than one image per prediction). */
  numOutputs: boolean;
  /** Whether it takes `output_format` (webp, jpg, png) and `output_quality`. */
  formats: boolean;
}

const MODEL_RULES: Record<string, ModelRules> = {
  "black-forest-labs/flux-schnell": { sizing: "aspect_ratio", numOutputs: true, formats: true },
  "black-forest-labs/flux-1.1-pro": { sizing: "custom", numOutputs: false, formats: true },
  "ideogram-ai/ideogram-v3-turbo": { sizing: "resolution", numOutputs: false, formats: false },
};
/** A model the table does not know: a FLUX-like input, the common shape on Replicate. */
const GENERIC_RULES: ModelRules = { sizing: "aspect_ratio", numOutputs: true, formats: true };

const FORMAT_NAMES: Record<OutputFormat, string> = { png: "png", jpeg: "jpg", webp: "webp" };
const VERSION_ID = /^[0-9a-f]{64}$/;
const MODEL_NAME = /^([\w.-]+)\/([\w.-]+)(?::([0-9a-f]{64}))?$/;
const PREDICTION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const DEFAULT_SYNC_WAIT_SECONDS = 10;
/** The engine's budget for a call that names none (providers/tasks.ts). */
const DEFAULT_BUDGET_MS = 300_000;
/** Polls that fail in a row (5xx, 429, a lost connection) before the call gives up. */
const MAX_TRANSIENT_POLL_FAILURES = 3;
/** Finished predictions from a sync create, kept until polled; bounded in case none is. */
const MAX_SETTLED = 1000;

export interface ReplicateTaskApiOptions extends HttpProviderOptions {
  /** Longest a create request waits for a finished prediction (`Prefer: wait`), 1–60 s. */
  syncWaitSeconds?: number;
}

export function createReplicateTaskApi(options: ReplicateTaskApiOptions): TaskApi {
  const baseURL = (options.baseURL || REPLICATE_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const apiRoot = `${baseURL}/v1`;
  const origin = new URL(baseURL).origin;
  const settled = new Map<string, TaskStatus>();
  const transientFailures = new Map<string, number>();

  function request(
    method: "GET" | "POST",
    url: string,
    context: TaskRequestContext,
    body?: unknown,
    headers: Record<string, string> = {},
  ) {
    return requestUpstreamJson({
      provider: "Replicate",
      dispatcher: options.dispatcher,
      byteBudget: options.byteBudget,
      url,
      maxReplyBytes: options.maxReplyBytes,
      init: {
        method,
        headers: {
          authorization: `Bearer ${options.apiKey}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      },
      timeoutMs: context.timeoutMs,
      signal: context.signal,
      isContentPolicy: (_status, upstream) => isRefusal(upstream.message),
    }).catch((error: unknown) => {
      throw replicateFailure(error);
    });
  }

  /** A URL from a reply when it is on our origin; the one built from the id otherwise. */
  function ownURL(given: unknown, fallback: string): string {
    if (typeof given !== "string") return fallback;
    try {
      return new URL(given).origin === origin ? given : fallback;
    } catch {
      return fallback;
    }
  }

  return {
    name: "replicate",
    async submit(call, context) {
      context.signal.throwIfAborted();
      const rules = MODEL_RULES[call.model] ?? GENERIC_RULES;
      const { input, warnings } = inputOf(call, rules);
      const match = MODEL_NAME.exec(call.model);
      if (!match && !VERSION_ID.test(call.model)) {
        throw invalidRequest(
          `'${call.model}' is not a Replicate model (owner/name or owner/name:version).`,
          "model",
        );
      }
      const official = match !== null && match[3] === undefined;
      const url = official
        ? `${apiRoot}/models/${match[1]}/${match[2]}/predictions`
        : `${apiRoot}/predictions`;
      const body = official ? { input } : { version: call.model, input };
      const headers: Record<string, string> = {
        "cancel-after": `${Math.ceil((call.timeoutMs ?? options.timeoutMs ?? DEFAULT_BUDGET_MS) / 1000) + 5}s`,
      };
      // Replicate holds the request up to N s; it must answer before our own deadline does.
      const wait = Math.min(
        options.syncWaitSeconds ?? DEFAULT_SYNC_WAIT_SECONDS,
        60,
        Math.floor((context.timeoutMs - 2000) / 1000),
      );
      if (wait >= 1) headers.prefer = `wait=${wait}`;
      const prediction = predictionOf(await request("POST", url, context, body, headers));
      const state = {
        get: ownURL(prediction.urls.get, `${apiRoot}/predictions/${prediction.id}`),
        cancel: ownURL(prediction.urls.cancel, `${apiRoot}/predictions/${prediction.id}/cancel`),
        count: String(call.count),
        warnings: JSON.stringify(warnings),
      };
      const task = { id: prediction.id, state };
      const status = statusOf(prediction, task);
      if (status.kind !== "pending") {
        if (settled.size >= MAX_SETTLED) settled.delete(settled.keys().next().value as string);
        settled.set(prediction.id, status);
      }
      return task;
    },
    async poll(task, context) {
      const known = settled.get(task.id);
      if (known) {
        settled.delete(task.id);
        return known;
      }
      let reply: unknown;
      try {
        reply = await request(
          "GET",
          task.state.get ?? `${apiRoot}/predictions/${task.id}`,
          context,
        );
      } catch (error) {
        // The prediction runs on whatever a poll meets: a passing fault costs a poll, not the image.
        const failures = (transientFailures.get(task.id) ?? 0) + 1;
        if (!isTransient(error) || failures >= MAX_TRANSIENT_POLL_FAILURES) {
          transientFailures.delete(task.id);
          throw error;
        }
        transientFailures.set(task.id, failures);
        const seconds = (error as HubError).retryAfterSeconds;
        return seconds === undefined
          ? { kind: "pending" }
          : { kind: "pending", retryAfterMs: seconds * 1000 };
      }
      transientFailures.delete(task.id);
      return statusOf(predictionOf(reply), task);
    },
    async cancel(task, context) {
      settled.delete(task.id);
      transientFailures.delete(task.id);
      await request(
        "POST",
        task.state.cancel ?? `${apiRoot}/predictions/${task.id}/cancel`,
        context,
      );
    },
  };
}

/** The prediction's `input` for the call, and the hints it could not pass on. */
function inputOf(call: ProviderCall, rules: ModelRules) {
  const warnings: string[] = [];
  const ignored = (name: string, value: unknown) =>
    warnings.push(`${call.model} takes no '${name}'; '${String(value)}' was not sent.`);
  if (call.images.length > 0 || call.mask) {
    throw invalidRequest(
      `${call.model} on Replicate makes images from a prompt only; it takes no image.`,
      "image",
    );
  }
  // Extras first: the fields the hub sets (size, count, format) must not be overridden by them.
  const input: Record<string, unknown> = { ...call.extra, prompt: call.prompt };
  if (call.size !== undefined) Object.assign(input, sizeInput(call.model, call.size, rules.sizing));
  if (call.count > 1) {
    if (!rules.numOutputs)
      throw invalidRequest(`${call.model} makes one image per call, not ${call.count}.`, "n");
    input.num_outputs = call.count;
  }
  if (rules.formats) {
    input.output_format = FORMAT_NAMES[call.outputFormat ?? "png"];
    if (call.outputCompression !== undefined) input.output_quality = call.outputCompression;
  } else {
    if (call.outputFormat !== undefined && call.outputFormat !== "png") {
      throw invalidRequest(
        `${call.model} makes png images, not ${call.outputFormat}.`,
        "output_format",
      );
    }
    if (call.outputCompression !== undefined) ignored("output_compression", call.outputCompression);
  }
  if (call.quality !== undefined) ignored("quality", call.quality);
  if (call.style !== undefined) ignored("style", call.style);
  if (call.background !== undefined && call.background !== "auto")
    ignored("background", call.background);
  if (call.moderation === "low") ignored("moderation", call.moderation);
  return { input, warnings };
}

/** The size as the model's own input; see the tables above. */
function sizeInput(model: string, size: string, sizing: Sizing): Record<string, unknown> {
  const [width, height] = size.split("x").map(Number) as [number, number];
  if (sizing === "resolution") {
    if (!IDEOGRAM_V3_RESOLUTIONS.includes(size)) throw sizeRefused(model, size);
    return { resolution: size };
  }
  if (sizing === "custom") {
    const { minimum, maximum, multipleOf } = FLUX_CUSTOM_SIDES;
    const fits = (side: number) => side >= minimum && side <= maximum && side % multipleOf === 0;
    if (!fits(width) || !fits(height)) throw sizeRefused(model, size);
    return { aspect_ratio: "custom", width, height };
  }
  const exact = Object.entries(FLUX_ASPECT_SIZES).find(([, pixels]) => pixels === size)?.[0];
  return { aspect_ratio: exact ?? nearestFluxRatio(width, height) };
}

function sizeRefused(model: string, size: string) {
  return invalidRequest(`${model} cannot make ${size} on Replicate.`, "size");
}

/** The FLUX ratio nearest in shape to `width`×`height`. */
export function nearestFluxRatio(width: number, height: number): keyof typeof FLUX_ASPECT_SIZES {
  let nearest: keyof typeof FLUX_ASPECT_SIZES = "1:1";
  let distance = Number.POSITIVE_INFINITY;
  for (const [ratio, pixels] of Object.entries(FLUX_ASPECT_SIZES)) {
    const [w, h] = pixels.split("x").map(Number) as [number, number];
    const gap = Math.abs(Math.log(width / height) - Math.log(w / h));
    if (gap < distance) [nearest, distance] = [ratio as keyof typeof FLUX_ASPECT_SIZES, gap];
  }
  return nearest;
}

interface Prediction {
  id: string;
  status: string;
  output: unknown;
  error: unknown;
  dataRemoved: boolean;
  urls: { get?: unknown; cancel?: unknown };
}

/** The fields of a prediction the adapter reads; a reply without an id or status is refused. */
function predictionOf(reply: unknown): Prediction {
  const body = (reply && typeof reply === "object" ? reply : {}) as Record<string, unknown>;
  if (
    typeof body.id !== "string" ||
    !PREDICTION_ID.test(body.id) ||
    typeof body.status !== "string"
  ) {
    throw upstreamFailed("Replicate answered with something that is not a prediction.", {
      code: "upstream_invalid_response",
    });
  }
  const urls = body.urls && typeof body.urls === "object" ? (body.urls as Prediction["urls"]) : {};
  return {
    id: body.id,
    status: body.status,
    output: body.output,
    error: body.error,
    dataRemoved: body.data_removed === true,
    urls,
  };
}

function statusOf(prediction: Prediction, task: SubmittedTask): TaskStatus {
  switch (prediction.status) {
    case "succeeded":
      return succeeded(prediction, task);
    case "failed": {
      const message = redactSecrets(
        typeof prediction.error === "string" ? prediction.error : "no reason given",
      );
      const cause = { prediction: prediction.id, error: prediction.error };
      if (isRefusal(message))
        return {
          kind: "failed",
          error: contentPolicy(`Replicate's safety checker refused: ${message}`, cause),
        };
      return {
        kind: "failed",
        error: upstreamFailed(`Replicate's prediction failed: ${message}`, { cause }),
      };
    }
    case "canceled":
    case "aborted":
      return {
        kind: "failed",
        error: upstreamFailed(
          `Replicate ${prediction.status} the prediction before it made an image.`,
          { cause: { prediction: prediction.id } },
        ),
      };
    default:
      // `starting`, `processing`, and any state Replicate adds later: look again.
      return { kind: "pending" };
  }
}

function succeeded(prediction: Prediction, task: SubmittedTask): TaskStatus {
  if (prediction.dataRemoved || prediction.output === null || prediction.output === undefined) {
    const error = upstreamFailed(
      "Replicate removed the prediction's output before the hub read it.",
      {
        code: "upstream_result_expired",
      },
    );
    return { kind: "failed", error };
  }
  const outputs = [prediction.output].flat();
  if (!outputs.every((item) => typeof item === "string")) {
    const error = upstreamFailed("Replicate answered with an output that is not image URLs.", {
      code: "upstream_invalid_response",
    });
    return { kind: "failed", error };
  }
  if (outputs.length === 0) {
    return {
      kind: "failed",
      error: upstreamFailed("Replicate's prediction made no image.", { code: "upstream_no_image" }),
    };
  }
  const count = Number(task.state.count ?? 1);
  const warnings = parseWarnings(task.state.warnings);
  if (outputs.length < count)
    warnings.push(`Replicate made ${outputs.length} of the ${count} images asked.`);
  const images = outputs.slice(0, count).map(imageOf);
  return { kind: "done", result: { images, usage: undefined, warnings } };
}

/** A result URL as the engine fetches it, or a data URL's base64 as it came. */
function imageOf(output: string): ProviderImage {
  const data = /^data:image\/(png|jpeg|webp);base64,/.exec(output);
  if (data) {
    const mimeType = MIME_TYPE_OF_FORMAT[data[1] as OutputFormat];
    return {
      kind: "base64",
      base64: output.slice(data[0].length),
      mimeType,
      revisedPrompt: undefined,
    };
  }
  if (!/^https?:\/\//i.test(output)) {
    throw upstreamFailed("Replicate answered with an output that is not a URL.", {
      code: "upstream_invalid_response",
    });
  }
  return { kind: "url", url: output, revisedPrompt: undefined };
}

function parseWarnings(text: string | undefined): string[] {
  try {
    const parsed: unknown = JSON.parse(text ?? "[]");
    return Array.isArray(parsed)
      ? parsed.filter((item): item is string => typeof item === "string")
      : [];
  } catch {
    return [];
  }
}

/** A safety checker's words: cog models' "NSFW content detected", Replicate's E005. */
function isRefusal(message: string | undefined): boolean {
  return message !== undefined && /nsfw|flagged as sensitive|\(E005\)|content polic/i.test(message);
}

function isTransient(error: unknown): boolean {
  if (!(error instanceof HubError)) return false;
  return (
    error.status === 429 ||
    [
      "upstream_unavailable",
      "upstream_error",
      "upstream_connection_lost",
      "upstream_unreachable",
      "upstream_timeout",
    ].includes(error.code)
  );
}

/**
 * Replicate's statuses the shared mapping reads another way: 402 is the hub's account out of
 * credit (a 502 naming it, not the client's 400), and a 429 without `Retry-After` says when in
 * its `detail` ("Your rate limit resets in ~30s").
 */
function replicateFailure(error: unknown): unknown {
  if (!(error instanceof HubError)) return error;
  const cause = error.cause as { status?: number; upstream?: UpstreamErrorBody } | undefined;
  if (cause?.status === 402) {
    return upstreamFailed("The hub's Replicate account has run out of credit.", {
      code: "upstream_insufficient_credit",
      upstreamStatus: 402,
      cause,
    });
  }
  if (error.code === "upstream_rate_limited" && error.retryAfterSeconds === undefined) {
    const seconds = /resets in ~?(\d+)\s*s/i.exec(cause?.upstream?.message ?? "")?.[1];
    if (seconds !== undefined) return upstreamRateLimited(error.message, Number(seconds), cause);
  }
  return error;
}
