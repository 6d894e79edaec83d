/**
 * The OpenAI Images API: `POST /images/generations` (JSON) and `POST /images/edits` (multipart),
 * and the model list, `GET /models`, which tells which models still exist and when they shut down.
 *
 * Each model family takes its own parameters, and OpenAI rejects some it does not take (GPT image
 * models answer 400 to `response_format`), so a request carries only what its model takes; a
 * hint the call carries that the model has no notion of comes back as a warning.
 */
import { invalidRequest, upstreamFailed } from "../errors.ts";
import { EXTENSION_OF_MIME_TYPE, MIME_TYPE_OF_FORMAT } from "../image-formats.ts";
import { cutStringFields } from "./json-cut.ts";
import { type EncodedMultipart, encodeMultipart, type MultipartPart } from "./multipart.ts";
import type {
  HttpProviderOptions,
  ImageProvider,
  InputImage,
  OutputFormat,
  ProviderCall,
  ProviderImage,
  ProviderResult,
  TokenUsage,
  UpstreamModel,
} from "./types.ts";
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  parseUpstreamJson,
  requestUpstreamBytes,
  requestUpstreamJson,
  type UpstreamErrorBody,
  type UpstreamRequest,
} from "./upstream.ts";

type ModelFamily = "dall-e-2" | "dall-e-3" | "gpt-image";
type Endpoint = "generation" | "edit";

/** A setting of the call, by the name OpenAI gives it. */
type Parameter =
  | "quality"
  | "style"
  | "background"
  | "output_format"
  | "output_compression"
  | "moderation";

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
      const init: UpstreamRequest["init"] =
        endpoint === "edit"
          ? multipartRequest(headers, editForm(call, family, parameters))
          : {
              method: "POST",
              headers: { ...headers, "content-type": "application/json" },
              body: JSON.stringify(parameters),
            };
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
      const bytes = await requestUpstreamBytes(request);
      // The base64 stays the bytes that arrived (see json-cut.ts); anything unusual is parsed whole.
      const cut = cutStringFields(bytes, "b64_json");
      if (cut && base64FieldCount(cut.skeleton) === cut.values.length) {
        return { ...resultOf(cut.skeleton, call, family, cut.values), warnings };
      }
      return { ...resultOf(parseUpstreamJson(request, bytes), call, family), warnings };
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

/** How many `data[].b64_json` strings a reply has: each must match one cut-out value. */
function base64FieldCount(reply: unknown): number {
  const data = (reply as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return -1;
  return data.filter((item) => typeof (item as { b64_json?: unknown })?.b64_json === "string")
    .length;
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

function editForm(
  call: ProviderCall,
  family: ModelFamily,
  parameters: Record<string, string | number>,
): EncodedMultipart {
  const parts: MultipartPart[] = Object.entries(parameters).map(([name, value]) => ({
    name,
    value: String(value),
  }));
  // GPT image models take several images as `image[]`; dall-e-2 takes one, as `image`.
  const field = family === "dall-e-2" ? "image" : "image[]";
  call.images.forEach((image, index) => {
    parts.push(filePart(field, `image-${index}`, image));
  });
  if (call.mask) parts.push(filePart("mask", "mask", call.mask));
  return encodeMultipart(parts);
}

function filePart(name: string, stem: string, image: InputImage): MultipartPart {
  const filename = `${stem}.${EXTENSION_OF_MIME_TYPE[image.mimeType]}`;
  return { name, filename, contentType: image.mimeType, bytes: image.bytes };
}

function multipartRequest(
  headers: Record<string, string>,
  form: EncodedMultipart,
): UpstreamRequest["init"] {
  return {
    method: "POST",
    headers: { ...headers, "content-type": form.contentType },
    body: form.body,
  };
}

/** Reads only what the hub uses of the reply: the images, their format and the token usage. */
function resultOf(
  reply: unknown,
  call: ProviderCall,
  family: ModelFamily,
  cutValues?: Buffer[],
): Omit<ProviderResult, "warnings"> {
  const body = (typeof reply === "object" && reply !== null ? reply : {}) as {
    data?: unknown;
    output_format?: unknown;
    usage?: unknown;
  };
  if (!Array.isArray(body.data) || body.data.length === 0) {
    throw invalidResponse("OpenAI answered without images.");
  }
  // DALL·E models make PNGs; GPT image models say which format they made.
  const format = typeof body.output_format === "string" ? body.output_format : call.outputFormat;
  const mimeType =
    family === "gpt-image"
      ? (MIME_TYPE_OF_FORMAT[(format ?? "png") as OutputFormat] ?? "image/png")
      : "image/png";
  let nextCut = 0;
  const images = body.data.map((item: unknown): ProviderImage => {
    const image = (typeof item === "object" && item !== null ? item : {}) as Record<
      string,
      unknown
    >;
    const revisedPrompt =
      typeof image.revised_prompt === "string" ? image.revised_prompt : undefined;
    if (typeof image.b64_json === "string") {
      const base64 = cutValues ? (cutValues[nextCut++] as Buffer) : image.b64_json;
      if (base64.length > 0) return { kind: "base64", base64, mimeType, revisedPrompt };
    }
    if (typeof image.url === "string" && image.url.length > 0) {
      return { kind: "url", url: image.url, revisedPrompt };
    }
    throw invalidResponse("OpenAI answered with an image that has neither b64_json nor url.");
  });
  return { images, usage: usageOf(body.usage) };
}

function usageOf(value: unknown): TokenUsage | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const usage = value as Record<string, unknown>;
  const { input_tokens, output_tokens, total_tokens } = usage;
  if (
    typeof input_tokens !== "number" ||
    typeof output_tokens !== "number" ||
    typeof total_tokens !== "number"
  ) {
    return undefined;
  }
  const result: TokenUsage = {
    inputTokens: input_tokens,
    outputTokens: output_tokens,
    totalTokens: total_tokens,
  };
  const details = usage.input_tokens_details as Record<string, unknown> | undefined | null;
  if (typeof details?.image_tokens === "number") result.inputImageTokens = details.image_tokens;
  if (typeof details?.text_tokens === "number") result.inputTextTokens = details.text_tokens;
  return result;
}

function invalidResponse(message: string) {
  return upstreamFailed(message, { code: "upstream_invalid_response" });
}
