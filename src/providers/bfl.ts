/**
 * Black Forest Labs' FLUX API (https://api.bfl.ai): a task API. `POST /v1/{model}` with the key in
 * `x-key` answers `{id, polling_url, cost}`; `GET polling_url` answers `{status, result}` until
 * `status` is `Ready` with `result.sample`, a signed delivery URL that expires after ten minutes
 * (the task engine fetches it at once). BFL has no cancel endpoint and no model list.
 *
 * The global and regional endpoints hand back a `polling_url` on the cluster that took the task
 * (`api.eu2.bfl.ai`…), which must be polled as given. It is polled, with the key, only if it is
 * https on a `bfl.ai` host or on the configured base URL's origin: a forged `polling_url` must not
 * take the key, or the hub's requests, anywhere else.
 *
 * Model families (the upstream id names one):
 * - FLUX.2 (`flux-2-pro`, `-max`, `-flex`, `-klein-4b`, `-klein-9b`): `width`/`height` in multiples
 *   of 16, up to 4 MP; edits and references as `input_image`, `input_image_2`… (8, klein 4);
 * - FLUX.1 Kontext (`flux-kontext-pro`, `-max`, legacy): about 1 MP at an `aspect_ratio` from 3:7 to
 *   7:3 (`KONTEXT_SIZES`), edits as `input_image` (up to 4);
 * - FLUX1.1 [pro] (`flux-pro-1.1`, legacy): `width`/`height` in multiples of 32, 256 to 1440;
 * - FLUX1.1 [pro] Ultra (`flux-pro-1.1-ultra`, legacy): about 4 MP at an `aspect_ratio`
 *   (`ULTRA_SIZES`), `raw` for a less processed look.
 *
 * Moderation is a task status (`Request Moderated`, `Content Moderated`), never an HTTP error.
 *
 * @example
 * const bfl = createTaskProvider(createBflTaskApi({ apiKey, baseURL: BFL_DEFAULT_BASE_URL }));
 * await bfl.generate(call); // call.model "flux-2-pro", call.size "1024x768"
 */
import { contentPolicy, HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import type { ExtraOption } from "../images/extra-options.ts";
import type { SubmittedTask, TaskApi, TaskStatus } from "./tasks.ts";
import type { HttpProviderOptions, ProviderCall } from "./types.ts";
import { requestUpstreamJson, type UpstreamRequest } from "./upstream.ts";

export const BFL_DEFAULT_BASE_URL = "https://api.bfl.ai";

const RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21"] as const;

/** `side`² pixels at each ratio, each side rounded to a multiple of `grid`. */
function sizesAtRatios(side: number, grid: number): Readonly<Record<string, string>> {
  const round = (value: number) => Math.round(value / grid) * grid;
  return Object.fromEntries(
    RATIOS.map((ratio) => {
      const [w, h] = ratio.split(":").map(Number) as [number, number];
      return [ratio, `${round(side * Math.sqrt(w / h))}x${round(side * Math.sqrt(h / w))}`];
    }),
  );
}

/**
 * The pixel size FLUX.1 Kontext makes for each `aspect_ratio` (16:9 → 1376x768). BFL documents
 * "about 1 MP, each side the nearest multiple of 32" (help.bfl.ai, Aspect Ratios and Output
 * Dimensions), not the pixels: these are 1024² at each ratio, each side rounded to 32.
 */
export const KONTEXT_SIZES = sizesAtRatios(1024, 32);

/**
 * The pixel size FLUX1.1 [pro] Ultra makes for each `aspect_ratio`: about 4 MP, 2048² at the
 * ratio, each side rounded to 64, which gives the 2752x1536 reported for its default 16:9.
 */
export const ULTRA_SIZES = sizesAtRatios(2048, 64);

/** Vendor options by BFL's names, for the catalog's `extra_options` (each model a subset). */
export const BFL_EXTRA_OPTIONS = {
  seed: {
    type: "integer",
    minimum: 0,
    maximum: 4294967295,
    description: "Noise seed, for a reproducible image.",
  },
  safety_tolerance: {
    type: "integer",
    minimum: 0,
    maximum: 6,
    description: "Moderation of input and output, 0 strictest; FLUX.2 takes 0 to 5. Default 2.",
  },
  prompt_upsampling: {
    type: "boolean",
    description: "Let the model rewrite the prompt for a more creative image.",
  },
  steps: { type: "integer", minimum: 1, maximum: 50, description: "FLUX.2 [flex]: steps, 50." },
  guidance: {
    type: "number",
    minimum: 1.5,
    maximum: 10,
    description: "FLUX.2 [flex]: how closely to follow the prompt; 4.5 if unset.",
  },
  raw: { type: "boolean", description: "FLUX1.1 [pro] Ultra: a less processed, candid look." },
} as const satisfies Record<string, ExtraOption>;

type ExtraName = keyof typeof BFL_EXTRA_OPTIONS;

interface Family {
  /** `pixels` sends width/height; a table sends the `aspect_ratio` whose size it lists. */
  sizing: "pixels" | Readonly<Record<string, string>>;
  /** Input images it takes (0: none); the first is the one edited. */
  maxImages: number;
  extras: readonly ExtraName[];
  /** The largest `safety_tolerance` it takes. */
  maxSafety: number;
}

const FLUX2_EXTRAS: readonly ExtraName[] = ["seed", "safety_tolerance"];
const FLUX1_EXTRAS: readonly ExtraName[] = ["seed", "safety_tolerance", "prompt_upsampling"];

/** What each model takes, by upstream id; an unknown `flux-2-*` id is read as FLUX.2 [max]. */
export function familyOf(model: string): Family {
  if (model.startsWith("flux-2-klein")) {
    return { sizing: "pixels", maxImages: 4, extras: FLUX2_EXTRAS, maxSafety: 5 };
  }
  if (model === "flux-2-flex") {
    const extras = [...FLUX2_EXTRAS, "prompt_upsampling", "steps", "guidance"] as const;
    return { sizing: "pixels", maxImages: 8, extras, maxSafety: 5 };
  }
  if (model === "flux-2-pro") {
    const extras = [...FLUX2_EXTRAS, "prompt_upsampling"] as const;
    return { sizing: "pixels", maxImages: 8, extras, maxSafety: 5 };
  }
  if (model.startsWith("flux-2-")) {
    return { sizing: "pixels", maxImages: 8, extras: FLUX2_EXTRAS, maxSafety: 5 };
  }
  if (model.startsWith("flux-kontext-")) {
    return { sizing: KONTEXT_SIZES, maxImages: 4, extras: FLUX1_EXTRAS, maxSafety: 6 };
  }
  if (model === "flux-pro-1.1-ultra") {
    const extras = [...FLUX1_EXTRAS, "raw"] as const;
    return { sizing: ULTRA_SIZES, maxImages: 0, extras, maxSafety: 6 };
  }
  return { sizing: "pixels", maxImages: 0, extras: FLUX1_EXTRAS, maxSafety: 6 };
}

/** The extra options a model takes, as the catalog declares them. */
export function bflExtraOptionsOf(model: string): Record<string, ExtraOption> {
  const family = familyOf(model);
  const options: Record<string, ExtraOption> = {};
  for (const name of family.extras) options[name] = { ...BFL_EXTRA_OPTIONS[name] };
  if (options.safety_tolerance) options.safety_tolerance.maximum = family.maxSafety;
  return options;
}

export function createBflTaskApi(options: HttpProviderOptions): TaskApi {
  const baseURL = (options.baseURL || BFL_DEFAULT_BASE_URL).replace(/\/+$/, "");

  const request = (
    url: string,
    init: UpstreamRequest["init"],
    context: { signal: AbortSignal; timeoutMs: number },
  ) =>
    requestUpstreamJson({
      provider: "Black Forest Labs",
      dispatcher: options.dispatcher,
      byteBudget: options.byteBudget,
      maxReplyBytes: options.maxReplyBytes,
      url,
      init,
      timeoutMs: context.timeoutMs,
      signal: context.signal,
    });
  const headers = { "x-key": options.apiKey, accept: "application/json" };

  return {
    name: "bfl",
    async submit(call, context): Promise<SubmittedTask> {
      const { body, warnings } = requestOf(call);
      let reply: unknown;
      try {
        reply = await request(
          `${baseURL}/v1/${encodeURIComponent(call.model)}`,
          {
            method: "POST",
            headers: { ...headers, "content-type": "application/json" },
            body: JSON.stringify(body),
          },
          context,
        );
      } catch (error) {
        throw bflFailure(error);
      }
      const { id, polling_url: pollingUrl, cost } = (reply ?? {}) as Record<string, unknown>;
      if (typeof id !== "string" || id.length === 0) {
        throw upstreamFailed("Black Forest Labs accepted the task without an id.", {
          code: "upstream_invalid_response",
        });
      }
      // Without a polling_url (the legacy single-cluster API) the task is polled by its id.
      const url =
        typeof pollingUrl === "string"
          ? pollingUrl
          : `${baseURL}/v1/get_result?id=${encodeURIComponent(id)}`;
      const state: Record<string, string> = { polling_url: trustedPollingUrl(url, baseURL) };
      if (typeof cost === "number") state.cost = String(cost);
      // Kept with the task so that the result, read at another poll or after a restart, has them.
      if (warnings.length > 0) state.warnings = JSON.stringify(warnings);
      return { id, state };
    },
    async poll(task, context) {
      // Checked again: the state may come back from the task journal after a restart.
      const url = trustedPollingUrl(task.state.polling_url ?? "", baseURL);
      try {
        const reply = await request(url, { method: "GET", headers }, context);
        return taskStatusOf(reply, warningsOf(task));
      } catch (error) {
        const failure = bflFailure(error);
        // A poll that fails on the way (a 502, a lost connection) is tried again at the next
        // turn: the task runs on upstream, and the engine's budget still bounds the wait.
        if (failure instanceof HubError && failure.retryable) {
          const retryAfterMs = (failure.retryAfterSeconds ?? 0) * 1000 || undefined;
          return { kind: "pending", retryAfterMs };
        }
        if (failure instanceof HubError && failure.code === "upstream_model_not_found") {
          return { kind: "failed", error: expired(failure) };
        }
        throw failure;
      }
    },
  };
}

function expired(cause: unknown) {
  return upstreamFailed("Black Forest Labs no longer has the task or its result.", {
    code: "upstream_result_expired",
    cause,
  });
}

/**
 * The JSON body for the call, and the hints it could not pass on; requests the model cannot
 * honour are refused before anything is sent.
 */
export function requestOf(call: ProviderCall): {
  body: Record<string, unknown>;
  warnings: string[];
} {
  const family = familyOf(call.model);
  if (call.count !== 1) {
    throw invalidRequest(`${call.model} makes one image per call, not ${call.count}.`, "n");
  }
  if (call.mask) {
    throw invalidRequest(`${call.model} takes no mask: describe the change in the prompt.`, "mask");
  }
  if (call.images.length > family.maxImages) {
    throw invalidRequest(
      family.maxImages === 0
        ? `${call.model} makes images from a prompt only; it takes no image.`
        : `${call.model} takes at most ${family.maxImages} images.`,
      "image",
    );
  }
  if (call.outputFormat === "webp") {
    throw invalidRequest(`${call.model} makes png or jpeg images, not webp.`, "output_format");
  }
  const body: Record<string, unknown> = { prompt: call.prompt, ...sizeFields(call, family) };
  call.images.forEach((image, index) => {
    body[index === 0 ? "input_image" : `input_image_${index + 1}`] = image.bytes.toString("base64");
  });
  if (call.outputFormat !== undefined) body.output_format = call.outputFormat;
  const warnings: string[] = [];
  const ignored = (name: string, value: unknown) =>
    warnings.push(`${call.model} takes no '${name}'; '${String(value)}' was not sent.`);
  for (const [name, value] of Object.entries(call.extra ?? {})) {
    // Only what the catalog declares reaches here; the family is the last word on what is sent.
    if ((family.extras as readonly string[]).includes(name)) body[name] = value;
    else ignored(name, value);
  }
  if (call.quality !== undefined) ignored("quality", call.quality);
  if (call.style !== undefined) ignored("style", call.style);
  if (call.background !== undefined && call.background !== "auto") {
    ignored("background", call.background);
  }
  if (call.outputCompression !== undefined) ignored("output_compression", call.outputCompression);
  if (call.moderation === "low") ignored("moderation", call.moderation);
  return { body, warnings };
}

/** `width`/`height`, or the `aspect_ratio` whose size is the one asked; none for the default. */
function sizeFields(call: ProviderCall, family: Family): Record<string, unknown> {
  if (call.size === undefined) return {};
  if (family.sizing === "pixels") {
    const [width, height] = call.size.split("x").map(Number);
    return { width, height };
  }
  const ratio = Object.entries(family.sizing).find(([, size]) => size === call.size)?.[0];
  if (ratio === undefined) {
    const sizes = Object.values(family.sizing).join(", ");
    throw invalidRequest(`${call.model} makes ${sizes}; not ${call.size}.`, "size");
  }
  return { aspect_ratio: ratio };
}

/** 402 is the hub's BFL account out of credits: not the client's fault, so not a 400. */
function bflFailure(error: unknown): unknown {
  if (!(error instanceof HubError)) return error;
  const cause = error.cause as { status?: number } | undefined;
  if (cause?.status === 402) {
    return upstreamFailed("The hub's Black Forest Labs account has run out of credits.", {
      code: "upstream_insufficient_credit",
      upstreamStatus: 402,
      cause,
    });
  }
  return error;
}

/**
 * Where a task may be polled: its `polling_url` if it is https on a `bfl.ai` host (the regional
 * clusters, `api.eu2.bfl.ai`) or on the configured base URL's origin (a proxy, a test simulator).
 *
 * @throws HubError 502 `upstream_invalid_response` for any other URL.
 */
export function trustedPollingUrl(url: string, baseURL: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw untrustedPollingUrl(url);
  }
  if (parsed.username !== "" || parsed.password !== "") throw untrustedPollingUrl(url);
  const onBfl =
    parsed.protocol === "https:" &&
    (parsed.hostname === "bfl.ai" || parsed.hostname.endsWith(".bfl.ai"));
  if (onBfl || parsed.origin === new URL(baseURL).origin) return parsed.href;
  throw untrustedPollingUrl(url);
}

function untrustedPollingUrl(url: string) {
  return upstreamFailed("Black Forest Labs answered with a polling URL the hub does not trust.", {
    code: "upstream_invalid_response",
    cause: { pollingUrl: url },
  });
}

function warningsOf(task: SubmittedTask): string[] {
  try {
    const parsed: unknown = JSON.parse(task.state.warnings ?? "[]");
    return Array.isArray(parsed) ? parsed.filter((item) => typeof item === "string") : [];
  } catch {
    return [];
  }
}

/**
 * A `get_result` reply as a task status. `Pending` and statuses BFL may add later wait (the
 * engine's budget bounds them); the moderation statuses are content-policy refusals; `Task not
 * found` is a task BFL no longer keeps; a result whose signed URL has already expired (its `se`)
 * is one too, as fetching it could only fail.
 */
export function taskStatusOf(reply: unknown, warnings: string[], now = Date.now()): TaskStatus {
  const root = (reply && typeof reply === "object" ? reply : {}) as Record<string, unknown>;
  const status = typeof root.status === "string" ? root.status : "";
  const details = { status, details: root.details, error: root.error };
  switch (status) {
    case "Ready": {
      const result = (root.result ?? {}) as Record<string, unknown>;
      const sample = result.sample;
      if (typeof sample !== "string" || sample.length === 0) {
        const error = upstreamFailed("Black Forest Labs finished the task without an image.", {
          code: "upstream_no_image",
        });
        return { kind: "failed", error };
      }
      if (signedExpiry(sample) <= now) return { kind: "failed", error: expired(details) };
      const image = { kind: "url" as const, url: sample, revisedPrompt: undefined };
      return { kind: "done", result: { images: [image], usage: undefined, warnings } };
    }
    case "Request Moderated":
      return {
        kind: "failed",
        error: contentPolicy("Black Forest Labs' moderation refused the prompt or image.", details),
      };
    case "Content Moderated":
      return {
        kind: "failed",
        error: contentPolicy("Black Forest Labs' moderation withheld the image it made.", details),
      };
    case "Task not found":
      return { kind: "failed", error: expired(details) };
    case "Error": {
      const error = upstreamFailed("Black Forest Labs failed to make the image.", {
        code: "upstream_task_failed",
        cause: details,
      });
      return { kind: "failed", error };
    }
    default:
      return { kind: "pending" };
  }
}

/** When a signed delivery URL stops working (its `se` parameter), or never if it names none. */
function signedExpiry(url: string): number {
  try {
    const expiry = Date.parse(new URL(url).searchParams.get("se") ?? "");
    return Number.isFinite(expiry) ? expiry : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
