/**
 * The OpenAI Images API: `POST /images/generations` (JSON) and `POST /images/edits` (multipart),
 * and the model list, `GET /models`, which tells which models still exist and when they shut down.
 *
 * Each model family takes its own parameters, and OpenAI rejects some it does not take (GPT image
 * models answer 400 to `response_format`), so a request carries only what its model takes; a
 * hint the call carries that the model has no notion of comes back as a warning.
 */
import { invalidRequest } from "../errors.ts";
import {
  type Endpoint,
  editForm,
  imagesResultOf,
  invalidResponse,
  jsonRequestInit,
  type MimeTypeOf,
  mimeTypeOfFormat,
  multipartRequestInit,
  type Parameter,
} from "./openai-images.ts";
import type {
  HttpProviderOptions,
  ImageProvider,
  ProviderCall,
  ProviderResult,
  UpstreamModel,
} from "./types.ts";
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  requestUpstreamJson,
  requestUpstreamPieces,
  type UpstreamErrorBody,
  type UpstreamRequest,
} from "./upstream.ts";

type ModelFamily = "dall-e-2" | "dall-e-3" | "gpt-image";

/**
 * What each family takes beyond model, prompt, n, size and user. DALL·E models also take
 * `response_format`, which the hub always sets to `b64_json`: it hosts images itself.
 */
const ACCEPTED: Record<ModelFamily, Record<Endpoint, readonly Parameter[]>> = {
  "dall-e-2": { generation: [], edit: [] },
  // dall-e-3 does not edit: OpenAI refuses the call, whatever it carries.
  "dall-e-3": { generation: ["quality", "style"], edit: [] },
  "gpt-image": {
    generation: ["quality", "background", "output_format", "output_compression", "moderation"],
    // The edits endpoint has no `moderation`.
    edit: ["quality", "background", "output_format", "output_compression"],
  },
};

/**
 * dall-e-2 and dall-e-3 by name; every other model is taken for a GPT image model (`gpt-image-*`,
 * `chatgpt-image-latest`), whose API OpenAI's newer image models share.
 */
function modelFamilyOf(model: string): ModelFamily {
  if (model === "dall-e-2" || model === "dall-e-3") return model;
  return "gpt-image";
}

/**
 * @example
 * ```ts
 * const openai = createOpenAIProvider({ apiKey, baseURL: "https://api.openai.com/v1" });
 * const result = await openai.generate(call);
 * ```
 */
export function createOpenAIProvider(options: HttpProviderOptions): ImageProvider {
  const baseURL = options.baseURL.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;

  return {
    name: "openai",
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      const family = modelFamilyOf(call.model);
      const endpoint: Endpoint = call.images.length > 0 ? "edit" : "generation";
      if (family === "dall-e-2" && call.images.length > 1) {
        // Its edits endpoint takes one image; editing the first alone would change the result.
        throw invalidRequest("dall-e-2 edits a single image.", "image");
      }
      const { parameters, warnings } = parametersOf(call, family, endpoint);
      const headers = { authorization: `Bearer ${options.apiKey}`, accept: "application/json" };
      // GPT image models take several images as `image[]`; dall-e-2 takes one, as `image`.
      const imageField = family === "dall-e-2" ? "image" : "image[]";
      const init: UpstreamRequest["init"] =
        endpoint === "edit"
          ? multipartRequestInit(headers, editForm(parameters, call.images, call.mask, imageField))
          : jsonRequestInit(headers, parameters);
      const request = {
        provider: "OpenAI",
        dispatcher: options.dispatcher,
        byteBudget: options.byteBudget,
        url: `${baseURL}/images/${endpoint === "edit" ? "edits" : "generations"}`,
        init,
        timeoutMs: call.timeoutMs ?? timeoutMs,
        maxReplyBytes: options.maxReplyBytes,
        signal: call.signal,
        isContentPolicy,
      };
      const bytes = await requestUpstreamPieces(request);
      return { ...imagesResultOf(request, bytes, mimeTypeOf(call, family)), warnings };
    },
    async listModels({ signal, timeoutMs: listTimeoutMs }) {
      signal.throwIfAborted();
      const reply = await requestUpstreamJson({
        provider: "OpenAI",
        dispatcher: options.dispatcher,
        byteBudget: options.byteBudget,
        url: `${baseURL}/models`,
        init: {
          method: "GET",
          headers: { authorization: `Bearer ${options.apiKey}`, accept: "application/json" },
        },
        timeoutMs: listTimeoutMs,
        maxReplyBytes: options.maxReplyBytes,
        signal,
      });
      return modelsOf(reply);
    },
  };
}

/**
 * Reads `data[].id` and `data[].shutdown_date` of a model list; every other field (and every
 * entry without a string id) is ignored. The list holds chat, embedding and audio models too.
 */
function modelsOf(reply: unknown): UpstreamModel[] {
  const data = (reply as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw invalidResponse("OpenAI answered a model list without data.");
  const models: UpstreamModel[] = [];
  for (const item of data) {
    const entry = (typeof item === "object" && item !== null ? item : {}) as Record<
      string,
      unknown
    >;
    if (typeof entry.id !== "string" || entry.id === "") continue;
    models.push({ id: entry.id, shutdownDate: shutdownDateOf(entry.shutdown_date) });
  }
  return models;
}

/**
 * OpenAI documents `shutdown_date` as a `YYYY-MM-DD` string, or null when none is announced;
 * Unix seconds (the unit of its `created`) are taken too, in case a field arrives that way.
 */
function shutdownDateOf(value: unknown): string | null {
  let text = value;
  if (typeof value === "number" && Number.isFinite(value)) {
    const date = new Date(value * 1000);
    text = Number.isNaN(date.getTime()) ? undefined : date.toISOString();
  }
  if (typeof text !== "string") return null;
  return /^\d{4}-\d{2}-\d{2}/.exec(text)?.[0] ?? null;
}

/** OpenAI refuses a prompt or an image with 400 and one of these codes. */
function isContentPolicy(_status: number, upstream: UpstreamErrorBody): boolean {
  return upstream.code === "content_policy_violation" || upstream.code === "moderation_blocked";
}

function parametersOf(
  call: ProviderCall,
  family: ModelFamily,
  endpoint: Endpoint,
): { parameters: Record<string, string | number>; warnings: string[] } {
  const parameters: Record<string, string | number> = {
    model: call.model,
    prompt: call.prompt,
    n: call.count,
  };
  if (call.size !== undefined) parameters.size = call.size;
  if (family !== "gpt-image") parameters.response_format = "b64_json";
  if (call.user !== undefined) parameters.user = call.user;

  const settings: Record<Parameter, string | number | undefined> = {
    quality: call.quality,
    style: call.style,
    background: call.background,
    output_format: call.outputFormat,
    output_compression: call.outputCompression,
    moderation: call.moderation,
  };
  const accepted = ACCEPTED[family][endpoint];
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(settings) as [
    Parameter,
    string | number | undefined,
  ][]) {
    if (value === undefined) continue;
    // DALL·E 2 makes one quality, the spec's `standard`: not sending it changes nothing.
    if (family === "dall-e-2" && name === "quality" && value === "standard") continue;
    if (accepted.includes(name)) {
      parameters[name] = value;
    } else {
      const who = endpoint === "edit" ? `${call.model} edits take` : `${call.model} takes`;
      warnings.push(`${who} no '${name}'; '${value}' was not sent.`);
    }
  }
  return { parameters, warnings };
}

/** DALL·E models make PNGs; GPT image models say which format they made. */
function mimeTypeOf(call: ProviderCall, family: ModelFamily): MimeTypeOf {
  return (format) =>
    family === "gpt-image"
      ? (mimeTypeOfFormat(format ?? call.outputFormat ?? "png") ?? "image/png")
      : "image/png";
}
