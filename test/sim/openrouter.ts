/**
 * A loopback simulator of OpenRouter's Image API on a real `node:http` server:
 * `POST /api/v1/images` and `GET /api/v1/images/models`, as openrouter.ai serves them
 * (docs: guides/overview/multimodal/image-generation, OpenAPI `createImages`).
 *
 * It checks what the hub sends: `Authorization: Bearer <key>` (none: 401 "No auth credentials
 * found"; wrong: 401 "User not found."), a JSON body with a known `model` (else 400, as
 * OpenRouter's `model_not_found`), a `prompt`, `n` 1 to 10 (and 1 only for Gemini), an
 * `aspect_ratio` and `resolution` each model takes, `size` as `WxH` for OpenAI models only, and
 * `input_references` as `image_url` parts holding `data:` URLs of real images. It answers real
 * images (drawn with sharp) in the pixel sizes the model makes, with `media_type` and a usage
 * carrying `cost`. Errors come in OpenRouter's shape `{"error":{"code":<status>,"message",
 * "metadata"?}}`. Every request is recorded with what the simulator answered.
 *
 * @example
 * const sim = await startOpenRouterSimulator();
 * const provider = createOpenRouterProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
 * sim.failNext(OPENROUTER_FAULTS.noCredit);
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";

export interface RecordedOpenRouterRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  /** What the simulator answered (undefined while pending or when the client left). */
  reply: unknown;
  status: number | undefined;
  /** Base64 of the images answered. */
  images: string[];
}

export interface ScriptedReply {
  status: number;
  /** An object is sent as JSON, a string as is. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface OpenRouterSimulator {
  baseURL: string;
  apiKey: string;
  requests: RecordedOpenRouterRequest[];
  /** Milliseconds to wait before answering a generation. */
  delayMs: number;
  /** Answers the next request with this reply instead of serving it (any status, even 200). */
  failNext(reply: ScriptedReply): void;
  close(): Promise<void>;
}

/** OpenRouter's error replies as its docs show them (errors-and-debugging, OpenAPI examples). */
export const OPENROUTER_FAULTS = {
  noCredit: {
    status: 402,
    body: error(402, "Insufficient credits. Add more using https://openrouter.ai/credits"),
  },
  moderation: {
    status: 403,
    body: error(
      403,
      'google/gemini-3.1-flash-image requires moderation. Your input was flagged for "violence".',
      {
        reasons: ["violence"],
        flagged_input: "a red fox in the snow",
        provider_name: "Google",
        model_slug: "google/gemini-3.1-flash-image",
      },
    ),
  },
  forbiddenKey: {
    status: 403,
    body: error(403, "Only management keys can perform this operation"),
  },
  rateLimited: {
    status: 429,
    headers: { "retry-after": "60" },
    body: error(429, "Rate limit exceeded", { error_type: "rate_limit_exceeded" }),
  },
  providerError: { status: 502, body: error(502, "Provider returned error") },
  noImage: { status: 200, body: { created: 1748372400, data: [] } },
} satisfies Record<string, ScriptedReply>;

interface ModelFeatures {
  name: string;
  /** Sizes by aspect ratio at 1K; other tiers scale them. Undefined: explicit `size` instead. */
  ratios?: Record<string, [number, number]>;
  resolutions: readonly string[];
  maxPerCall: number;
}

/** Gemini 3 image sizes at 1K (Gemini API image-generation guide); 2K and 4K double them. */
const GEMINI_3_SIZES: Record<string, [number, number]> = {
  "1:1": [1024, 1024],
  "2:3": [848, 1264],
  "3:2": [1264, 848],
  "3:4": [896, 1200],
  "4:3": [1200, 896],
  "4:5": [928, 1152],
  "5:4": [1152, 928],
  "9:16": [768, 1376],
  "16:9": [1376, 768],
  "21:9": [1584, 672],
};
const TIER_FACTORS: Record<string, number> = { "1K": 1, "2K": 2, "4K": 4 };

const MODELS: Record<string, ModelFeatures> = {
  "google/gemini-3.1-flash-image": {
    name: "Google: Nano Banana 2",
    ratios: GEMINI_3_SIZES,
    resolutions: ["1K", "2K", "4K"],
    maxPerCall: 1,
  },
  "google/gemini-3-pro-image": {
    name: "Google: Nano Banana Pro",
    ratios: GEMINI_3_SIZES,
    resolutions: ["1K", "2K", "4K"],
    maxPerCall: 1,
  },
  "openai/gpt-image-2": { name: "OpenAI: GPT Image 2", resolutions: [], maxPerCall: 10 },
};

function error(code: number, message: string, metadata?: Record<string, unknown>) {
  return { error: { code, message, ...(metadata ? { metadata } : {}) } };
}

export async function startOpenRouterSimulator(
  options: { apiKey?: string } = {},
): Promise<OpenRouterSimulator> {
  const apiKey = options.apiKey ?? "sk-or-v1-sim-key";
  const scripted: ScriptedReply[] = [];
  const closing = new AbortController();
  const server = createServer((request, response) => {
    handle(request, response).catch((failure: unknown) => {
      if (!response.headersSent && !response.destroyed) {
        send(response, 500, error(500, `Internal Server Error: ${String(failure)}`));
      }
    });
  });

  const sim: OpenRouterSimulator = {
    baseURL: "",
    apiKey,
    requests: [],
    delayMs: 0,
    failNext: (reply) => void scripted.push(reply),
    async close() {
      closing.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const record: RecordedOpenRouterRequest = {
      method: request.method ?? "",
      path: request.url ?? "",
      headers: request.headers,
      body: parseJson(text),
      reply: undefined,
      status: undefined,
      images: [],
    };
    sim.requests.push(record);
    const answer = (status: number, body: unknown, headers?: Record<string, string>) => {
      record.reply = body;
      record.status = status;
      send(response, status, body, headers);
    };

    if (sim.delayMs > 0 && record.method === "POST") {
      // Stop waiting when the client leaves (abort, timeout) or the simulator closes.
      const left = new AbortController();
      response.on("close", () => left.abort());
      try {
        await sleep(sim.delayMs, undefined, {
          signal: AbortSignal.any([left.signal, closing.signal]),
        });
      } catch {
        return;
      }
    }
    const reply = scripted.shift();
    if (reply) return answer(reply.status, reply.body ?? {}, reply.headers);

    const authorization = request.headers.authorization ?? "";
    if (!authorization.startsWith("Bearer ") || authorization === "Bearer ") {
      return answer(401, error(401, "No auth credentials found"));
    }
    if (authorization !== `Bearer ${apiKey}`) return answer(401, error(401, "User not found."));

    if (record.method === "GET" && record.path === "/api/v1/images/models") {
      return answer(200, {
        data: Object.entries(MODELS).map(([id, model]) => listItem(id, model)),
      });
    }
    if (record.method !== "POST" || record.path !== "/api/v1/images") {
      return answer(404, error(404, "Not Found"));
    }
    if (!String(request.headers["content-type"]).startsWith("application/json")) {
      return answer(400, error(400, "Invalid JSON body"));
    }
    const outcome = await generate(record.body);
    if ("error" in outcome) return answer(outcome.status, outcome.error);
    record.images = outcome.images.map((image) => image.b64_json);
    answer(200, {
      created: Math.floor(Date.now() / 1000),
      data: outcome.images,
      usage: outcome.usage,
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  sim.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
  return sim;
}

type Generated =
  | { images: { b64_json: string; media_type: string }[]; usage: Record<string, number> }
  | { status: number; error: unknown };

async function generate(body: unknown): Promise<Generated> {
  const bad = (message: string) => ({ status: 400, error: error(400, message) });
  if (!isObject(body)) return bad("Invalid JSON body");
  const model = typeof body.model === "string" ? MODELS[body.model] : undefined;
  if (!model) return bad(`${String(body.model)} is not a valid model ID`);
  if (typeof body.prompt !== "string" || body.prompt === "") return bad("prompt: Required");
  const n = body.n ?? 1;
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 10)
    return bad("n: must be 1 to 10");
  if ((n as number) > model.maxPerCall) return bad(`${body.model} generates one image per request`);
  for (const field of ["quality", "background", "output_format"]) {
    if (body[field] !== undefined && typeof body[field] !== "string")
      return bad(`${field}: Invalid`);
  }
  const references = await referencesOf(body.input_references);
  if (typeof references === "string") return bad(references);

  let width: number;
  let height: number;
  if (model.ratios) {
    if (body.size !== undefined) return bad("size: use aspect_ratio and resolution for this model");
    const resolution = body.resolution ?? "1K";
    if (typeof resolution !== "string" || !model.resolutions.includes(resolution)) {
      return bad(`resolution: Invalid option ${String(resolution)}`);
    }
    const ratio = body.aspect_ratio ?? nearestRatio(model.ratios, references[0]);
    const base = typeof ratio === "string" ? model.ratios[ratio] : undefined;
    if (!base) return bad(`aspect_ratio: Invalid option ${String(ratio)}`);
    const factor = TIER_FACTORS[resolution] ?? 1;
    [width, height] = [base[0] * factor, base[1] * factor];
  } else {
    if (body.aspect_ratio !== undefined || body.resolution !== undefined) {
      return bad("aspect_ratio and resolution: pass size for this model");
    }
    const match = /^(\d+)x(\d+)$/.exec(typeof body.size === "string" ? body.size : "1024x1024");
    if (!match) return bad(`size: Invalid ${String(body.size)}`);
    [width, height] = [Number(match[1]), Number(match[2])];
    // gpt-image-2's rule: sides in multiples of 16, none longer than 3840.
    if (width % 16 !== 0 || height % 16 !== 0 || Math.max(width, height) > 3840) {
      return bad(`size: Invalid ${String(body.size)}`);
    }
  }

  const format = body.output_format ?? "png";
  if (format !== "png" && format !== "jpeg" && format !== "webp") {
    return bad(`output_format: Invalid option ${String(format)}`);
  }
  const images = [];
  for (let index = 0; index < (n as number); index++) {
    const bytes = await sharp({
      create: { width, height, channels: 3, background: { r: 30 + index * 40, g: 90, b: 160 } },
    })
      .toFormat(format)
      .toBuffer();
    images.push({ b64_json: bytes.toString("base64"), media_type: `image/${format}` });
  }
  const promptTokens = Math.ceil(body.prompt.length / 4) + references.length * 258;
  const completionTokens = 1120 * images.length * (width * height > 2_000_000 ? 2 : 1);
  return {
    images,
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      cost: completionTokens * 0.00006,
    },
  };
}

/** The sizes of `input_references`, each a `data:` URL of an image sharp can read. */
async function referencesOf(value: unknown): Promise<{ width: number; height: number }[] | string> {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > 16) return "input_references: at most 16 images";
  const sizes = [];
  for (const part of value) {
    const url =
      isObject(part) && part.type === "image_url" && isObject(part.image_url)
        ? part.image_url.url
        : undefined;
    const match = /^data:image\/(png|jpeg|webp);base64,(.+)$/.exec(
      typeof url === "string" ? url : "",
    );
    if (!match?.[2]) return "input_references: each must be an image_url with a data: URL";
    try {
      const metadata = await sharp(Buffer.from(match[2], "base64")).metadata();
      if (metadata.format !== match[1]) return "input_references: media type does not match";
      sizes.push({ width: metadata.width ?? 0, height: metadata.height ?? 0 });
    } catch {
      return "input_references: image could not be decoded";
    }
  }
  return sizes;
}

/** Like Gemini without an aspect ratio: the first reference image's ratio, or square. */
function nearestRatio(
  ratios: Record<string, [number, number]>,
  reference: { width: number; height: number } | undefined,
): string {
  if (!reference) return "1:1";
  const wanted = Math.log(reference.width / reference.height);
  const distance = ([w, h]: [number, number]) => Math.abs(Math.log(w / h) - wanted);
  return Object.entries(ratios).sort(([, a], [, b]) => distance(a) - distance(b))[0]?.[0] ?? "1:1";
}

function listItem(id: string, model: ModelFeatures) {
  const supported: Record<string, unknown> = model.ratios
    ? {
        aspect_ratio: { type: "enum", values: Object.keys(model.ratios) },
        resolution: { type: "enum", values: model.resolutions },
      }
    : { size: { type: "boolean" }, n: { type: "range", min: 1, max: model.maxPerCall } };
  return {
    id,
    name: model.name,
    description: `${model.name} (simulated).`,
    created: 1_764_000_000,
    architecture: { input_modalities: ["text", "image"], output_modalities: ["image"] },
    supported_parameters: supported,
    supports_streaming: id.startsWith("openai/"),
    endpoints: `/api/v1/images/models/${id}/endpoints`,
  };
}

function send(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  if (response.destroyed) return;
  const text = typeof body === "string" ? body : JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  response.end(text);
}

function parseJson(text: string): unknown {
  try {
    return text === "" ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
