/**
 * A loopback simulator of OpenAI's Images API (`/v1/images/generations`, `/v1/images/edits`) and
 * its model list (`GET /v1/models`) on a real `node:http` server at 127.0.0.1, for tests of the
 * OpenAI provider and end-to-end tests of the hub (the official `openai` SDK can point at it too).
 *
 * It behaves like the real API where tests depend on it, and is stricter where the real API is
 * lenient, so that a provider sending a parameter a model does not take fails loudly:
 *
 * - `Authorization: Bearer <apiKey>` or 401 in OpenAI's error shape;
 * - models `dall-e-2`, `dall-e-3`, `gpt-image-1`, `gpt-image-1-mini`, `gpt-image-1.5`,
 *   `gpt-image-2` and its snapshot `gpt-image-2-2026-04-21`, and `gpt-image-2.5-flare`,
 *   `gpt-image-2.5-sunburst`, `gpt-image-2.6-flare`, `gpt-image-2.6-sunburst` (which add the
 *   qualities `xhigh` and `max`). gpt-image-2 and later take any size whose edges are multiples
 *   of 16, at most 3840, at most 3:1, with 655,360 to 8,294,400 pixels (3840x2160). Any other
 *   model → 404 `model_not_found`;
 * - every model is served unless named in `shutDown`: a shut-down model answers 404
 *   `model_not_found` as OpenAI answers for a model it removed, and leaves the model list. With
 *   `OPENAI_SHUT_DOWN_MODELS` the simulator is OpenAI as of December 2026;
 * - `GET /v1/models`: the served models and a few that make no images (`gpt-5`, `whisper-1`,
 *   `text-embedding-3-small`), as `{"object":"list","data":[{"id","object","created","owned_by"}]}`;
 *   a model in `shutdownDates` carries `shutdown_date: "YYYY-MM-DD"` as OpenAI's list does;
 *   `failModelList` makes the list answer that status;
 * - a parameter the model does not take → 400 `unknown_parameter` (`response_format` for GPT image
 *   models, `style` for all but dall-e-3, `quality` for dall-e-2, GPT image options for DALL·E);
 *   a value it does not take → 400 (`n` > 1 for dall-e-3, a size not of the model, ...);
 * - a prompt containing `forbidden-content` → 400 `content_policy_violation` (DALL·E) or
 *   `moderation_blocked` (GPT image models);
 * - real images made with sharp at the asked size (PNG, or JPEG/WebP when `output_format` asks),
 *   as `b64_json`, or as `url` (DALL·E without `response_format`, or `replyWithUrl`) pointing at
 *   an image this server serves itself; `revised_prompt` for dall-e-3; `usage`, `size`,
 *   `quality`, `background` and `output_format` for GPT image models.
 *
 * Every request is recorded in `requests`, with its parsed JSON or multipart body and, once sent,
 * the reply.
 *
 * @example
 * ```ts
 * const sim = await startOpenAISimulator({ shutDown: OPENAI_SHUT_DOWN_MODELS });
 * const client = new OpenAI({ apiKey: sim.apiKey, baseURL: sim.baseURL });
 * sim.failNext({ status: 429, headers: { "retry-after": "3" }, body: { error: { message: "Slow down" } } });
 * sim.delayMs = 200;
 * // ... exercise the code under test ...
 * assert.equal(sim.requests[0]?.json?.model, "gpt-image-1");
 * await sim.close();
 * ```
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";

export interface OpenAISimulatorOptions {
  /** The key the simulator accepts; defaults to `DEFAULT_SIMULATOR_API_KEY`. */
  apiKey?: string;
  /** Models answered as shut down (404 model_not_found) and left out of the list; none by default. */
  shutDown?: readonly string[];
  /** Model id → `YYYY-MM-DD`: the `shutdown_date` its model list entry carries. */
  shutdownDates?: Record<string, string>;
}

export const DEFAULT_SIMULATOR_API_KEY = "sk-sim-openai-0123456789";

/**
 * The image models OpenAI has shut down by December 2026: dall-e-2 and dall-e-3 (2026-05-12),
 * gpt-image-1 (2026-10-23), gpt-image-1-mini and gpt-image-1.5 (2026-12-01).
 */
export const OPENAI_SHUT_DOWN_MODELS: readonly string[] = [
  "dall-e-2",
  "dall-e-3",
  "gpt-image-1",
  "gpt-image-1-mini",
  "gpt-image-1.5",
];

/** A reply to send instead of serving a request: any status, 200 included. */
export interface ScriptedReply {
  status: number;
  /** A string is sent as is (to send something that is not JSON); anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface SimulatedFile {
  /** The form field: `image`, `image[]` or `mask`. */
  field: string;
  filename: string;
  contentType: string;
  bytes: Buffer;
}

export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. `/v1/images/generations`. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed body of a JSON request. */
  json: Record<string, unknown> | undefined;
  /** The parsed body of a multipart request: text fields by name, and the files in order. */
  form: { fields: Record<string, string>; files: SimulatedFile[] } | undefined;
  /** What the simulator answered, once it has (the body as parsed JSON, or the raw text). */
  reply: { status: number; body: unknown } | undefined;
}

export interface OpenAISimulator {
  /** E.g. `http://127.0.0.1:41234/v1`: what a client takes as its base URL. */
  readonly baseURL: string;
  readonly apiKey: string;
  /** Every request received, in order, including GETs of the images it serves. */
  readonly requests: RecordedRequest[];
  /**
   * Answer each image request this many milliseconds late (for timeouts and cancellation); the
   * model list answers at once, as OpenAI's does while a model is slow to draw.
   */
  delayMs: number;
  /** Answer with `data[].url` instead of `data[].b64_json`, whatever was asked. */
  replyWithUrl: boolean;
  /** Models answered 404 `model_not_found` and left out of `GET /v1/models`. */
  shutDown: Set<string>;
  /** Model id → `YYYY-MM-DD`, sent as the `shutdown_date` of its model list entry. */
  shutdownDates: Record<string, string>;
  /** When set, `GET /v1/models` answers this status (503, say) with an OpenAI error. */
  failModelList: number | undefined;
  /** Answers the next request (queued: one reply per call) with `reply`, without serving it. */
  failNext(reply: ScriptedReply): void;
  close(): Promise<void>;
}

type Family = "dall-e-2" | "dall-e-3" | "gpt-image";

interface ModelSpec {
  family: Family;
  /** The sizes the model takes, or a rule for GPT image models of flexible size. */
  sizes: readonly string[] | "flexible";
  maxPromptLength: number;
  /** The qualities it takes, where not those of its family. */
  qualities?: readonly string[];
  /** Its `created` in the model list, Unix seconds. */
  created: number;
}

const GPT_IMAGE_SIZES = ["1024x1024", "1536x1024", "1024x1536", "auto"];
const GPT_IMAGE_2_5_QUALITIES = ["low", "medium", "high", "xhigh", "max", "auto"];

const MODELS: Record<string, ModelSpec> = {
  "dall-e-2": {
    family: "dall-e-2",
    sizes: ["256x256", "512x512", "1024x1024"],
    maxPromptLength: 1000,
    created: 1698798177,
  },
  "dall-e-3": {
    family: "dall-e-3",
    sizes: ["1024x1024", "1792x1024", "1024x1792"],
    maxPromptLength: 4000,
    created: 1698785189,
  },
  "gpt-image-1": gptImage(GPT_IMAGE_SIZES, 1745517030),
  "gpt-image-1-mini": gptImage(GPT_IMAGE_SIZES, 1759449600),
  "gpt-image-1.5": gptImage(GPT_IMAGE_SIZES, 1765843200),
  "gpt-image-2": gptImage("flexible", 1776729600),
  "gpt-image-2-2026-04-21": gptImage("flexible", 1776729600),
  "gpt-image-2.5-flare": gptImage("flexible", 1788825600, GPT_IMAGE_2_5_QUALITIES),
  "gpt-image-2.5-sunburst": gptImage("flexible", 1788825600, GPT_IMAGE_2_5_QUALITIES),
  "gpt-image-2.6-flare": gptImage("flexible", 1793750400, GPT_IMAGE_2_5_QUALITIES),
  "gpt-image-2.6-sunburst": gptImage("flexible", 1793750400, GPT_IMAGE_2_5_QUALITIES),
};

function gptImage(
  sizes: ModelSpec["sizes"],
  created: number,
  qualities?: readonly string[],
): ModelSpec {
  return { family: "gpt-image", sizes, maxPromptLength: 32000, created, qualities };
}

/** Models OpenAI lists that make no images: the hub must pick the image models out itself. */
const OTHER_MODELS: Record<string, number> = {
  "gpt-5": 1754425777,
  "text-embedding-3-small": 1705948997,
  "whisper-1": 1677532384,
};

/** gpt-image-2's pixel bounds: 1024x640 is the fewest pixels, 3840x2160 the most. */
const MIN_FLEXIBLE_PIXELS = 655_360;
const MAX_FLEXIBLE_PIXELS = 8_294_400;

/** Which parameters each family takes, per endpoint; anything else is an unknown parameter. */
const COMMON_PARAMETERS = ["model", "prompt", "n", "size", "user", "safety_identifier"];
const GPT_IMAGE_OPTIONS = ["quality", "background", "output_format", "output_compression"];
const ACCEPTED: Record<"generation" | "edit", Record<Family, readonly string[]>> = {
  generation: {
    "dall-e-2": [...COMMON_PARAMETERS, "response_format"],
    "dall-e-3": [...COMMON_PARAMETERS, "response_format", "quality", "style"],
    "gpt-image": [...COMMON_PARAMETERS, ...GPT_IMAGE_OPTIONS, "moderation"],
  },
  edit: {
    "dall-e-2": [...COMMON_PARAMETERS, "response_format", "image", "mask"],
    "dall-e-3": [],
    "gpt-image": [
      ...COMMON_PARAMETERS,
      ...GPT_IMAGE_OPTIONS,
      "input_fidelity",
      "image[]",
      "image",
      "mask",
    ],
  },
};

const QUALITIES: Record<Family, readonly string[]> = {
  "dall-e-2": [],
  "dall-e-3": ["standard", "hd"],
  "gpt-image": ["low", "medium", "high", "auto"],
};

/** Output tokens of one 1024×1024 image by quality, as OpenAI bills gpt-image-1. */
const OUTPUT_TOKENS_PER_MEGAPIXEL: Record<string, number> = { low: 272, medium: 1056, high: 4160 };
const TOKENS_PER_INPUT_IMAGE = 323;
const INPUT_IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];
const MAX_N = 10;

class OpenAIError extends Error {
  readonly status: number;
  readonly body: { error: { message: string; type: string; param: string | null; code: unknown } };
  constructor(
    status: number,
    message: string,
    options: { type?: string; param?: string | null; code?: string | null } = {},
  ) {
    super(message);
    this.status = status;
    this.body = {
      error: {
        message,
        type: options.type ?? "invalid_request_error",
        param: options.param ?? null,
        code: options.code ?? null,
      },
    };
  }
}

function unknownParameter(name: string): OpenAIError {
  return new OpenAIError(400, `Unknown parameter: '${name}'.`, {
    param: name,
    code: "unknown_parameter",
  });
}

function invalidValue(name: string, value: unknown, supported: readonly string[]): OpenAIError {
  const list = supported.map((item) => `'${item}'`).join(", ");
  return new OpenAIError(400, `Invalid value: '${String(value)}'. Supported values are: ${list}.`, {
    param: name,
    code: "invalid_value",
  });
}

export async function startOpenAISimulator(
  options: OpenAISimulatorOptions = {},
): Promise<OpenAISimulator> {
  const apiKey = options.apiKey ?? DEFAULT_SIMULATOR_API_KEY;
  const requests: RecordedRequest[] = [];
  const scripted: ScriptedReply[] = [];
  const served = new Map<string, { bytes: Buffer; contentType: string }>();
  let requestCount = 0;
  let origin = "";

  const simulator: OpenAISimulator = {
    baseURL: "",
    apiKey,
    requests,
    delayMs: 0,
    replyWithUrl: false,
    shutDown: new Set(options.shutDown ?? []),
    shutdownDates: { ...options.shutdownDates },
    failModelList: undefined,
    failNext(reply) {
      scripted.push(reply);
    },
    close: async () => {},
  };

  const server = createServer(async (request, response) => {
    requestCount += 1;
    const requestId = `req_sim_${requestCount}`;
    // The client may give up (timeout, abort) while we wait: stop waiting, answer nobody.
    const gone = new AbortController();
    response.on("close", () => gone.abort());
    let record: RecordedRequest | undefined;

    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (record) record.reply = { status, body };
      if (response.destroyed || response.writableEnded) return;
      const isBuffer = Buffer.isBuffer(body);
      const payload = isBuffer || typeof body === "string" ? body : JSON.stringify(body);
      response.writeHead(status, {
        "content-type": isBuffer ? "application/octet-stream" : "application/json",
        "x-request-id": requestId,
        ...headers,
      });
      response.end(payload);
    };

    try {
      const raw = await readBody(request);
      const path = request.url ?? "/";
      record = {
        method: request.method ?? "GET",
        path,
        headers: request.headers,
        json: undefined,
        form: undefined,
        reply: undefined,
      };
      requests.push(record);
      const contentType = request.headers["content-type"] ?? "";
      let jsonError: unknown;
      if (contentType.startsWith("application/json")) {
        try {
          record.json = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
        } catch (error) {
          jsonError = error;
        }
      } else if (contentType.startsWith("multipart/form-data")) {
        record.form = await parseMultipart(raw, contentType, path);
      }

      if (simulator.delayMs > 0 && path.startsWith("/v1/images")) {
        await sleep(simulator.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) return;
      }

      const next = scripted.shift();
      if (next) {
        send(next.status, next.body ?? "", next.headers);
        return;
      }

      if (request.method === "GET" && path.startsWith("/sim-images/")) {
        const file = served.get(path.slice("/sim-images/".length));
        if (!file) throw new OpenAIError(404, "Not found.", { code: "not_found" });
        response.writeHead(200, { "content-type": file.contentType });
        response.end(file.bytes);
        record.reply = { status: 200, body: file.bytes };
        return;
      }

      checkAuthorization(request.headers.authorization, apiKey);
      const endpoint = `${request.method} ${path.split("?")[0]}`;
      if (endpoint === "GET /v1/models") {
        if (simulator.failModelList !== undefined) {
          const status = simulator.failModelList;
          throw new OpenAIError(status, failureMessage(status), {
            type: status >= 500 ? "server_error" : "invalid_request_error",
          });
        }
        send(200, modelList());
        return;
      }
      if (endpoint === "POST /v1/images/generations") {
        if (!record.json) {
          throw new OpenAIError(
            400,
            jsonError
              ? "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
              : `Invalid Content-Type header (${contentType}), expected application/json.`,
          );
        }
        send(200, await serve("generation", record.json, []));
        return;
      }
      if (endpoint === "POST /v1/images/edits") {
        if (!record.form) {
          throw new OpenAIError(
            400,
            `Invalid Content-Type header (${contentType}), expected multipart/form-data.`,
          );
        }
        send(200, await serve("edit", formParameters(record.form), record.form.files));
        return;
      }
      throw new OpenAIError(404, `Invalid URL (${endpoint}).`);
    } catch (error) {
      if (error instanceof OpenAIError) {
        send(error.status, error.body);
      } else {
        send(500, {
          error: {
            message: "The server had an error while processing your request. Sorry about that!",
            type: "server_error",
            param: null,
            code: null,
          },
        });
      }
    }
  });

  /** The served models and a few that make no images, as OpenAI lists them. */
  function modelList(): unknown {
    const created: [string, number][] = [
      ...Object.entries(MODELS).map(([id, spec]): [string, number] => [id, spec.created]),
      ...Object.entries(OTHER_MODELS),
    ];
    const data = created
      .filter(([id]) => !simulator.shutDown.has(id))
      .map(([id, time]) => {
        const entry: Record<string, unknown> = {
          id,
          object: "model",
          created: time,
          owned_by: "system",
        };
        const shutdownDate = simulator.shutdownDates[id];
        if (shutdownDate !== undefined) entry.shutdown_date = shutdownDate;
        return entry;
      });
    return { object: "list", data };
  }

  async function serve(
    endpoint: "generation" | "edit",
    parameters: Record<string, unknown>,
    files: SimulatedFile[],
  ): Promise<unknown> {
    const modelName = parameters.model ?? "dall-e-2";
    const known = typeof modelName === "string" && !simulator.shutDown.has(modelName);
    const model = known ? MODELS[modelName] : undefined;
    if (!model) {
      // What OpenAI answers for a model it never had and for one it has shut down alike.
      throw new OpenAIError(
        404,
        `The model \`${String(modelName)}\` does not exist or you do not have access to it.`,
        { code: "model_not_found" },
      );
    }
    if (endpoint === "edit" && model.family === "dall-e-3") {
      throw invalidValue("model", modelName, ["dall-e-2", "gpt-image-1", "gpt-image-1.5"]);
    }
    const accepted = ACCEPTED[endpoint][model.family];
    for (const name of Object.keys(parameters)) {
      if (!accepted.includes(name)) throw unknownParameter(name);
    }
    const family = model.family;

    const prompt = parameters.prompt;
    if (typeof prompt !== "string" || prompt.length === 0) {
      throw new OpenAIError(400, "Missing required parameter: 'prompt'.", {
        param: "prompt",
        code: "missing_required_parameter",
      });
    }
    if (prompt.length > model.maxPromptLength) {
      throw new OpenAIError(
        400,
        `Invalid 'prompt': string too long. Expected a string with maximum length ${model.maxPromptLength}, but got a string with length ${prompt.length} instead.`,
        { param: "prompt", code: "string_above_max_length" },
      );
    }

    const n = parameters.n ?? 1;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_N) {
      throw new OpenAIError(400, `Invalid 'n': integer between 1 and ${MAX_N} expected.`, {
        param: "n",
        code: "invalid_value",
      });
    }
    if (family === "dall-e-3" && n !== 1) {
      throw new OpenAIError(400, "You must provide n=1 for this model.");
    }

    const size = parameters.size ?? (family === "gpt-image" ? "auto" : "1024x1024");
    if (typeof size !== "string" || !sizeFits(model, size)) {
      throw new OpenAIError(400, "The size is not supported by this model.", {
        code: "invalid_size",
      });
    }
    const [width, height] = size === "auto" ? [1024, 1024] : size.split("x").map(Number);

    const responseFormat = parameters.response_format ?? "url";
    if (responseFormat !== "url" && responseFormat !== "b64_json") {
      throw invalidValue("response_format", responseFormat, ["url", "b64_json"]);
    }
    const qualities = model.qualities ?? QUALITIES[family];
    if (parameters.quality !== undefined && !qualities.includes(String(parameters.quality))) {
      throw invalidValue("quality", parameters.quality, qualities);
    }
    if (
      parameters.style !== undefined &&
      !["vivid", "natural"].includes(String(parameters.style))
    ) {
      throw invalidValue("style", parameters.style, ["vivid", "natural"]);
    }
    const background = parameters.background ?? "auto";
    if (!["transparent", "opaque", "auto"].includes(String(background))) {
      throw invalidValue("background", background, ["transparent", "opaque", "auto"]);
    }
    const outputFormat = parameters.output_format ?? "png";
    if (outputFormat !== "png" && outputFormat !== "jpeg" && outputFormat !== "webp") {
      throw invalidValue("output_format", outputFormat, ["png", "jpeg", "webp"]);
    }
    if (background === "transparent" && outputFormat === "jpeg") {
      throw new OpenAIError(
        400,
        "Transparent background is not supported for the jpeg output format. Use png or webp.",
        { param: "background", code: "invalid_value" },
      );
    }
    const compression = parameters.output_compression;
    if (compression !== undefined) {
      if (
        typeof compression !== "number" ||
        !Number.isInteger(compression) ||
        compression < 0 ||
        compression > 100
      ) {
        throw new OpenAIError(400, "Invalid 'output_compression': integer between 0 and 100.", {
          param: "output_compression",
          code: "invalid_value",
        });
      }
      if (outputFormat === "png" && compression < 100) {
        throw new OpenAIError(
          400,
          "Compression less than 100 is not supported for PNG output format.",
          { param: "output_compression", code: "invalid_value" },
        );
      }
    }
    if (
      parameters.moderation !== undefined &&
      !["low", "auto"].includes(String(parameters.moderation))
    ) {
      throw invalidValue("moderation", parameters.moderation, ["low", "auto"]);
    }
    const inputImages = endpoint === "edit" ? await checkEditFiles(family, files) : 0;

    if (prompt.includes("forbidden-content")) {
      if (family === "gpt-image") {
        throw new OpenAIError(
          400,
          "Your request was rejected by the safety system. If you believe this is an error, contact us at help.openai.com and include the request ID req_sim. safety_violations=[sim].",
          { type: "image_generation_user_error", code: "moderation_blocked" },
        );
      }
      throw new OpenAIError(
        400,
        "Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.",
        { code: "content_policy_violation" },
      );
    }

    const format = family === "gpt-image" ? outputFormat : "png";
    const transparent = family === "gpt-image" && background === "transparent";
    const data: Record<string, string>[] = [];
    for (let index = 0; index < n; index++) {
      const bytes = await makeImage(prompt, index, width ?? 1024, height ?? 1024, {
        format,
        transparent,
        quality: typeof compression === "number" ? Math.max(1, compression) : 100,
      });
      const item: Record<string, string> = {};
      const asUrl = simulator.replyWithUrl || (family !== "gpt-image" && responseFormat === "url");
      if (asUrl) {
        const name = `${randomUUID()}.${format}`;
        served.set(name, { bytes, contentType: `image/${format}` });
        item.url = `${origin}/sim-images/${name}`;
      } else {
        item.b64_json = bytes.toString("base64");
      }
      if (family === "dall-e-3") item.revised_prompt = `A detailed rendering of: ${prompt}`;
      data.push(item);
    }

    const reply: Record<string, unknown> = { created: Math.floor(Date.now() / 1000) };
    if (family === "gpt-image") {
      const quality =
        parameters.quality === undefined || parameters.quality === "auto"
          ? "medium"
          : String(parameters.quality);
      const textTokens = Math.ceil(prompt.length / 4);
      const imageTokens = inputImages * TOKENS_PER_INPUT_IMAGE;
      const perImage = Math.round(
        ((OUTPUT_TOKENS_PER_MEGAPIXEL[quality] ?? 1056) * (width ?? 1024) * (height ?? 1024)) /
          (1024 * 1024),
      );
      const outputTokens = perImage * n;
      reply.background = transparent ? "transparent" : "opaque";
      reply.data = data;
      reply.output_format = format;
      reply.quality = quality;
      reply.size = `${width}x${height}`;
      reply.usage = {
        input_tokens: textTokens + imageTokens,
        input_tokens_details: { image_tokens: imageTokens, text_tokens: textTokens },
        output_tokens: outputTokens,
        total_tokens: textTokens + imageTokens + outputTokens,
      };
    } else {
      reply.data = data;
    }
    return reply;
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;
  Object.assign(simulator, { baseURL: `${origin}/v1` });
  simulator.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      // Keep-alive connections of clients (undici pools them) would hold the close open.
      server.closeAllConnections();
    });
  return simulator;
}

function checkAuthorization(header: string | undefined, apiKey: string): void {
  if (!header?.startsWith("Bearer ")) {
    throw new OpenAIError(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    );
  }
  const given = header.slice("Bearer ".length);
  if (given !== apiKey) {
    const shown = given.length > 8 ? `${given.slice(0, 3)}***${given.slice(-4)}` : "***";
    throw new OpenAIError(
      401,
      `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`,
      { code: "invalid_api_key" },
    );
  }
}

function sizeFits(model: ModelSpec, size: string): boolean {
  if (model.sizes !== "flexible") return model.sizes.includes(size);
  if (size === "auto") return true;
  const match = /^(\d+)x(\d+)$/.exec(size);
  if (!match) return false;
  const width = Number(match[1]);
  const height = Number(match[2]);
  return (
    width % 16 === 0 &&
    height % 16 === 0 &&
    width > 0 &&
    height > 0 &&
    Math.max(width, height) <= 3840 &&
    width * height >= MIN_FLEXIBLE_PIXELS &&
    width * height <= MAX_FLEXIBLE_PIXELS &&
    Math.max(width, height) / Math.min(width, height) <= 3
  );
}

function failureMessage(status: number): string {
  if (status === 429) return "Rate limit reached for requests. Please try again in 1s.";
  if (status === 503) return "The server is overloaded or not ready yet.";
  return "The server had an error while processing your request. Sorry about that!";
}

/** Checks the input images of an edit as OpenAI does; returns how many there are. */
async function checkEditFiles(family: Family, files: SimulatedFile[]): Promise<number> {
  const images = files.filter((file) => file.field === "image" || file.field === "image[]");
  const mask = files.find((file) => file.field === "mask");
  if (images.length === 0) {
    throw new OpenAIError(400, "Missing required parameter: 'image'.", {
      param: "image",
      code: "missing_required_parameter",
    });
  }
  if (family === "dall-e-2" && images.length > 1) {
    throw new OpenAIError(400, "dall-e-2 takes a single 'image'.", {
      param: "image",
      code: "invalid_value",
    });
  }
  if (images.length > 16) {
    throw new OpenAIError(400, "Invalid 'image': at most 16 images.", {
      param: "image",
      code: "array_above_max_length",
    });
  }
  const sizes: { width: number; height: number }[] = [];
  for (const image of images) {
    if (!INPUT_IMAGE_TYPES.includes(image.contentType)) {
      throw new OpenAIError(
        400,
        `Invalid file '${image.field}': unsupported mimetype ('${image.contentType}'). Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'.`,
        { param: image.field, code: "unsupported_file_mimetype" },
      );
    }
    const metadata = await sharp(image.bytes)
      .metadata()
      .catch(() => undefined);
    if (!metadata || `image/${metadata.format}` !== image.contentType) {
      throw new OpenAIError(400, `Invalid image file '${image.filename}'.`, {
        param: image.field,
        code: "invalid_image_file",
      });
    }
    if (
      family === "dall-e-2" &&
      (metadata.format !== "png" || metadata.width !== metadata.height)
    ) {
      throw new OpenAIError(400, "Uploaded image must be a square PNG less than 4 MB.", {
        param: "image",
        code: "invalid_image_format",
      });
    }
    sizes.push({ width: metadata.width, height: metadata.height });
  }
  if (mask) {
    const metadata = await sharp(mask.bytes)
      .metadata()
      .catch(() => undefined);
    const first = sizes[0];
    if (
      metadata?.format !== "png" ||
      metadata.width !== first?.width ||
      metadata.height !== first?.height
    ) {
      throw new OpenAIError(
        400,
        "Invalid mask image: it must be a PNG with the same dimensions as the image.",
        { param: "mask", code: "invalid_image_format" },
      );
    }
  }
  return images.length;
}

async function makeImage(
  prompt: string,
  index: number,
  width: number,
  height: number,
  options: { format: "png" | "jpeg" | "webp"; transparent: boolean; quality: number },
): Promise<Buffer> {
  // A solid colour of its own per prompt and index, so that two images of a reply differ.
  let hash = index * 97;
  for (const character of prompt) hash = (hash * 31 + (character.codePointAt(0) ?? 0)) >>> 0;
  const background = {
    r: hash & 0xff,
    g: (hash >>> 8) & 0xff,
    b: (hash >>> 16) & 0xff,
    alpha: options.transparent ? 0.5 : 1,
  };
  const image = sharp({
    create: { width, height, channels: options.transparent ? 4 : 3, background },
  });
  if (options.format === "jpeg") return image.jpeg({ quality: options.quality }).toBuffer();
  if (options.format === "webp") return image.webp({ quality: options.quality }).toBuffer();
  return image.png().toBuffer();
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function parseMultipart(
  raw: Buffer,
  contentType: string,
  path: string,
): Promise<{ fields: Record<string, string>; files: SimulatedFile[] }> {
  const fields: Record<string, string> = {};
  const files: SimulatedFile[] = [];
  let formData: FormData;
  try {
    formData = await new Request(`http://127.0.0.1${path}`, {
      method: "POST",
      headers: { "content-type": contentType },
      body: new Uint8Array(raw),
    }).formData();
  } catch {
    throw new OpenAIError(400, "Could not parse multipart form data.");
  }
  for (const [field, value] of formData) {
    if (typeof value === "string") {
      fields[field] = value;
    } else {
      files.push({
        field,
        filename: value.name,
        contentType: value.type,
        bytes: Buffer.from(await value.arrayBuffer()),
      });
    }
  }
  return { fields, files };
}

/** Multipart text fields as the parameters of a JSON body: numbers where OpenAI takes numbers. */
function formParameters(form: {
  fields: Record<string, string>;
  files: SimulatedFile[];
}): Record<string, unknown> {
  const parameters: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(form.fields)) {
    parameters[name] = name === "n" || name === "output_compression" ? Number(value) : value;
  }
  for (const file of form.files) parameters[file.field] = true;
  return parameters;
}
