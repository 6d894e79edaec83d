/**
 * fal's queue API (https://queue.fal.run), through the task engine (providers/tasks.ts):
 *
 * - submit: `POST {base}/{model id}` with `Authorization: Key <FAL_KEY>` and the model's JSON
 *   input; the reply names the task: `{request_id, status_url, response_url, cancel_url}`;
 * - poll: `GET status_url?logs=0` answers `IN_QUEUE` (with `queue_position`) or `IN_PROGRESS`
 *   (202), then `COMPLETED` (200); the result is then at `GET response_url`: the model's own
 *   reply (`{images: [{url, width, height, content_type}], seed, has_nsfw_concepts}`), or the
 *   model's own error (a 422 `content_policy_violation`, a 500…);
 * - cancel: `PUT cancel_url` (a queued task is dropped, a running one is asked to stop).
 *
 * fal builds the three URLs on the app's root, not on the model id (`fal-ai/flux/schnell` is
 * polled under `fal-ai/flux/requests/…`), so they are taken from the submit reply and kept in
 * the task's state, never rebuilt. They are followed only on the configured base URL's origin:
 * a reply (or a journal entry after a restart) naming another host would have the hub send its
 * fal key there.
 *
 * Sizes: fal's image models take `image_size` as a named preset; `FAL_IMAGE_SIZES` lists the
 * pixels of each, and the catalog lists exactly those sizes. fal keeps a result for an hour (six
 * minutes when it is 10 KB or more) and its image URLs on its CDN for a limited time, so the
 * engine fetches them at once; a result gone from the queue is `upstream_result_expired`.
 *
 * Safety: the hub always sends `enable_safety_checker: true`. fal answers a flagged image with a
 * black image and `has_nsfw_concepts: [true]`; such an image is never delivered.
 *
 * @example
 * const fal = createTaskProvider(createFalTaskApi({ apiKey, baseURL: FAL_DEFAULT_BASE_URL }));
 * await fal.generate(call); // call.model "fal-ai/flux/schnell", call.size "1024x768"
 */
import { contentPolicy, HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import type { ExtraOption } from "../images/extra-options.ts";
import { invalidResponse } from "./openai-images.ts";
import type { SubmittedTask, TaskApi, TaskRequestContext, TaskStatus } from "./tasks.ts";
import type { HttpProviderOptions, ProviderCall } from "./types.ts";
import { requestUpstreamJson, type UpstreamErrorBody, type UpstreamRequest } from "./upstream.ts";

export const FAL_DEFAULT_BASE_URL = "https://queue.fal.run";
const PROVIDER = "fal";

/** fal's `image_size` presets and the pixels each makes (fal's "Model arguments" page). */
export const FAL_IMAGE_SIZES = {
  "1024x1024": "square_hd",
  "512x512": "square",
  "768x1024": "portrait_4_3",
  "576x1024": "portrait_16_9",
  "1024x768": "landscape_4_3",
  "1024x576": "landscape_16_9",
} as const;

const SEED = {
  type: "integer",
  minimum: 0,
  maximum: 2147483647,
  description: "Noise seed: the same seed and prompt make the same image.",
} as const satisfies ExtraOption;

/**
 * Vendor options by fal's names, per built-in model, for the catalog's `extra_options`. The
 * adapter passes whatever the catalog lets through as is, so a model added by an operator takes
 * the options its row declares.
 */
export const FAL_EXTRA_OPTIONS = {
  "fal-ai/flux/schnell": {
    seed: SEED,
    num_inference_steps: {
      type: "integer",
      minimum: 1,
      maximum: 12,
      description: "Denoising steps (4 if unset).",
    },
  },
  "fal-ai/flux/dev": {
    seed: SEED,
    num_inference_steps: {
      type: "integer",
      minimum: 1,
      maximum: 50,
      description: "Denoising steps (28 if unset).",
    },
    guidance_scale: {
      type: "number",
      minimum: 1,
      maximum: 20,
      description: "How closely to follow the prompt (3.5 if unset).",
    },
  },
  "fal-ai/flux-2-pro": {
    seed: SEED,
    safety_tolerance: {
      type: "string",
      enum: ["1", "2", "3", "4", "5"],
      description: "1 is the strictest, 5 the most permissive (2 if unset).",
    },
  },
} as const satisfies Record<string, Record<string, ExtraOption>>;

/** `upstream.ts` types only POST and GET; undici sends any method. Widen the type there. */

export interface FalTaskApiOptions extends HttpProviderOptions {}

export function createFalTaskApi(options: FalTaskApiOptions): TaskApi {
  const baseURL = (options.baseURL || FAL_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const origin = new URL(baseURL).origin;
  const headers = { authorization: `Key ${options.apiKey}`, accept: "application/json" };

  const request = (
    url: string,
    init: UpstreamRequest["init"],
    context: TaskRequestContext,
  ): Promise<unknown> =>
    requestUpstreamJson({
      provider: PROVIDER,
      dispatcher: options.dispatcher,
      byteBudget: options.byteBudget,
      url,
      init,
      timeoutMs: context.timeoutMs,
      maxReplyBytes: options.maxReplyBytes,
      signal: context.signal,
      isContentPolicy,
    });

  /** A URL from fal's reply or the journal, if it is on the configured origin. */
  const onOrigin = (value: unknown, name: string): string => {
    const url = typeof value === "string" && URL.canParse(value) ? new URL(value) : undefined;
    if (url?.origin !== origin) {
      throw invalidResponse(`fal named a ${name} that is not on its base URL's origin.`);
    }
    return url.href;
  };

  return {
    name: PROVIDER,
    async submit(call, context): Promise<SubmittedTask> {
      const { body, warnings } = inputOf(call);
      const reply = recordOf(
        await request(
          `${baseURL}/${call.model}`,
          {
            method: "POST",
            headers: { ...headers, "content-type": "application/json" },
            body: JSON.stringify(body),
          },
          context,
        ),
      );
      if (typeof reply.request_id !== "string" || reply.request_id === "") {
        throw invalidResponse("fal accepted the request without a request_id.");
      }
      const state: Record<string, string> = {
        status_url: onOrigin(reply.status_url, "status_url"),
        response_url: onOrigin(reply.response_url, "response_url"),
        cancel_url: onOrigin(reply.cancel_url, "cancel_url"),
      };
      // Warnings are known at submit; the result carries them (see poll).
      if (warnings.length > 0) state.warnings = JSON.stringify(warnings);
      return { id: reply.request_id, state };
    },

    async poll(task, context): Promise<TaskStatus> {
      const statusURL = new URL(onOrigin(task.state.status_url, "status_url"));
      statusURL.searchParams.set("logs", "0");
      let status: Record<string, unknown>;
      try {
        status = recordOf(await request(statusURL.href, { method: "GET", headers }, context));
      } catch (error) {
        // A passing fault on one poll is not the task's end: look again, within the budget.
        if (error instanceof HubError && error.retryable) {
          const retryAfterMs = error.retryAfterSeconds && error.retryAfterSeconds * 1000;
          return retryAfterMs ? { kind: "pending", retryAfterMs } : { kind: "pending" };
        }
        throw error;
      }
      if (status.status === "IN_QUEUE" || status.status === "IN_PROGRESS") {
        return { kind: "pending" };
      }
      if (status.status !== "COMPLETED") {
        throw invalidResponse(`fal answered an unknown status ${String(status.status)}.`);
      }
      const responseURL = onOrigin(task.state.response_url, "response_url");
      let output: unknown;
      try {
        output = await request(responseURL, { method: "GET", headers }, context);
      } catch (error) {
        return failedResult(error);
      }
      const warnings = task.state.warnings ? (JSON.parse(task.state.warnings) as string[]) : [];
      return falResultOf(output, warnings);
    },

    async cancel(task, context): Promise<void> {
      const cancelURL = onOrigin(task.state.cancel_url, "cancel_url");
      await request(cancelURL, { method: "PUT", headers }, context);
    },
  };
}

/** The model's JSON input, and the hints it could not pass on. */
function inputOf(call: ProviderCall) {
  const warnings: string[] = [];
  const ignored = (name: string, value: unknown) =>
    warnings.push(`${call.model} takes no '${name}'; '${String(value)}' was not sent.`);
  if (call.images.length > 0 || call.mask) {
    throw invalidRequest(
      `${call.model} makes images from a prompt only; it takes no image.`,
      "image",
    );
  }
  if (call.outputFormat === "webp") {
    throw invalidRequest(`${call.model} makes png and jpeg images, not webp.`, "output_format");
  }
  const body: Record<string, unknown> = {
    ...call.extra,
    prompt: call.prompt,
    output_format: call.outputFormat ?? "png",
    enable_safety_checker: true,
  };
  if (call.size !== undefined) {
    const preset = FAL_IMAGE_SIZES[call.size as keyof typeof FAL_IMAGE_SIZES];
    if (preset === undefined) {
      const sizes = Object.keys(FAL_IMAGE_SIZES).join(", ");
      throw invalidRequest(`${call.model} makes ${sizes}; not ${call.size}.`, "size");
    }
    body.image_size = preset;
  }
  // Single-image models (FLUX.2 [pro]) take no `num_images`; the catalog keeps them at one.
  if (call.count > 1) body.num_images = call.count;
  if (call.quality !== undefined) ignored("quality", call.quality);
  if (call.style !== undefined) ignored("style", call.style);
  if (call.background !== undefined && call.background !== "auto") {
    ignored("background", call.background);
  }
  if (call.outputCompression !== undefined) ignored("output_compression", call.outputCompression);
  if (call.moderation === "low") ignored("moderation", call.moderation);
  return { body, warnings };
}

/**
 * What a failed result fetch means for the task. fal answers the result URL with the model's own
 * error; a result no longer kept (an hour, or six minutes for 10 KB and more) is gone: 404.
 */
function failedResult(error: unknown): TaskStatus {
  if (!(error instanceof HubError)) throw error;
  const upstreamStatus = (error.cause as { status?: number } | undefined)?.status;
  if (error.code === "content_policy_violation") return { kind: "failed", error };
  if (upstreamStatus === 401 || upstreamStatus === 403) throw error;
  if (upstreamStatus === 404 || upstreamStatus === 410) {
    return {
      kind: "failed",
      error: upstreamFailed("fal no longer holds the task's result.", {
        code: "upstream_result_expired",
        cause: error,
      }),
    };
  }
  return {
    kind: "failed",
    error: upstreamFailed(`fal failed the task: ${error.message}`, { cause: error }),
  };
}

/**
 * fal's model errors are `{"detail": [{loc, msg, type}]}`, a refusal typed
 * `content_policy_violation` (422). The shared parser keeps `msg` only (and the first `type`
 * where it reads one), so the message fal documents for it is matched as well.
 */
function isContentPolicy(status: number, upstream: UpstreamErrorBody): boolean {
  if (status !== 422 && status !== 400) return false;
  if (upstream.type === "content_policy_violation") return true;
  return /content (?:checker|policy)|flagged/i.test(upstream.message ?? "");
}

/**
 * The images of a completed task's output, `{images: [{url, …}], has_nsfw_concepts: [bool]}`.
 * An image fal's safety checker flagged is a black image: never delivered. If every image was
 * flagged the task is a content-policy refusal; otherwise the others are delivered, with a note.
 */
function falResultOf(output: unknown, warnings: string[]): TaskStatus {
  const root = recordOf(output);
  const images = Array.isArray(root.images) ? root.images : [];
  const flags = Array.isArray(root.has_nsfw_concepts) ? root.has_nsfw_concepts : [];
  const urls: string[] = [];
  images.forEach((image, index) => {
    if (flags[index] === true) return;
    const url = (image as { url?: unknown } | null)?.url;
    if (typeof url === "string" && url !== "") urls.push(url);
  });
  const flagged = flags.filter((flag) => flag === true).length;
  if (urls.length === 0 && flagged > 0) {
    return {
      kind: "failed",
      error: contentPolicy("fal's safety checker withheld the image.", { flagged }),
    };
  }
  if (urls.length === 0) {
    return {
      kind: "failed",
      error: upstreamFailed("fal finished the task without an image.", {
        code: "upstream_no_image",
      }),
    };
  }
  const notes = [...warnings];
  if (flagged > 0) notes.push(`fal's safety checker withheld ${flagged} of the images.`);
  return {
    kind: "done",
    result: {
      images: urls.map((url) => ({ kind: "url", url, revisedPrompt: undefined })),
      usage: undefined,
      warnings: notes,
    },
  };
}

function recordOf(value: unknown): Record<string, unknown> {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return value as Record<string, unknown>;
  }
  throw invalidResponse("fal answered with JSON that is not an object.");
}
