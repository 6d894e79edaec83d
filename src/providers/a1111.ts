/**
 * AUTOMATIC1111's stable-diffusion-webui and its fork Forge, through the API they serve when
 * started with `--api`: `POST /sdapi/v1/txt2img`, `POST /sdapi/v1/img2img` (JSON, images as
 * base64) and `GET /sdapi/v1/sd-models`. The base URL is the server's root. With `--api-auth
 * user:pass` the API takes HTTP basic auth; without it, none.
 *
 * The catalog's `upstream_model` names the checkpoint, sent as `override_settings.
 * sd_model_checkpoint` (any name the server resolves: title, file name, model_name, hash), or
 * `default` for whatever checkpoint the server has loaded (nothing sent).
 *
 * Traps, as the webui and Forge sources show them (modules/api, modules/processing.py):
 * - unknown request fields are ignored silently (pydantic's default), and so are a checkpoint
 *   and a sampler the server does not know: it draws with the loaded checkpoint and its default
 *   sampler. The reply's `info` (a JSON string) names what it used, so a checkpoint that is not
 *   the one asked for is an error, and a sampler that is not is a warning;
 * - width and height are floored to multiples of 8 in latent space: the catalog admits only those;
 * - images come in the server's `samples_format` (PNG by default; JPEG or WebP when set), so the
 *   type is read from the image itself;
 * - `inpaint_full_res` defaults to true ("only masked"), which pastes the result back into the
 *   input at the input's size, whatever width and height say: a masked edit sends false;
 * - an OpenAI mask edits where it is transparent; webui inpaints where its mask is white (or
 *   opaque), so the mask is sent inverted, as a greyscale PNG;
 * - several `init_images` are a batch of separate edits, not references: one image per edit.
 *
 * @example
 * const a1111 = createA1111Provider({ apiKey: "", baseURL: "http://127.0.0.1:7860", auth: "user:pass" });
 * const { images } = await a1111.generate({ ...call, model: "default", size: "768x512" });
 */

import { HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import type { ExtraOption } from "../images/extra-options.ts";
import { loadSharp } from "../sharp.ts";
import { ignoredHints } from "./ignored-hints.ts";
import type {
  HttpProviderOptions,
  ImageMimeType,
  ImageProvider,
  ProviderCall,
  ProviderImage,
  ProviderResult,
  UpstreamModel,
} from "./types.ts";
import { DEFAULT_UPSTREAM_TIMEOUT_MS, requestUpstreamJson } from "./upstream.ts";

const PROVIDER = "AUTOMATIC1111";

/** The `upstream_model` that draws with the server's loaded checkpoint. */
export const A1111_LOADED_CHECKPOINT = "default";

/**
 * The vendor options a model on this provider may declare (`extra_options`), by webui's names,
 * with the ranges of its own UI sliders (the API itself checks types only).
 */
export const A1111_EXTRA_OPTIONS = {
  negative_prompt: {
    type: "string",
    max_length: 10_000,
    description: "What the image should not show.",
  },
  seed: {
    type: "integer",
    minimum: -1,
    maximum: 4_294_967_295,
    description: "-1 for a random seed; image i of a batch uses seed + i.",
  },
  steps: { type: "integer", minimum: 1, maximum: 150, description: "Sampling steps." },
  cfg_scale: {
    type: "number",
    minimum: 1,
    maximum: 30,
    description: "How closely to follow the prompt.",
  },
  sampler_name: {
    type: "string",
    max_length: 100,
    description: "A sampler the server has (GET /sdapi/v1/samplers), e.g. 'Euler a', 'DPM++ 2M'.",
  },
  scheduler: {
    type: "string",
    max_length: 50,
    description: "A scheduler (webui 1.9+, Forge): 'Automatic', 'Karras', 'Exponential', …",
  },
  denoising_strength: {
    type: "number",
    minimum: 0,
    maximum: 1,
    description: "Edits only: how far the result may depart from the input image.",
  },
} as const satisfies Record<string, ExtraOption>;

type ExtraName = keyof typeof A1111_EXTRA_OPTIONS;
const EXTRA_NAMES = Object.keys(A1111_EXTRA_OPTIONS) as ExtraName[];

export interface A1111ProviderOptions extends HttpProviderOptions {
  /**
   * `user:pass`, as the server's `--api-auth`, sent as HTTP basic auth. When unset, `apiKey` is
   * taken if it is not empty (a stored credential carries it there); neither means no auth.
   */
  auth?: string;
}

export function createA1111Provider(options: A1111ProviderOptions): ImageProvider {
  const baseURL = options.baseURL.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const headers = headersOf(options.auth ?? (options.apiKey || undefined));
  const request = (path: string, signal: AbortSignal, callTimeoutMs: number, body?: object) => ({
    provider: PROVIDER,
    dispatcher: options.dispatcher,
    byteBudget: options.byteBudget,
    url: `${baseURL}/sdapi/v1/${path}`,
    init: body
      ? {
          method: "POST" as const,
          headers: { ...headers, "content-type": "application/json" },
          body: JSON.stringify(body),
        }
      : { method: "GET" as const, headers },
    timeoutMs: callTimeoutMs,
    maxReplyBytes: options.maxReplyBytes,
    signal,
  });

  return {
    name: "a1111",
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      if (call.images.length > 1) {
        // Its init_images are a batch of separate edits, one result each: not what was asked.
        throw invalidRequest(`${PROVIDER} edits one image per request.`, "image");
      }
      const warnings = ignoredHints(PROVIDER, call);
      const edit = call.images.length > 0;
      const body = edit ? await img2imgBody(call, warnings) : txt2imgBody(call, warnings);
      const path = edit ? "img2img" : "txt2img";
      const reply = await withApiHint(
        requestUpstreamJson(request(path, call.signal, call.timeoutMs ?? timeoutMs, body)),
      );
      return resultOf(reply, call, warnings);
    },
    async listModels({ signal, timeoutMs: listTimeoutMs }) {
      signal.throwIfAborted();
      const reply = await withApiHint(
        requestUpstreamJson(request("sd-models", signal, listTimeoutMs)),
      );
      if (!Array.isArray(reply))
        throw invalidResponse(`${PROVIDER} answered a model list that is not a list.`);
      return [
        { id: A1111_LOADED_CHECKPOINT, shutdownDate: null },
        ...modelsOfCheckpointList(reply),
      ];
    },
  };
}

function headersOf(auth: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (auth !== undefined) {
    // webui splits its --api-auth at ':'; a credential without one can only fail, as it should.
    const pair = auth.includes(":") ? auth : `${auth}:`;
    headers.authorization = `Basic ${Buffer.from(pair, "utf8").toString("base64")}`;
  }
  return headers;
}

/**
 * webui answers 404 to a checkpoint never (it draws with the loaded one instead), but to every
 * /sdapi path when it was started without `--api`: say so rather than "model not found".
 */
async function withApiHint<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (error) {
    if (error instanceof HubError && error.code === "upstream_model_not_found") {
      throw upstreamFailed(`${PROVIDER} has no API at this address: is it started with --api?`, {
        code: "upstream_error",
        upstreamStatus: 404,
        cause: error,
      });
    }
    throw error;
  }
}

/** What both endpoints take: prompt, batch, size, checkpoint and the declared options. */
function commonBody(
  call: ProviderCall,
  size: { width: number; height: number } | undefined,
  endpoint: "txt2img" | "img2img",
  warnings: string[],
): Record<string, unknown> {
  const body: Record<string, unknown> = { prompt: call.prompt, batch_size: call.count };
  if (size) {
    body.width = size.width;
    body.height = size.height;
  }
  if (call.model !== A1111_LOADED_CHECKPOINT) {
    body.override_settings = { sd_model_checkpoint: call.model };
  }
  for (const [name, value] of Object.entries(call.extra ?? {})) {
    if (value === undefined) continue;
    if (!EXTRA_NAMES.includes(name as ExtraName)) {
      warnings.push(`${PROVIDER} takes no '${name}' here; it was not sent.`);
    } else if (name === "denoising_strength" && endpoint === "txt2img") {
      // In txt2img it only tunes the high-res pass, which the hub never asks for.
      warnings.push(`${PROVIDER} takes 'denoising_strength' for edits only; it was not sent.`);
    } else {
      body[name] = value;
    }
  }
  return body;
}

function txt2imgBody(call: ProviderCall, warnings: string[]): Record<string, unknown> {
  return commonBody(call, parseSize(call.size), "txt2img", warnings);
}

async function img2imgBody(
  call: ProviderCall,
  warnings: string[],
): Promise<Record<string, unknown>> {
  const [image] = call.images;
  if (!image) throw invalidRequest("An edit needs an image.", "image");
  // Without a size, webui would draw at 512x512: keep the input's size (floored to 8s).
  const size = parseSize(call.size) ?? {
    width: Math.max(64, image.width - (image.width % 8)),
    height: Math.max(64, image.height - (image.height % 8)),
  };
  const body = commonBody(call, size, "img2img", warnings);
  body.init_images = [image.bytes.toString("base64")];
  if (call.mask) {
    body.mask = (await webuiMaskOf(call.mask.bytes)).toString("base64");
    // "Whole picture": the result is width x height, not the input pasted back at its size.
    body.inpaint_full_res = false;
  }
  return body;
}

/**
 * An OpenAI mask (edit where alpha is 0) as webui's (inpaint where white): the alpha channel,
 * inverted, as a greyscale PNG. An opaque mask becomes all black: nothing to edit, as in OpenAI.
 */
async function webuiMaskOf(mask: Buffer): Promise<Buffer> {
  const sharp = await loadSharp();
  return sharp(mask)
    .ensureAlpha()
    .extractChannel("alpha")
    .negate()
    .toColourspace("b-w")
    .png()
    .toBuffer();
}

/** Reads the images and `info` of a reply; the rest (an echo of the request) is ignored. */
function resultOf(reply: unknown, call: ProviderCall, warnings: string[]): ProviderResult {
  const body = (typeof reply === "object" && reply !== null ? reply : {}) as {
    images?: unknown;
    info?: unknown;
  };
  // Scripts (ControlNet maps, say) may append images after the batch: the batch comes first.
  const images = Array.isArray(body.images) ? body.images.slice(0, call.count) : [];
  if (images.length < call.count) {
    throw invalidResponse(`${PROVIDER} answered ${images.length} images for ${call.count}.`);
  }
  const info = infoOf(body.info);
  if (call.model !== A1111_LOADED_CHECKPOINT) {
    const used = { name: stringOf(info.sd_model_name), hash: stringOf(info.sd_model_hash) };
    if (checkpointMatches(call.model, used) === false) {
      throw upstreamFailed(
        `${PROVIDER} has no checkpoint '${call.model}': it drew with '${used.name ?? used.hash}' instead.`,
        { code: "upstream_model_not_found" },
      );
    }
  }
  const askedSampler = call.extra?.sampler_name;
  const usedSampler = stringOf(info.sampler_name);
  // webui reads a trailing scheduler off the name ("DPM++ 2M Karras"), so a prefix is a match.
  if (typeof askedSampler === "string" && usedSampler && !askedSampler.startsWith(usedSampler)) {
    warnings.push(`${PROVIDER} has no sampler '${askedSampler}'; it used '${usedSampler}'.`);
  }
  return {
    images: images.map((image): ProviderImage => {
      const mimeType = typeof image === "string" ? imageMimeTypeOfBase64(image) : undefined;
      if (!mimeType) throw invalidResponse(`${PROVIDER} answered with an image that is not one.`);
      return { kind: "base64", base64: image as string, mimeType, revisedPrompt: undefined };
    }),
    usage: undefined,
    warnings,
  };
}

/** `info` is a JSON string; a fork that sends something else only loses the checks above. */
function infoOf(value: unknown): Record<string, unknown> {
  if (typeof value !== "string") return {};
  try {
    const parsed = JSON.parse(value) as unknown;
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * Whether the checkpoint webui drew with (`info.sd_model_name`: its file name without folder or
 * extension; `info.sd_model_hash`: the first 10 hex digits of its sha256) is the one asked for,
 * by any name webui resolves (sd_models.CheckpointInfo.ids): `name.safetensors [hash]`, a path,
 * the file name with or without extension, model_name (folders joined by `_`), a hash.
 * Undefined when the reply does not say, or the name cannot be compared (a legacy 8-digit hash).
 */
export function checkpointMatches(
  asked: string,
  used: { name: string | undefined; hash: string | undefined },
): boolean | undefined {
  const title = /^(.*?)(?:\s*\[([0-9a-f]{8,64})\])?$/i.exec(asked.trim());
  const name = title?.[1] ?? asked;
  const hash = (title?.[2] ?? (/^[0-9a-f]{10,64}$/i.test(name) ? name : undefined))?.toLowerCase();
  if (hash && hash.length >= 10 && used.hash) return hash.startsWith(used.hash.toLowerCase());
  if (/^[0-9a-f]{8}$/i.test(name) || used.name === undefined) return undefined;
  const stem = (name.split(/[\\/]/).pop() ?? name).replace(
    /\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$/i,
    "",
  );
  return stem === used.name || stem.endsWith(`_${used.name}`);
}

/**
 * Each checkpoint of `GET /sdapi/v1/sd-models` under every name a catalog row may give it
 * (title, model_name, file name with and without extension, short and full hash), so the hub
 * finds its `upstream_model` in the list whichever it is.
 */
function modelsOfCheckpointList(list: unknown[]): UpstreamModel[] {
  const ids = new Set<string>();
  for (const item of list) {
    const entry = (typeof item === "object" && item !== null ? item : {}) as Record<
      string,
      unknown
    >;
    const file = stringOf(entry.filename)?.split(/[\\/]/).pop();
    const stem = file?.replace(/\.[^.]*$/, "");
    const hash = stringOf(entry.hash);
    const names = [entry.title, entry.model_name, file, stem, hash, entry.sha256];
    if (stem && hash) names.push(`${stem} [${hash}]`);
    for (const name of names) if (typeof name === "string" && name !== "") ids.add(name);
  }
  return [...ids].map((id) => ({ id, shutdownDate: null }));
}

/** The type of a base64 image, from its first bytes: webui's samples_format may be any. */
function imageMimeTypeOfBase64(base64: string): ImageMimeType | undefined {
  if (base64.startsWith("iVBORw0KGgo")) return "image/png";
  if (base64.startsWith("/9j/")) return "image/jpeg";
  // RIFF....WEBP
  if (
    base64.startsWith("UklGR") &&
    Buffer.from(base64.slice(0, 16), "base64").toString("latin1", 8, 12) === "WEBP"
  ) {
    return "image/webp";
  }
  return undefined;
}

function parseSize(size: string | undefined): { width: number; height: number } | undefined {
  const match = /^(\d+)x(\d+)$/.exec(size ?? "");
  return match ? { width: Number(match[1]), height: Number(match[2]) } : undefined;
}

function stringOf(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function invalidResponse(message: string): HubError {
  return upstreamFailed(message, { code: "upstream_invalid_response" });
}
