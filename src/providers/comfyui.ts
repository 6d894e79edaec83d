/**
 * ComfyUI, through the HTTP API its server (`server.py`) offers: a model is a workflow in the API
 * format (node id → `{class_type, inputs}`), the catalog's `request_template`, with placeholders
 * filled per call. `POST /prompt` queues it, `GET /history/{prompt_id}` says when it has ended,
 * `GET /view` serves its images, `POST /queue {delete}` and `POST /interrupt {prompt_id}` cancel.
 * The base URL is the server's root; ComfyUI has no auth of its own, so a key is optional and
 * sent as a bearer token (for a reverse proxy in front of it).
 *
 * Placeholders, in any string of the workflow: `{{prompt}}`, `{{negative_prompt}}`,
 * `{{width}}`, `{{height}}`, `{{seed}}`, `{{count}}` (the batch size), `{{image}}` (an edit's
 * input image, uploaded first), and `{{name}}` for any other option the catalog declares for the
 * model (`{{steps}}`). `{{name|default}}` gives the value used when the call has none. A
 * placeholder that is the whole string takes the value's own type (`"{{width}}"` → 1024), one
 * inside a longer string is written into it (`"photo of {{prompt}}"`).
 *
 * Traps, as ComfyUI's sources and issues show them:
 * - it caches every node's output, and answers a workflow identical to one it ran at once, with
 *   the earlier run's files and no new image (Comfy-Org/ComfyUI#6261): each call gets a random
 *   seed unless the client gave one, so only a repeat of the same seed is a cache hit, and
 *   `{{seed}}` is required;
 * - `/history/{id}` is `{}` while the prompt is queued or running, and also for one ComfyUI lost
 *   (restarted, queue cleared): `/queue` tells them apart;
 * - `/interrupt` stops whatever runs; since PR #9607 (2025-08) it takes a `prompt_id` and
 *   ignores one that is not running, but older servers ignore the body, so the prompt is
 *   interrupted only when `/queue` shows it running;
 * - result files live in the server's output folder, and `/view` answers 404 once they are gone;
 * - an invalid workflow is a 400 `{error, node_errors}` naming the nodes at fault.
 *
 * @example
 * const comfy = createTaskProvider(createComfyUITaskApi({ apiKey: "", baseURL: "http://127.0.0.1:8188" }));
 * const { images } = await comfy.generate({ ...call, template: workflow, size: "1024x1024" });
 */
import { randomInt, randomUUID } from "node:crypto";
import { HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import { EXTENSION_OF_MIME_TYPE, sniffImageType } from "../image-formats.ts";
import { ignoredHints } from "./ignored-hints.ts";
import { encodeMultipart } from "./multipart.ts";
import type { SubmittedTask, TaskApi, TaskRequestContext } from "./tasks.ts";
import type { HttpProviderOptions, ProviderCall, ProviderImage } from "./types.ts";
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  requestUpstreamBytes,
  requestUpstreamJson,
} from "./upstream.ts";

const PROVIDER = "ComfyUI";

/** The options a ComfyUI model may declare (`extra_options`); each fills its `{{name}}`. */
export const COMFYUI_EXTRA_OPTIONS = {
  negative_prompt: {
    type: "string",
    max_length: 10_000,
    description: "What the image should not show.",
  },
  seed: {
    type: "integer",
    minimum: 0,
    // KSampler takes up to 2^64 - 1; JSON numbers are exact up to 2^53 - 1.
    maximum: Number.MAX_SAFE_INTEGER,
    description: "Random when unset; image i of a batch uses its own noise from this seed.",
  },
  steps: { type: "integer", minimum: 1, maximum: 150, description: "Sampling steps." },
} as const;

/** Placeholders the adapter fills itself; any other needs a declared option or a default. */
const BUILT_IN = ["prompt", "negative_prompt", "width", "height", "seed", "count", "image"];
const PLACEHOLDER = /\{\{([a-z][a-z0-9_]*)(?:\|([^}]*))?\}\}/g;

export interface ComfyUITaskOptions extends HttpProviderOptions {
  /** ComfyUI's `client_id` (its websocket session); one per hub process by default. */
  clientId?: string;
}

/**
 * What is wrong with a workflow as a model's `request_template`, or undefined when nothing is:
 * the admin API refuses a bad one with this message.
 */
export function checkComfyWorkflow(template: unknown): string | undefined {
  if (!template || typeof template !== "object" || Array.isArray(template)) {
    return "must be a ComfyUI workflow in the API format: an object of node id → {class_type, inputs}";
  }
  const nodes = template as Record<string, unknown>;
  if (Array.isArray(nodes.nodes) && Array.isArray(nodes.links)) {
    return "is a workflow in ComfyUI's UI format: export it with 'Export (API)' instead";
  }
  if (Object.keys(nodes).length === 0) return "has no nodes";
  for (const [id, node] of Object.entries(nodes)) {
    const { class_type: classType, inputs } = (node ?? {}) as Record<string, unknown>;
    if (typeof classType !== "string" || classType === "") {
      return `node ${id} has no class_type`;
    }
    if (!inputs || typeof inputs !== "object" || Array.isArray(inputs)) {
      return `node ${id} (${classType}) has no inputs object`;
    }
    for (const [name, value] of Object.entries(inputs)) {
      if (Array.isArray(value) && value.length === 2 && !(String(value[0]) in nodes)) {
        return `node ${id} (${classType}) links its input '${name}' to node ${String(value[0])}, which the workflow lacks`;
      }
    }
  }
  const found = placeholdersOf(template);
  for (const required of ["prompt", "seed"]) {
    if (!found.some((placeholder) => placeholder.name === required)) {
      return required === "prompt"
        ? "has no {{prompt}} placeholder: the client's prompt would not reach the workflow"
        : "has no {{seed}} placeholder: ComfyUI would answer a repeated prompt from its cache with the same image";
    }
  }
  const loose = found.find((item) => !BUILT_IN.includes(item.name) && item.fallback === undefined);
  if (loose) {
    return `has {{${loose.name}}} without a default: write {{${loose.name}|value}} for calls that do not set it`;
  }
  return undefined;
}

/** Whether the workflow takes an input image (an edit model). */
export function comfyWorkflowEdits(template: unknown): boolean {
  return placeholdersOf(template).some((placeholder) => placeholder.name === "image");
}

function placeholdersOf(value: unknown): { name: string; fallback: string | undefined }[] {
  if (typeof value === "string") {
    return [...value.matchAll(PLACEHOLDER)].map((match) => ({
      name: match[1] as string,
      fallback: match[2],
    }));
  }
  if (value && typeof value === "object") return Object.values(value).flatMap(placeholdersOf);
  return [];
}

/** A copy of the workflow with every placeholder filled; values have their own types. */
function fillWorkflow(value: unknown, fill: (name: string, fallback?: string) => unknown): unknown {
  if (typeof value === "string") {
    const whole = /^\{\{([a-z][a-z0-9_]*)(?:\|([^}]*))?\}\}$/.exec(value);
    if (whole) return fill(whole[1] as string, whole[2]);
    // One pass: a prompt that contains "{{seed}}" stays as the client wrote it.
    return value.replace(PLACEHOLDER, (_, name: string, fallback?: string) =>
      String(fill(name, fallback)),
    );
  }
  if (Array.isArray(value)) return value.map((item) => fillWorkflow(item, fill));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, fillWorkflow(item, fill)]),
    );
  }
  return value;
}

export function createComfyUITaskApi(options: ComfyUITaskOptions): TaskApi {
  const root = options.baseURL.replace(/\/+$/, "");
  const clientId = options.clientId ?? randomUUID();
  const headers: Record<string, string> = { accept: "application/json" };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;

  function send(
    method: "GET" | "POST",
    path: string,
    context: TaskRequestContext,
    body?: { bytes: Buffer | string; contentType: string },
  ) {
    return {
      provider: PROVIDER,
      // A refused workflow names the nodes at fault (`node_errors`), not just "failed validation".
      describeError: nodeErrorSummary,
      dispatcher: options.dispatcher,
      byteBudget: options.byteBudget,
      maxReplyBytes: options.maxReplyBytes,
      url: `${root}${path}`,
      init: {
        method,
        headers: body ? { ...headers, "content-type": body.contentType } : headers,
        body: body?.bytes,
      },
      timeoutMs: Math.min(context.timeoutMs, options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS),
      signal: context.signal,
    };
  }
  const json = (value: unknown) => ({
    bytes: JSON.stringify(value),
    contentType: "application/json",
  });

  async function upload(call: ProviderCall, context: TaskRequestContext): Promise<string> {
    const [image] = call.images;
    if (!image) throw invalidRequest("This model edits an image: send one.", "image");
    const form = encodeMultipart([
      {
        name: "image",
        filename: `image-hub-${randomUUID()}.${EXTENSION_OF_MIME_TYPE[image.mimeType]}`,
        contentType: image.mimeType,
        bytes: image.bytes,
      },
      { name: "type", value: "input" },
    ]);
    const reply = (await requestUpstreamJson(
      send("POST", "/upload/image", context, { bytes: form.body, contentType: form.contentType }),
    )) as { name?: unknown; subfolder?: unknown };
    if (typeof reply?.name !== "string") throw invalidResponse("did not name the uploaded image");
    // LoadImage names files below the input folder by their path in it.
    return typeof reply.subfolder === "string" && reply.subfolder !== ""
      ? `${reply.subfolder}/${reply.name}`
      : reply.name;
  }

  async function submit(call: ProviderCall, context: TaskRequestContext): Promise<SubmittedTask> {
    const problem = checkComfyWorkflow(call.template);
    if (problem) {
      throw upstreamFailed(`The ComfyUI workflow of model '${call.model}' ${problem}.`, {
        code: "model_misconfigured",
      });
    }
    const found = placeholdersOf(call.template);
    const has = (name: string) => found.some((placeholder) => placeholder.name === name);
    if (call.mask) throw invalidRequest(`${PROVIDER} models take no mask.`, "mask");
    if (call.images.length > 0 && !has("image")) {
      throw invalidRequest(`The workflow of '${call.model}' does not edit images.`, "image");
    }
    if (call.count > 1 && !has("count")) {
      throw upstreamFailed(
        `The ComfyUI workflow of model '${call.model}' has no {{count}}, so it makes one image per call: set its max_per_call to 1.`,
        { code: "model_misconfigured" },
      );
    }
    const warnings = ignoredHints(PROVIDER, call);
    for (const name of Object.keys(call.extra ?? {})) {
      if (!has(name)) warnings.push(`The workflow has no {{${name}}}; '${name}' was not used.`);
    }
    const imageName = has("image") ? await upload(call, context) : undefined;
    const size = sizeOf(call);
    const workflow = fillWorkflow(call.template, (name, fallback) => {
      const given = givenValue(name, call, size, imageName);
      if (given !== undefined) return given;
      if (fallback !== undefined) return typed(fallback);
      if (name === "negative_prompt") return "";
      throw upstreamFailed(
        `The ComfyUI workflow of model '${call.model}' has {{${name}}} and the call gives no value for it.`,
        { code: "model_misconfigured" },
      );
    });
    let reply: { prompt_id?: unknown };
    try {
      reply = (await requestUpstreamJson(
        send("POST", "/prompt", context, json({ prompt: workflow, client_id: clientId })),
      )) as { prompt_id?: unknown };
    } catch (error) {
      throw workflowRefusal(error, call.model);
    }
    if (typeof reply?.prompt_id !== "string") throw invalidResponse("did not name the prompt");
    return {
      id: reply.prompt_id,
      state: {
        prompt_id: reply.prompt_id,
        count: String(call.count),
        warnings: JSON.stringify(warnings),
      },
    };
  }

  async function poll(task: SubmittedTask, context: TaskRequestContext) {
    const entry = await historyOf(task.id, context);
    if (entry === undefined) {
      const where = await queuePlaceOf(task.id, context);
      if (where !== "gone") return { kind: "pending" as const };
      // It may have ended between the two requests: one more look before calling it lost.
      const late = await historyOf(task.id, context);
      if (late === undefined) {
        return {
          kind: "failed" as const,
          error: upstreamFailed(
            `${PROVIDER} no longer knows the task: it was restarted or its queue was cleared.`,
            { code: "upstream_task_lost" },
          ),
        };
      }
      return ended(task, late, context);
    }
    return ended(task, entry, context);
  }

  async function ended(task: SubmittedTask, entry: HistoryEntry, context: TaskRequestContext) {
    const failure = failureOf(entry);
    if (failure) return { kind: "failed" as const, error: failure };
    const count = Number(task.state.count ?? "1");
    const files = filesOf(entry).slice(0, count);
    if (files.length < count) {
      return {
        kind: "failed" as const,
        error: invalidResponse(
          files.length === 0
            ? "made no image: the workflow saves none (SaveImage), or ComfyUI answered a repeat of an earlier run from its cache and no longer has its images"
            : `made ${files.length} images for ${count}`,
        ),
      };
    }
    const images: ProviderImage[] = [];
    for (const file of files) {
      const query = new URLSearchParams(file).toString();
      let bytes: Buffer;
      try {
        bytes = await requestUpstreamBytes(send("GET", `/view?${query}`, context));
      } catch (error) {
        if (error instanceof HubError && error.code === "upstream_model_not_found") {
          const expired = upstreamFailed(
            `${PROVIDER} no longer has the image '${file.filename}'.`,
            {
              code: "upstream_result_expired",
              cause: error,
            },
          );
          return { kind: "failed" as const, error: expired };
        }
        throw error;
      }
      const mimeType = sniffImageType(bytes);
      if (!mimeType) throw invalidResponse(`served '${file.filename}', which is not an image`);
      images.push({ kind: "bytes", bytes, mimeType, revisedPrompt: undefined });
    }
    const warnings = JSON.parse(task.state.warnings ?? "[]") as string[];
    return { kind: "done" as const, result: { images, usage: undefined, warnings } };
  }

  async function historyOf(id: string, context: TaskRequestContext) {
    const path = `/history/${encodeURIComponent(id)}`;
    const reply = (await requestUpstreamJson(send("GET", path, context))) as Record<
      string,
      unknown
    >;
    const entry = reply?.[id];
    return entry && typeof entry === "object" ? (entry as HistoryEntry) : undefined;
  }

  /** `/queue` lists `[number, prompt_id, prompt, extra_data, outputs]` per item. */
  async function queuePlaceOf(id: string, context: TaskRequestContext) {
    const reply = (await requestUpstreamJson(send("GET", "/queue", context))) as {
      queue_running?: unknown[];
      queue_pending?: unknown[];
    };
    const holds = (items: unknown[] | undefined) =>
      Array.isArray(items) && items.some((item) => Array.isArray(item) && item[1] === id);
    if (holds(reply?.queue_running)) return "running";
    if (holds(reply?.queue_pending)) return "queued";
    return "gone";
  }

  async function cancel(task: SubmittedTask, context: TaskRequestContext): Promise<void> {
    // Deleting a prompt that is not queued does nothing, so this is safe whatever its state.
    await requestUpstreamBytes(send("POST", "/queue", context, json({ delete: [task.id] })));
    if ((await queuePlaceOf(task.id, context)) === "running") {
      await requestUpstreamBytes(send("POST", "/interrupt", context, json({ prompt_id: task.id })));
    }
  }

  return { name: PROVIDER, submit, poll, cancel };
}

interface HistoryEntry {
  outputs?: Record<
    string,
    { images?: { filename?: unknown; subfolder?: unknown; type?: unknown }[] }
  >;
  status?: { status_str?: unknown; messages?: unknown };
}

/** Saved images first (`output`), previews (`temp`) only when the workflow saves none. */
function filesOf(entry: HistoryEntry) {
  const files = Object.values(entry.outputs ?? {}).flatMap((output) =>
    (Array.isArray(output?.images) ? output.images : []).flatMap((image) =>
      typeof image?.filename === "string"
        ? [
            {
              filename: image.filename,
              subfolder: typeof image.subfolder === "string" ? image.subfolder : "",
              type: typeof image.type === "string" ? image.type : "output",
            },
          ]
        : [],
    ),
  );
  const saved = files.filter((file) => file.type === "output");
  return saved.length > 0 ? saved : files;
}

/** The error of a run that failed or was interrupted (`status.messages`), if it did. */
function failureOf(entry: HistoryEntry): HubError | undefined {
  if (entry.status?.status_str !== "error") return undefined;
  const messages = Array.isArray(entry.status.messages) ? entry.status.messages : [];
  for (const message of messages) {
    if (!Array.isArray(message)) continue;
    const [event, data] = message as [unknown, Record<string, unknown> | undefined];
    const node = `node ${String(data?.node_id)} (${String(data?.node_type)})`;
    if (event === "execution_interrupted") {
      return upstreamFailed(`${PROVIDER} interrupted the workflow at ${node}.`);
    }
    if (event === "execution_error") {
      const reason = String(data?.exception_message ?? "")
        .trim()
        .split("\n")[0];
      return upstreamFailed(`${PROVIDER} failed the workflow at ${node}: ${reason}`);
    }
  }
  return upstreamFailed(`${PROVIDER} failed the workflow.`);
}

/**
 * A 400 from `POST /prompt` is the workflow failing ComfyUI's validation: a checkpoint it does
 * not have, an input out of range. The model's workflow is the admin's, so it is a 502.
 */
function workflowRefusal(error: unknown, model: string): unknown {
  if (!(error instanceof HubError) || error.status !== 400) return error;
  const cause = error.cause as { upstream?: { message?: string } } | undefined;
  const detail = cause?.upstream?.message ?? "invalid workflow";
  return upstreamFailed(`${PROVIDER} refused the workflow of model '${model}': ${detail}`, {
    code: "upstream_workflow_invalid",
    upstreamStatus: 400,
    cause: error,
  });
}

/** `{error, node_errors}` as one line naming each node at fault, or undefined if none is. */
export function nodeErrorSummary(text: string): string | undefined {
  let body: { node_errors?: Record<string, { class_type?: unknown; errors?: unknown }> };
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parts = Object.entries(body?.node_errors ?? {}).map(([id, node]) => {
    const reasons = (Array.isArray(node?.errors) ? node.errors : []).map((reason) => {
      const { message, details } = (reason ?? {}) as { message?: unknown; details?: unknown };
      return details ? `${String(message)}: ${String(details)}` : String(message);
    });
    return `node ${id} (${String(node?.class_type)}): ${reasons.join("; ")}`;
  });
  return parts.length > 0 ? parts.join("; ") : undefined;
}

/** The call's value for a placeholder; undefined where the workflow's default applies. */
function givenValue(
  name: string,
  call: ProviderCall,
  size: { width: number; height: number } | undefined,
  imageName: string | undefined,
): unknown {
  switch (name) {
    case "prompt":
      return call.prompt;
    case "width":
      return size?.width;
    case "height":
      return size?.height;
    case "seed":
      // Random unless given, never the workflow's default: a repeat is answered from the cache.
      return call.extra?.seed ?? randomInt(0, 2 ** 47);
    case "count":
      return call.count;
    case "image":
      return imageName;
    default:
      return call.extra?.[name];
  }
}

/** The call's size; an edit without one keeps its input's size, floored to multiples of 8. */
function sizeOf(call: ProviderCall): { width: number; height: number } | undefined {
  const match = /^(\d+)x(\d+)$/.exec(call.size ?? "");
  if (match) return { width: Number(match[1]), height: Number(match[2]) };
  const [image] = call.images;
  if (!image) return undefined;
  return {
    width: Math.max(64, image.width - (image.width % 8)),
    height: Math.max(64, image.height - (image.height % 8)),
  };
}

/** A default written in the workflow (`{{steps|25}}`): a number where it reads as one. */
function typed(fallback: string): unknown {
  const number = Number(fallback);
  return fallback.trim() !== "" && Number.isFinite(number) ? number : fallback;
}

function invalidResponse(what: string): HubError {
  return upstreamFailed(`${PROVIDER} ${what}.`, { code: "upstream_invalid_response" });
}
