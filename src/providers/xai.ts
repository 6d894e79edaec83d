/**
 * xAI's Grok Imagine image API (https://api.x.ai/v1): `POST /images/generations` and
 * `POST /images/edits`, both JSON (edits carry their input images as data URLs, never multipart),
 * and `GET /image-generation-models` for the model list.
 *
 * xAI takes an aspect ratio and a resolution class, not a size: the catalog lists the pixel sizes
 * xAI makes at `1k`, and `XAI_1K_SIZES` turns one back into its `aspect_ratio`.
 *
 * Where xAI departs from OpenAI's API, and what this adapter does about it:
 * - a wrong key is answered 400 with a flat `{"code","error"}` body, which the shared error parser
 *   cannot read; a 400 that says nothing readable is therefore checked against
 *   `GET /api-key`, and becomes `upstream_auth_failed` when the key is the problem;
 * - a moderated image comes back 200 with `respect_moderation: false` and no image: such images
 *   are dropped, and a reply left with none is a `content_policy_violation`;
 * - `b64_json` may arrive as a `data:` URL: the prefix is cut off, the base64 kept as it came;
 * - `url` images are temporary: returned as `kind: "url"` for the hub to fetch and re-host.
 *
 * @example
 * const xai = createXaiProvider({ apiKey: process.env.XAI_API_KEY ?? "", baseURL: "https://api.x.ai/v1" });
 * const { images } = await xai.generate(call); // call.size "1408x768" → aspect_ratio "16:9"
 */
import { contentPolicy, HubError, invalidRequest, upstreamFailed } from "../errors.ts";
import { base64After, base64Head, base64Length } from "./base64.ts";
import { cutStringFields } from "./json-cut.ts";
import { invalidResponse, sniffBase64MimeType, usageOf } from "./openai-images.ts";
import type {
  Base64,
  HttpProviderOptions,
  ImageMimeType,
  ImageProvider,
  InputImage,
  ProviderCall,
  ProviderImage,
  ProviderResult,
  UpstreamModel,
} from "./types.ts";
import {
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  parseUpstreamJson,
  requestUpstreamJson,
  requestUpstreamPieces,
  type UpstreamRequest,
} from "./upstream.ts";

export const XAI_DEFAULT_BASE_URL = "https://api.x.ai/v1";

/**
 * The pixel size xAI makes for each `aspect_ratio` at resolution `1k` (Runware's model page for
 * xAI's grok-imagine-image lists them; xAI's image proto: "1k resolution (~1 megapixel total),
 * dimensions vary by aspect ratio"). `21:9` and `5:2`, newer in xAI's enum, have no published size
 * and are left out, as is `2k`, whose sizes xAI describes only as "about 2048x2048 in area".
 */
export const XAI_1K_SIZES = {
  "1:1": "1024x1024",
  "3:4": "896x1280",
  "4:3": "1280x896",
  "9:16": "768x1408",
  "16:9": "1408x768",
  "2:3": "864x1296",
  "3:2": "1296x864",
  "9:19.5": "576x1248",
  "19.5:9": "1248x576",
  "9:20": "576x1280",
  "20:9": "1280x576",
  "1:2": "704x1408",
  "2:1": "1408x704",
} as const;

const RATIO_OF_SIZE = new Map<string, string>(
  Object.entries(XAI_1K_SIZES).map(([ratio, size]) => [size, ratio]),
);

/** How long the key check after an unreadable 400 may take, at most. */
const KEY_CHECK_TIMEOUT_MS = 10_000;

/** Only Grok Imagine 2 takes `quality` (`low`, `medium`); earlier models refuse the argument. */
function takesQuality(model: string): boolean {
  return model.startsWith("grok-imagine-image-2");
}

export function createXaiProvider(options: HttpProviderOptions): ImageProvider {
  const baseURL = (options.baseURL || XAI_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const headers = { authorization: `Bearer ${options.apiKey}`, accept: "application/json" };

  const request = (
    path: string,
    init: UpstreamRequest["init"],
    signal: AbortSignal,
    budgetMs: number,
  ): UpstreamRequest => ({
    provider: "xAI",
    dispatcher: options.dispatcher,
    byteBudget: options.byteBudget,
    url: `${baseURL}${path}`,
    init,
    timeoutMs: budgetMs,
    maxReplyBytes: options.maxReplyBytes,
    signal,
  });

  /** Whether xAI refuses the hub's key: `GET /api-key` fails, or names the key unusable. */
  const keyIsRefused = async (signal: AbortSignal, budgetMs: number): Promise<boolean> => {
    try {
      const info = await requestUpstreamJson(
        request("/api-key", { method: "GET", headers }, signal, budgetMs),
      );
      const flags = isObject(info) ? info : {};
      return [flags.api_key_blocked, flags.api_key_disabled, flags.team_blocked].includes(true);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      return statusOf(error) !== undefined && [400, 401, 403].includes(statusOf(error) as number);
    }
  };

  /**
   * A 400 that is about the key becomes the auth failure it is. Any other 400 stays the client's
   * error, under our code: xAI's `code` is a sentence ("Client specified an invalid argument").
   */
  const asKeyFailure = async (error: unknown, signal: AbortSignal, budgetMs: number) => {
    if (!(error instanceof HubError) || statusOf(error) !== 400) return error;
    const upstream = upstreamOf(error);
    const aboutKey = upstream.message
      ? /api key/i.test(decodeMessage(upstream.message))
      : await keyIsRefused(signal, budgetMs);
    if (!aboutKey) {
      if (error.code !== "content_policy_violation" && /\s/.test(error.code)) {
        return new HubError(error.message, {
          status: error.status,
          type: error.type,
          code: "upstream_rejected",
          param: error.param,
          cause: error.cause,
        });
      }
      return error;
    }
    return upstreamFailed("xAI refused the hub's credentials.", {
      code: "upstream_auth_failed",
      // xAI says so with 400; to credential health it is the same as a 401.
      upstreamStatus: 401,
      cause: error.cause,
    });
  };

  return {
    name: "xai",
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      const { body, warnings } = bodyOf(call);
      const path = call.images.length > 0 ? "/images/edits" : "/images/generations";
      const init = {
        method: "POST" as const,
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify(body),
      };
      const budgetMs = call.timeoutMs ?? timeoutMs;
      let bytes: Buffer[];
      try {
        bytes = await requestUpstreamPieces(request(path, init, call.signal, budgetMs));
      } catch (error) {
        throw await asKeyFailure(error, call.signal, Math.min(budgetMs, KEY_CHECK_TIMEOUT_MS));
      }
      return resultOf(bytes, call, warnings);
    },
    async listModels({ signal, timeoutMs: listTimeoutMs }) {
      signal.throwIfAborted();
      let reply: unknown;
      try {
        reply = await requestUpstreamJson(
          request("/image-generation-models", { method: "GET", headers }, signal, listTimeoutMs),
        );
      } catch (error) {
        throw await asKeyFailure(error, signal, Math.min(listTimeoutMs, KEY_CHECK_TIMEOUT_MS));
      }
      return modelsOf(reply);
    },
  };
}

/** The JSON body xAI takes for the call, and the hints it could not pass on. */
function bodyOf(call: ProviderCall): { body: Record<string, unknown>; warnings: string[] } {
  if (call.mask) {
    throw invalidRequest(`${call.model} takes no mask: describe the change in the prompt.`, "mask");
  }
  const body: Record<string, unknown> = {
    model: call.model,
    prompt: call.prompt,
    n: call.count,
    // The hub hosts images itself: base64 saves fetching a temporary URL.
    response_format: "b64_json",
  };
  const ratio = aspectRatioOf(call);
  if (ratio !== undefined) body.aspect_ratio = ratio;
  if (call.size !== undefined) body.resolution = "1k";
  if (call.user !== undefined) body.user = call.user;
  if (call.images.length === 1) body.image = { url: dataUrlOf(call.images[0] as InputImage) };
  if (call.images.length > 1) body.images = call.images.map((image) => ({ url: dataUrlOf(image) }));

  const warnings: string[] = [];
  const ignored = (name: string, value: unknown) =>
    warnings.push(`${call.model} takes no '${name}'; '${String(value)}' was not sent.`);
  if (call.quality !== undefined) {
    if (takesQuality(call.model)) body.quality = call.quality;
    else ignored("quality", call.quality);
  }
  if (call.style !== undefined) ignored("style", call.style);
  if (call.background !== undefined && call.background !== "auto") {
    ignored("background", call.background);
  }
  if (call.outputFormat !== undefined && call.outputFormat !== "jpeg") {
    warnings.push(
      `${call.model} makes JPEG images: output_format ${call.outputFormat} was not applied.`,
    );
  }
  if (call.outputCompression !== undefined) ignored("output_compression", call.outputCompression);
  if (call.moderation === "low") ignored("moderation", call.moderation);
  for (const name of Object.keys(call.extra ?? {})) ignored(name, call.extra?.[name]);
  return { body, warnings };
}

/**
 * The `aspect_ratio` of the call's size. An edit of one image keeps that image's ratio (xAI:
 * "for single image editing, do not set this"), so there a size of another ratio is refused
 * rather than answered with an image of a shape the client did not ask for.
 */
function aspectRatioOf(call: ProviderCall): string | undefined {
  if (call.size === undefined) return undefined;
  const ratio = RATIO_OF_SIZE.get(call.size);
  if (ratio === undefined) {
    const sizes = Object.values(XAI_1K_SIZES).join(", ");
    throw invalidRequest(`${call.model} makes ${sizes}; not ${call.size}.`, "size");
  }
  const [single] = call.images;
  if (call.images.length !== 1 || single === undefined) return ratio;
  if (nearestRatio(single.width, single.height) !== ratio) {
    throw invalidRequest(
      `${call.model} edits one image at that image's aspect ratio; size ${call.size} is ${ratio}, the image ${single.width}x${single.height} is not.`,
      "size",
    );
  }
  return undefined;
}

/** The ratio among xAI's whose size is nearest in shape to `width`×`height`. */
export function nearestRatio(width: number, height: number): string {
  let nearest = "1:1";
  let distance = Number.POSITIVE_INFINITY;
  for (const [ratio, size] of Object.entries(XAI_1K_SIZES)) {
    const [w, h] = size.split("x").map(Number) as [number, number];
    const gap = Math.abs(Math.log(width / height) - Math.log(w / h));
    if (gap < distance) [nearest, distance] = [ratio, gap];
  }
  return nearest;
}

function dataUrlOf(image: InputImage): string {
  return `data:${image.mimeType};base64,${image.bytes.toString("base64")}`;
}

/** Reads the reply: images kept as the bytes that came, moderated ones dropped. */
function resultOf(bytes: Buffer[], call: ProviderCall, warnings: string[]): ProviderResult {
  const cut = cutStringFields(bytes, "b64_json");
  const usable = cut && base64Count(cut.skeleton) === cut.values.length;
  const reply = usable ? cut.skeleton : parseUpstreamJson({ provider: "xAI" }, bytes);
  const root = isObject(reply) ? reply : {};
  if (typeof root.block_reason === "string" && root.block_reason !== "") {
    throw contentPolicy(`xAI's moderation blocked the prompt (${root.block_reason}).`, {
      blockReason: root.block_reason,
    });
  }
  if (!Array.isArray(root.data)) throw invalidResponse("xAI answered without images.");
  let nextCut = 0;
  let moderated = 0;
  const images: ProviderImage[] = [];
  for (const item of root.data) {
    const entry = isObject(item) ? item : {};
    const cutValue =
      typeof entry.b64_json === "string" && usable ? cut.values[nextCut++] : undefined;
    // A moderated image's place holds nothing usable (or a placeholder): never deliver it.
    if (entry.respect_moderation === false) {
      moderated += 1;
      continue;
    }
    images.push(imageOf(entry, cutValue));
  }
  if (images.length === 0) {
    if (moderated > 0) {
      throw contentPolicy("xAI's moderation withheld every image.", { moderated });
    }
    throw upstreamFailed("xAI answered without an image.", { code: "upstream_no_image" });
  }
  if (moderated > 0) {
    warnings.push(`xAI's moderation withheld ${moderated} of ${call.count} images.`);
  }
  return { images, usage: usageOf(root.usage), warnings };
}

function imageOf(entry: Record<string, unknown>, cutValue: Buffer[] | undefined): ProviderImage {
  const revisedPrompt =
    typeof entry.revised_prompt === "string" && entry.revised_prompt !== ""
      ? entry.revised_prompt
      : undefined;
  const raw = cutValue ?? (typeof entry.b64_json === "string" ? entry.b64_json : undefined);
  if (raw !== undefined && base64Length(raw) > 0) {
    const { base64, declared } = withoutDataUrlPrefix(raw);
    const mimeType =
      sniffBase64MimeType(base64) ?? declared ?? imageMimeTypeOf(entry.mime_type) ?? "image/jpeg";
    return { kind: "base64", base64, mimeType, revisedPrompt };
  }
  if (typeof entry.url === "string" && entry.url !== "") {
    return { kind: "url", url: entry.url, revisedPrompt };
  }
  throw invalidResponse("xAI answered with an image that has neither b64_json nor url.");
}

/**
 * `data:image/png;base64,AAAA` → `AAAA` (a view of the same bytes when it came as bytes) and the
 * type it declares; plain base64 is returned as it is.
 */
function withoutDataUrlPrefix(value: Base64): {
  base64: Base64;
  declared: ImageMimeType | undefined;
} {
  const match = /^data:([^;,]*)(?:;[^,]*)?,/.exec(base64Head(value, 64));
  if (!match) return { base64: value, declared: undefined };
  return { base64: base64After(value, match[0].length), declared: imageMimeTypeOf(match[1]) };
}

function base64Count(reply: unknown): number {
  const data = isObject(reply) ? reply.data : undefined;
  if (!Array.isArray(data)) return -1;
  return data.filter((item) => isObject(item) && typeof item.b64_json === "string").length;
}

/** `models[].id` and their `aliases` (xAI takes either in a call). */
function modelsOf(reply: unknown): UpstreamModel[] {
  const entries = isObject(reply) ? reply.models : undefined;
  if (!Array.isArray(entries)) {
    throw invalidResponse("xAI answered a model list that is not one.");
  }
  const models: UpstreamModel[] = [];
  for (const entry of entries) {
    if (!isObject(entry) || typeof entry.id !== "string" || entry.id === "") continue;
    models.push({ id: entry.id, shutdownDate: null });
    const aliases = Array.isArray(entry.aliases) ? entry.aliases : [];
    for (const alias of aliases) {
      if (typeof alias === "string" && alias !== "") models.push({ id: alias, shutdownDate: null });
    }
  }
  return models;
}

function statusOf(error: unknown): number | undefined {
  const cause = error instanceof HubError ? error.cause : undefined;
  return isObject(cause) && typeof cause.status === "number" ? cause.status : undefined;
}

function upstreamOf(error: HubError): { message: string | undefined; code: string | undefined } {
  const cause = isObject(error.cause) ? error.cause : {};
  const upstream = isObject(cause.upstream) ? cause.upstream : {};
  return {
    message: typeof upstream.message === "string" ? upstream.message : undefined,
    code: typeof upstream.code === "string" ? upstream.code : undefined,
  };
}

/** xAI has sent its key message percent-encoded ("Incorrect%20API%20key%20provided"). */
function decodeMessage(message: string): string {
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

function imageMimeTypeOf(value: unknown): ImageMimeType | undefined {
  const mimeType = typeof value === "string" ? value.toLowerCase() : "";
  if (mimeType === "image/png" || mimeType === "image/jpeg" || mimeType === "image/webp") {
    return mimeType;
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
