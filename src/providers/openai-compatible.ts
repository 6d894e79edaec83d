/**
 * One adapter for any server that speaks OpenAI's Images API with quirks. Every quirk is data on
 * the instance (`OpenAICompatibleQuirks`), never code per vendor: how the key is sent, what
 * `response_format` the server answers, which OpenAI parameters it takes (the others are not
 * sent and come back as warnings), whether it edits, fixed extra body fields, and whether the
 * call's vendor options (`extra`) pass through as body fields.
 *
 * Presets (`OPENAI_COMPATIBLE_PRESETS`, chosen by OPENAI_COMPATIBLE_<NAME>_PRESET):
 *
 * | preset     | auth   | response_format        | params beyond model, prompt | edits | extra body         | extra |
 * | ---------- | ------ | ---------------------- | --------------------------- | ----- | ------------------ | ----- |
 * | `localai`  | bearer | both (default url)     | size, n                     | no    |                    | yes   |
 * | `sd-cpp`   | none   | b64_json (ignores it)  | size, n, output_format, output_compression | yes |     | no    |
 * | `recraft`  | bearer | both (default url)     | size, n, style              | no    |                    | yes   |
 * | `seedream` | bearer | both (default url)     | size                        | no    | watermark: false   | yes   |
 * | `together` | bearer | both, `base64` / `url` | size as width+height, n, output_format | no |             | yes   |
 *
 * Why each is so:
 * - LocalAI (localai.io/features/image-generation, core/http/endpoints/openai/image.go): any
 *   `WxH`, answers a URL under /generated-images unless `response_format` is `b64_json`; its own
 *   options `step`, `mode`, `seed`, `negative_prompt`; key as Bearer (or x-api-key). Its
 *   /v1/images/inpainting is not OpenAI's edits.
 * - stable-diffusion.cpp `sd-server` (examples/server/routes_openai.cpp): reads prompt, n, size,
 *   output_format, output_compression, always answers `b64_json`; `/v1/images/edits` takes
 *   `image[]` and `mask`; no API key. Its own options travel inside the prompt
 *   (`<sd_cpp_extra_args>`), so none pass as fields.
 * - Recraft (recraft.ai/docs/api-reference/endpoints): Bearer, `WxH` sizes, n 1 to 6, `style`
 *   with its own values (realistic_image, …), `substyle`, `negative_prompt`, `controls`. Image to
 *   image is its own endpoint, not /images/edits.
 * - Seedream on Volcengine Ark (`…/api/v3/images/generations`): Bearer, `size` as `WxH` or `2K`,
 *   no `n` (several images come from `sequential_image_generation`), `watermark` on by default,
 *   reference images as JSON `image` URLs rather than a multipart edit.
 * - Together (docs.together.ai/reference/post-images-generations): `width` and `height` instead
 *   of `size`, n up to 4, `response_format` `base64` or `url` (not `b64_json`), `output_format`
 *   jpeg or png, its own `steps`, `seed`, `negative_prompt`, `guidance_scale`.
 *
 * The same adapter serves two instances side by side, each with its own key and quirks.
 */
import { invalidRequest } from "../errors.ts";
import {
  editForm,
  imagesResultOf,
  jsonRequestInit,
  mimeTypeOfFormat,
  multipartRequestInit,
  sniffBase64MimeType,
} from "./openai-images.ts";
import type { HttpProviderOptions, ImageProvider, ProviderCall, ProviderResult } from "./types.ts";
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  requestUpstreamPieces,
  type UpstreamErrorBody,
} from "./upstream.ts";

/** The OpenAI parameters a server may take, beyond `model` and `prompt` (always sent). */
export type OpenAIImageParam =
  | "n"
  | "size"
  | "quality"
  | "style"
  | "background"
  | "output_format"
  | "output_compression"
  | "moderation"
  | "user";

export type CompatibleAuth = "bearer" | "api-key" | "none" | { header: string; prefix?: string };

export interface OpenAICompatibleQuirks {
  /** How the key travels: `Authorization: Bearer`, an `api-key` header, none, or a header named here. */
  auth: CompatibleAuth;
  /**
   * What the server can answer: `b64_json` only (it ignores or refuses `response_format`, which
   * is then not sent), `url` only (the hub fetches the images), or `both` (asked for base64).
   * Either kind in a reply is taken whatever this says.
   */
  responseFormat: "b64_json" | "url" | "both";
  /** The `response_format` value that asks for base64 where it is not `b64_json` (Together: `base64`). */
  base64Value?: string;
  /** Which OpenAI parameters the server takes; the others are not sent and come back as warnings. */
  params: readonly OpenAIImageParam[];
  /** `size` as OpenAI's `WxH` string (default) or as `width` and `height` integers. */
  sizeAs?: "size" | "width-height";
  /** Whether it serves `POST /images/edits` (multipart, `image[]` and `mask`) as OpenAI does. */
  edits: boolean;
  /** Fixed fields added to every request body (Seedream: `watermark: false`). */
  extraBody?: Readonly<Record<string, string | number | boolean>>;
  /** Whether the call's `extra` (vendor options the catalog declares) is sent as body fields. */
  extra: boolean;
  /** `error.code` values (any case) that mean a content-policy refusal. */
  contentPolicyCodes?: readonly string[];
}

/** Quirk presets by name: see the table in the module comment. */
export const OPENAI_COMPATIBLE_PRESETS = {
  localai: {
    auth: "bearer",
    responseFormat: "both",
    params: ["size", "n"],
    edits: false,
    extra: true,
  },
  "sd-cpp": {
    auth: "none",
    responseFormat: "b64_json",
    params: ["size", "n", "output_format", "output_compression"],
    edits: true,
    extra: false,
  },
  recraft: {
    auth: "bearer",
    responseFormat: "both",
    params: ["size", "n", "style"],
    edits: false,
    extra: true,
  },
  seedream: {
    auth: "bearer",
    responseFormat: "both",
    params: ["size"],
    edits: false,
    extraBody: { watermark: false },
    extra: true,
    // ModelArk's codes for a refused prompt or image, 400 BadRequest (BytePlus ModelArk error
    // codes, docs.byteplus.com/docs/ModelArk/1299023, checked 2026-12-03).
    contentPolicyCodes: [
      "SensitiveContentDetected",
      "InputTextSensitiveContentDetected",
      "InputImageSensitiveContentDetected",
      "OutputImageSensitiveContentDetected",
    ],
  },
  together: {
    auth: "bearer",
    responseFormat: "both",
    base64Value: "base64",
    params: ["size", "n", "output_format"],
    sizeAs: "width-height",
    edits: false,
    extra: true,
  },
} as const satisfies Record<string, OpenAICompatibleQuirks>;

export type OpenAICompatiblePreset = keyof typeof OPENAI_COMPATIBLE_PRESETS;

/** The quirks of a preset name; undefined for a name that is none. */
export function presetQuirks(name: string | undefined): OpenAICompatibleQuirks | undefined {
  if (name === undefined || !Object.hasOwn(OPENAI_COMPATIBLE_PRESETS, name)) return undefined;
  return OPENAI_COMPATIBLE_PRESETS[name as OpenAICompatiblePreset];
}

/** A plain OpenAI-shaped server: Bearer key, base64 asked for, every OpenAI parameter taken. */
export const DEFAULT_COMPATIBLE_QUIRKS: OpenAICompatibleQuirks = {
  auth: "bearer",
  responseFormat: "both",
  params: ["n", "size", "quality", "style", "background", "output_format", "output_compression"],
  edits: true,
  extra: false,
};

export interface OpenAICompatibleOptions extends HttpProviderOptions {
  /** The instance's provider id (`localai`), for the provider's name and messages. */
  name?: string;
  quirks?: OpenAICompatibleQuirks;
}

/**
 * @example
 * ```ts
 * const together = createOpenAICompatibleProvider({
 *   name: "together", apiKey, baseURL: "https://api.together.xyz/v1",
 *   quirks: OPENAI_COMPATIBLE_PRESETS.together,
 * });
 * ```
 */
export function createOpenAICompatibleProvider(options: OpenAICompatibleOptions): ImageProvider {
  const name = options.name ?? "openai-compatible";
  const quirks = options.quirks ?? DEFAULT_COMPATIBLE_QUIRKS;
  const baseURL = options.baseURL.replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const policyCodes = new Set((quirks.contentPolicyCodes ?? []).map((code) => code.toLowerCase()));
  // A code may carry a detail after a dot (ModelArk's `SensitiveContentDetected.Violence`).
  const isContentPolicy = (_status: number, upstream: UpstreamErrorBody) =>
    upstream.code !== undefined &&
    (policyCodes.has(upstream.code.toLowerCase()) ||
      policyCodes.has(upstream.code.split(".")[0]?.toLowerCase() ?? "") ||
      upstream.code === "content_policy_violation");

  return {
    name,
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      const editing = call.images.length > 0;
      if (editing && !quirks.edits) {
        throw invalidRequest(`The ${name} server does not edit images.`, "image");
      }
      if (call.count > 1 && !quirks.params.includes("n")) {
        throw invalidRequest(`The ${name} server makes one image per call.`, "n");
      }
      const { body, warnings } = bodyOf(call, quirks, name);
      const headers = { ...authHeaders(quirks.auth, options.apiKey), accept: "application/json" };
      const init = editing
        ? multipartRequestInit(headers, editForm(body, call.images, call.mask, "image[]"))
        : jsonRequestInit(headers, body);
      const request = {
        provider: name,
        dispatcher: options.dispatcher,
        byteBudget: options.byteBudget,
        url: `${baseURL}/images/${editing ? "edits" : "generations"}`,
        init,
        timeoutMs: call.timeoutMs ?? timeoutMs,
        maxReplyBytes: options.maxReplyBytes,
        signal: call.signal,
        isContentPolicy,
      };
      const bytes = await requestUpstreamPieces(request);
      // Servers differ in naming the format; the image's own signature settles it.
      const result = imagesResultOf(
        request,
        bytes,
        (format, base64) => mimeTypeOfFormat(format) ?? sniffBase64MimeType(base64) ?? "image/png",
      );
      return { ...result, warnings };
    },
  };
}

function authHeaders(auth: CompatibleAuth, apiKey: string): Record<string, string> {
  if (auth === "none" || apiKey === "") return {};
  if (auth === "bearer") return { authorization: `Bearer ${apiKey}` };
  if (auth === "api-key") return { "api-key": apiKey };
  return { [auth.header.toLowerCase()]: `${auth.prefix ?? ""}${apiKey}` };
}

type BodyValue = string | number | boolean;

function bodyOf(
  call: ProviderCall,
  quirks: OpenAICompatibleQuirks,
  name: string,
): { body: Record<string, BodyValue>; warnings: string[] } {
  const body: Record<string, BodyValue> = { model: call.model, prompt: call.prompt };
  const settings: Record<OpenAIImageParam, BodyValue | undefined> = {
    n: call.count > 1 || quirks.params.includes("n") ? call.count : undefined,
    size: call.size,
    quality: call.quality,
    style: call.style,
    background: call.background,
    output_format: call.outputFormat,
    output_compression: call.outputCompression,
    moderation: call.moderation,
    user: call.user,
  };
  const warnings: string[] = [];
  for (const [param, value] of Object.entries(settings) as [OpenAIImageParam, BodyValue][]) {
    if (value === undefined) continue;
    if (!quirks.params.includes(param)) {
      warnings.push(`${name} takes no '${param}'; '${value}' was not sent.`);
      continue;
    }
    if (param === "size" && quirks.sizeAs === "width-height") {
      const [width, height] = String(value).split("x").map(Number);
      body.width = width as number;
      body.height = height as number;
    } else {
      body[param] = value;
    }
  }
  if (quirks.responseFormat === "both") {
    body.response_format = quirks.base64Value ?? "b64_json";
  }
  Object.assign(body, quirks.extraBody);
  for (const [option, value] of Object.entries(call.extra ?? {})) {
    if (quirks.extra && isBodyValue(value)) body[option] = value;
    else warnings.push(`${name} takes no vendor option '${option}'; it was not sent.`);
  }
  return { body, warnings };
}

function isBodyValue(value: unknown): value is BodyValue {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}
