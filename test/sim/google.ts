/**
 * A loopback simulator of Google's image APIs on a real `node:http` server: Gemini image models
 * through `POST /v1beta/models/{model}:generateContent`, Imagen through
 * `POST /v1beta/models/{model}:predict`, and the model list `GET /v1beta/models`, as served by
 * generativelanguage.googleapis.com.
 *
 * It answers like the real API where the hub can tell: the key in `x-goog-api-key` (or `?key=`),
 * a missing key as 403 PERMISSION_DENIED, a wrong one as 400 INVALID_ARGUMENT with reason
 * API_KEY_INVALID, an unknown model as 404 NOT_FOUND, an unsupported aspect ratio or image size
 * as 400 INVALID_ARGUMENT, and real images (drawn with sharp) in the pixel sizes Google documents
 * for each aspect ratio. Every request is recorded with what the simulator answered.
 *
 * Models: gemini-2.5-flash-image(-preview) (about 1K only), gemini-3-pro-image(-preview) (1K, 2K,
 * 4K), gemini-3.1-flash-image(-preview) (512, 1K, 2K, 4K), gemini-nano-banana-2.1 (1K, 2K, 4K; 512
 * refused), Imagen 4 (generate, fast, ultra) and imagen-3.0-generate-002. Every model is served
 * unless named in `shutDown`: a shut-down model answers 404 NOT_FOUND as Google answers for a
 * model it removed, and leaves the list. With `GOOGLE_SHUT_DOWN_MODELS` the simulator is Google
 * as of December 2026, as far as the hub's tests need.
 *
 * The model list holds the served models and a few that make no images (gemini-2.5-flash,
 * gemini-embedding-001), `{"models":[{"name":"models/<id>","version","displayName",
 * "supportedGenerationMethods",...}],"nextPageToken"}`, in pages of `pageSize` (50 by default,
 * 1000 at most) or `modelListPageSize` if smaller; `failModelList` makes it answer that status.
 * Like Google's, it carries no shutdown dates.
 *
 * @example
 * const sim = await startGoogleSimulator({ shutDown: GOOGLE_SHUT_DOWN_MODELS });
 * const provider = createGoogleProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
 * sim.blockNext("prompt"); // the next call is refused by the safety filter
 * await sim.close();
 */
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";

export interface GoogleSimulatorOptions {
  /** The key the simulator accepts; `sim-google-key` by default. */
  apiKey?: string;
  /** Models answered as shut down (404 NOT_FOUND) and left out of the list; none by default. */
  shutDown?: readonly string[];
  /** The largest model list page, whatever `pageSize` the client asks for (to force paging). */
  modelListPageSize?: number;
}

/**
 * The image models Google has shut down by December 2026: Imagen 4 (2026-08-17),
 * gemini-2.5-flash-image (2026-10-02) and its preview.
 */
export const GOOGLE_SHUT_DOWN_MODELS: readonly string[] = [
  "imagen-4.0-generate-001",
  "imagen-4.0-fast-generate-001",
  "imagen-4.0-ultra-generate-001",
  "gemini-2.5-flash-image",
  "gemini-2.5-flash-image-preview",
];

export interface RecordedGoogleRequest {
  method: string;
  /** Path and query string as received. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or undefined when it was empty or not JSON. */
  body: unknown;
  /** The JSON the simulator answered with (undefined while pending or when the client left). */
  reply: unknown;
  /** Base64 of the final images in the reply (Gemini thought images excluded). */
  images: string[];
}

export interface ScriptedReply {
  status: number;
  /** An object is sent as JSON, a string as is. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface GoogleSimulator {
  baseURL: string;
  apiKey: string;
  requests: RecordedGoogleRequest[];
  /** Milliseconds to wait before answering each generation (the model list answers at once). */
  delayMs: number;
  /** Models answered 404 NOT_FOUND and left out of `GET /v1beta/models`. */
  shutDown: Set<string>;
  /** The largest model list page, whatever `pageSize` asks; undefined for Google's own rule. */
  modelListPageSize: number | undefined;
  /** When set, `GET /v1beta/models` answers this status (503, say) with a Google error. */
  failModelList: number | undefined;
  /** Answers the next request with this reply instead of serving it (any status, even 200). */
  failNext(reply: ScriptedReply): void;
  /**
   * Refuses the next generation under the safety filter. Gemini: "prompt" answers
   * `promptFeedback.blockReason: SAFETY`, "image" a candidate with finishReason IMAGE_SAFETY.
   * Imagen drops every image silently and answers `{}` for either kind.
   */
  blockNext(kind?: "prompt" | "image"): void;
  /** Imagen: the next call loses this many of its images to the safety filter. */
  filterNext(count: number): void;
  close(): Promise<void>;
}

interface GeminiModel {
  displayName: string;
  /** The `imageConfig.imageSize` values it takes; none for models that make about 1K only. */
  imageSizes: readonly string[];
  /** Gemini 3 models think in draft images, sent back as `thought` parts. */
  thoughtImages: boolean;
}

const GEMINI_3_PRO_SIZES = ["1K", "2K", "4K"];
const GEMINI_3_FLASH_SIZES = ["512", "1K", "2K", "4K"];

const GEMINI_MODELS: Record<string, GeminiModel> = {
  "gemini-2.5-flash-image": { displayName: "Nano Banana", imageSizes: [], thoughtImages: false },
  "gemini-2.5-flash-image-preview": {
    displayName: "Nano Banana (Preview)",
    imageSizes: [],
    thoughtImages: false,
  },
  "gemini-3-pro-image-preview": {
    displayName: "Nano Banana Pro (Preview)",
    imageSizes: GEMINI_3_PRO_SIZES,
    thoughtImages: true,
  },
  "gemini-3-pro-image": {
    displayName: "Nano Banana Pro",
    imageSizes: GEMINI_3_PRO_SIZES,
    thoughtImages: true,
  },
  "gemini-3.1-flash-image-preview": {
    displayName: "Nano Banana 2 (Preview)",
    imageSizes: GEMINI_3_FLASH_SIZES,
    thoughtImages: true,
  },
  "gemini-3.1-flash-image": {
    displayName: "Nano Banana 2",
    imageSizes: GEMINI_3_FLASH_SIZES,
    thoughtImages: true,
  },
  // Its 512 tier is gone: Google answers 400 to it.
  "gemini-nano-banana-2.1": {
    displayName: "Nano Banana 2.1",
    imageSizes: GEMINI_3_PRO_SIZES,
    thoughtImages: true,
  },
};

const IMAGEN_MODELS: Record<string, { displayName: string; maxSamples: number }> = {
  "imagen-4.0-generate-001": { displayName: "Imagen 4", maxSamples: 4 },
  "imagen-4.0-fast-generate-001": { displayName: "Imagen 4 Fast", maxSamples: 4 },
  "imagen-4.0-ultra-generate-001": { displayName: "Imagen 4 Ultra", maxSamples: 1 },
  "imagen-3.0-generate-002": { displayName: "Imagen 3", maxSamples: 4 },
};

/** Models Google lists that make no images: the hub must pick the image models out itself. */
const OTHER_MODELS: Record<string, { displayName: string; methods: readonly string[] }> = {
  "gemini-2.5-flash": {
    displayName: "Gemini 2.5 Flash",
    methods: ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
  },
  "gemini-embedding-001": {
    displayName: "Gemini Embedding 001",
    methods: ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"],
  },
};

const DEFAULT_MODEL_LIST_PAGE_SIZE = 50;
const MAX_MODEL_LIST_PAGE_SIZE = 1000;

/**
 * Output sizes at 1K as documented for gemini-2.5-flash-image; 2K and 4K double and quadruple
 * them (the Gemini 3 models' own sizes differ from these by a few pixels).
 */
const GEMINI_SIZES: Record<string, [number, number]> = {
  "1:1": [1024, 1024],
  "2:3": [832, 1248],
  "3:2": [1248, 832],
  "3:4": [864, 1184],
  "4:3": [1184, 864],
  "4:5": [896, 1152],
  "5:4": [1152, 896],
  "9:16": [768, 1344],
  "16:9": [1344, 768],
  "21:9": [1536, 672],
};
const IMAGE_SIZE_FACTORS: Record<string, number> = { "512": 0.5, "1K": 1, "2K": 2, "4K": 4 };

const IMAGEN_SIZES: Record<string, [number, number]> = {
  "1:1": [1024, 1024],
  "3:4": [896, 1280],
  "4:3": [1280, 896],
  "9:16": [768, 1408],
  "16:9": [1408, 768],
};

const INPUT_MIME_TYPES = new Set([
  "image/png",
  "image/jpeg",
  "image/webp",
  "image/heic",
  "image/heif",
]);
const RAI_FILTERED_REASON =
  "Your current safety filter threshold filtered out 1 generated images. You will not be charged for blocked images. Try rephrasing the prompt. If you think this was an error, send feedback.";

interface Exchange {
  record: RecordedGoogleRequest;
  response: ServerResponse;
}

export async function startGoogleSimulator(
  options: GoogleSimulatorOptions = {},
): Promise<GoogleSimulator> {
  const apiKey = options.apiKey ?? "sim-google-key";
  const scripted: ScriptedReply[] = [];
  const blocks: Array<"prompt" | "image"> = [];
  const filters: number[] = [];
  const closing = new AbortController();

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent && !response.destroyed) {
        response.writeHead(500, { "content-type": "application/json; charset=UTF-8" });
        response.end(JSON.stringify(googleError(500, "INTERNAL", String(error))));
      }
    });
  });

  const sim: GoogleSimulator = {
    baseURL: "",
    apiKey,
    requests: [],
    delayMs: 0,
    shutDown: new Set(options.shutDown ?? []),
    modelListPageSize: options.modelListPageSize,
    failModelList: undefined,
    failNext(reply) {
      scripted.push(reply);
    },
    blockNext(kind = "prompt") {
      blocks.push(kind);
    },
    filterNext(count) {
      filters.push(count);
    },
    async close() {
      closing.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const text = await readText(request);
    const record: RecordedGoogleRequest = {
      method: request.method ?? "",
      path: request.url ?? "",
      headers: request.headers,
      body: parseJson(text),
      reply: undefined,
      images: [],
    };
    sim.requests.push(record);
    const exchange = { record, response };

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
    if (reply) {
      const body = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body ?? {});
      record.reply = reply.body;
      send(response, reply.status, body, reply.headers);
      return;
    }

    const url = new URL(request.url ?? "/", "http://sim");
    const key = request.headers["x-goog-api-key"] ?? url.searchParams.get("key") ?? "";
    if (key === "") {
      answer(
        exchange,
        403,
        googleError(
          403,
          "PERMISSION_DENIED",
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        ),
      );
      return;
    }
    if (key !== apiKey) {
      const message = "API key not valid. Please pass a valid API key.";
      answer(
        exchange,
        400,
        googleError(400, "INVALID_ARGUMENT", message, [
          {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            reason: "API_KEY_INVALID",
            domain: "googleapis.com",
            metadata: { service: "generativelanguage.googleapis.com" },
          },
          { "@type": "type.googleapis.com/google.rpc.LocalizedMessage", locale: "en-US", message },
        ]),
      );
      return;
    }

    if (request.method === "GET" && url.pathname === "/v1beta/models") {
      listModels(exchange, url.searchParams);
      return;
    }
    const route = /^\/v1beta\/models\/([^/:]+):(generateContent|predict)$/.exec(url.pathname);
    const model = route?.[1] ? decodeURIComponent(route[1]) : undefined;
    const method = route?.[2];
    const known =
      request.method === "POST" &&
      model !== undefined &&
      !sim.shutDown.has(model) &&
      (method === "generateContent" ? model in GEMINI_MODELS : model in IMAGEN_MODELS);
    if (!known) {
      const message = `models/${model ?? url.pathname} is not found for API version v1beta, or is not supported for ${method ?? "this method"}. Call ListModels to see the list of available models and their supported methods.`;
      answer(exchange, 404, googleError(404, "NOT_FOUND", message));
      return;
    }
    if (!isObject(record.body)) {
      answer(exchange, 400, invalidArgument("Invalid JSON payload received."));
      return;
    }
    if (method === "generateContent") await serveGemini(exchange, model, record.body);
    else await serveImagen(exchange, model, record.body);
  }

  function listModels(exchange: Exchange, query: URLSearchParams): void {
    if (sim.failModelList !== undefined) {
      const status = sim.failModelList;
      const [name, message] = GOOGLE_STATUS[status] ?? ["UNKNOWN", "An error occurred."];
      answer(exchange, status, googleError(status, name, message));
      return;
    }
    const asked = Number(query.get("pageSize") ?? DEFAULT_MODEL_LIST_PAGE_SIZE);
    if (!Number.isInteger(asked) || asked < 0) {
      answer(exchange, 400, invalidArgument(`Invalid page size: ${query.get("pageSize")}.`));
      return;
    }
    // As Google: 0 means the default, and more than the maximum is the maximum.
    const pageSize = Math.min(
      asked === 0 ? DEFAULT_MODEL_LIST_PAGE_SIZE : asked,
      MAX_MODEL_LIST_PAGE_SIZE,
      sim.modelListPageSize ?? MAX_MODEL_LIST_PAGE_SIZE,
    );
    const token = query.get("pageToken");
    const start = token ? offsetOfPageToken(token) : 0;
    const models = listedModels().filter((entry) => !sim.shutDown.has(entry.id));
    if (start === undefined || start > models.length) {
      answer(exchange, 400, invalidArgument("Invalid page token."));
      return;
    }
    const page = models.slice(start, start + pageSize);
    const end = start + page.length;
    answer(exchange, 200, {
      models: page.map(({ id, ...entry }) => ({ name: `models/${id}`, ...entry })),
      ...(end < models.length ? { nextPageToken: pageTokenOf(end) } : {}),
    });
  }

  async function serveGemini(
    exchange: Exchange,
    model: string,
    body: Record<string, unknown>,
  ): Promise<void> {
    const features: GeminiModel = GEMINI_MODELS[model] ?? {
      displayName: model,
      imageSizes: [],
      thoughtImages: false,
    };
    const contents = Array.isArray(body.contents) ? body.contents : [];
    const last: unknown = contents.at(-1);
    const parts: unknown[] = isObject(last) && Array.isArray(last.parts) ? last.parts : [];
    if (parts.length === 0) {
      answer(
        exchange,
        400,
        invalidArgument("* GenerateContentRequest.contents: contents is not specified"),
      );
      return;
    }
    let promptText = "";
    const inputs: Array<{ width: number; height: number }> = [];
    for (const part of parts) {
      if (!isObject(part)) continue;
      if (typeof part.text === "string") promptText += part.text;
      const blob = part.inlineData ?? part.inline_data;
      if (!isObject(blob)) continue;
      const mimeType = blob.mimeType ?? blob.mime_type;
      if (typeof mimeType !== "string" || !INPUT_MIME_TYPES.has(mimeType)) {
        answer(exchange, 400, invalidArgument(`Unsupported MIME type: ${String(mimeType)}`));
        return;
      }
      const dimensions = await dimensionsOf(typeof blob.data === "string" ? blob.data : "");
      if (!dimensions) {
        answer(exchange, 400, invalidArgument("Unable to process input image. Please retry."));
        return;
      }
      inputs.push(dimensions);
    }

    const generationConfig = isObject(body.generationConfig) ? body.generationConfig : {};
    const imageConfig = isObject(generationConfig.imageConfig) ? generationConfig.imageConfig : {};
    const aspectRatio = imageConfig.aspectRatio;
    if (
      aspectRatio !== undefined &&
      !(typeof aspectRatio === "string" && aspectRatio in GEMINI_SIZES)
    ) {
      answer(exchange, 400, invalidArgument(`Unsupported aspect ratio: ${String(aspectRatio)}.`));
      return;
    }
    const imageSize = imageConfig.imageSize;
    if (imageSize !== undefined && features.imageSizes.length === 0) {
      answer(exchange, 400, invalidArgument(`imageSize is not supported by models/${model}.`));
      return;
    }
    if (
      imageSize !== undefined &&
      !(typeof imageSize === "string" && features.imageSizes.includes(imageSize))
    ) {
      answer(exchange, 400, invalidArgument(`Unsupported image size: ${String(imageSize)}.`));
      return;
    }

    const inputImageTokens = inputs.length * (features.thoughtImages ? 560 : 258);
    const textTokens = Math.max(1, Math.ceil(promptText.length / 4));
    const promptUsage = {
      promptTokenCount: textTokens + inputImageTokens,
      promptTokensDetails: [
        { modality: "TEXT", tokenCount: textTokens },
        ...(inputs.length > 0 ? [{ modality: "IMAGE", tokenCount: inputImageTokens }] : []),
      ],
    };
    const block = blocks.shift();
    if (block === "prompt") {
      answer(exchange, 200, {
        promptFeedback: { blockReason: "SAFETY" },
        usageMetadata: { ...promptUsage, totalTokenCount: promptUsage.promptTokenCount },
        modelVersion: model,
      });
      return;
    }
    if (block === "image") {
      answer(exchange, 200, {
        candidates: [{ content: {}, finishReason: "IMAGE_SAFETY", index: 0 }],
        usageMetadata: { ...promptUsage, totalTokenCount: promptUsage.promptTokenCount },
        modelVersion: model,
      });
      return;
    }

    const modalities = generationConfig.responseModalities;
    const wantsImage = !Array.isArray(modalities) || modalities.includes("IMAGE");
    const ratio =
      typeof aspectRatio === "string" ? aspectRatio : inputs[0] ? nearestRatio(inputs[0]) : "1:1";
    const [baseWidth, baseHeight] = GEMINI_SIZES[ratio] ?? [1024, 1024];
    const factor = IMAGE_SIZE_FACTORS[typeof imageSize === "string" ? imageSize : "1K"] ?? 1;
    const outputParts: unknown[] = [{ text: "Here is the image you asked for." }];
    let imageTokens = 0;
    let thoughtsTokenCount = 0;
    if (wantsImage) {
      if (features.thoughtImages) {
        // Gemini 3 image models think in draft images, sent as parts marked `thought`.
        const draft = await drawImage(256, 256, `draft:${promptText}`, "png");
        outputParts.unshift({ inlineData: { mimeType: "image/png", data: draft }, thought: true });
        thoughtsTokenCount = 180;
      }
      const width = Math.round(baseWidth * factor);
      const height = Math.round(baseHeight * factor);
      const data = await drawImage(width, height, promptText, "png");
      outputParts.push({ inlineData: { mimeType: "image/png", data } });
      exchange.record.images.push(data);
      imageTokens = features.thoughtImages ? (factor === 4 ? 2000 : 1120) : 1290;
    }
    const candidatesTokenCount = imageTokens + 8;
    answer(exchange, 200, {
      candidates: [
        { content: { role: "model", parts: outputParts }, finishReason: "STOP", index: 0 },
      ],
      usageMetadata: {
        ...promptUsage,
        candidatesTokenCount,
        ...(thoughtsTokenCount > 0 ? { thoughtsTokenCount } : {}),
        totalTokenCount: promptUsage.promptTokenCount + candidatesTokenCount + thoughtsTokenCount,
        candidatesTokensDetails: [
          { modality: "TEXT", tokenCount: 8 },
          ...(imageTokens > 0 ? [{ modality: "IMAGE", tokenCount: imageTokens }] : []),
        ],
      },
      modelVersion: model,
      responseId: createHash("sha256")
        .update(`${Date.now()}${Math.random()}`)
        .digest("base64url")
        .slice(0, 22),
    });
  }

  async function serveImagen(
    exchange: Exchange,
    model: string,
    body: Record<string, unknown>,
  ): Promise<void> {
    const instance: unknown = Array.isArray(body.instances) ? body.instances[0] : undefined;
    const prompt = isObject(instance) ? instance.prompt : undefined;
    if (typeof prompt !== "string" || prompt.trim() === "") {
      answer(exchange, 400, invalidArgument("The prompt is required."));
      return;
    }
    const parameters = isObject(body.parameters) ? body.parameters : {};
    const maxSamples = IMAGEN_MODELS[model]?.maxSamples ?? 4;
    const sampleCount = parameters.sampleCount ?? maxSamples;
    if (
      !Number.isInteger(sampleCount) ||
      Number(sampleCount) < 1 ||
      Number(sampleCount) > maxSamples
    ) {
      answer(
        exchange,
        400,
        invalidArgument(
          `sampleCount must be between 1 and ${maxSamples}; got ${String(sampleCount)}.`,
        ),
      );
      return;
    }
    const aspectRatio = parameters.aspectRatio ?? "1:1";
    if (!(typeof aspectRatio === "string" && aspectRatio in IMAGEN_SIZES)) {
      answer(exchange, 400, invalidArgument(`Unsupported aspect ratio: ${String(aspectRatio)}.`));
      return;
    }
    const outputOptions = isObject(parameters.outputOptions) ? parameters.outputOptions : {};
    const mimeType = outputOptions.mimeType ?? "image/png";
    if (mimeType !== "image/png" && mimeType !== "image/jpeg") {
      answer(exchange, 400, invalidArgument(`Unsupported output MIME type: ${String(mimeType)}.`));
      return;
    }
    const personGeneration = parameters.personGeneration;
    if (
      personGeneration !== undefined &&
      !["dont_allow", "allow_adult", "allow_all"].includes(String(personGeneration))
    ) {
      answer(
        exchange,
        400,
        invalidArgument(`Invalid personGeneration: ${String(personGeneration)}.`),
      );
      return;
    }

    if (blocks.shift()) {
      // Imagen's safety filter drops the images and says nothing.
      answer(exchange, 200, {});
      return;
    }
    const count = Number(sampleCount);
    const filtered = Math.min(filters.shift() ?? 0, count);
    const [width, height] = IMAGEN_SIZES[aspectRatio] ?? [1024, 1024];
    const predictions: unknown[] = [];
    for (let index = 0; index < count - filtered; index++) {
      const format = mimeType === "image/jpeg" ? "jpeg" : "png";
      const data = await drawImage(width, height, `${prompt}#${index}`, format);
      predictions.push({ mimeType, bytesBase64Encoded: data });
      exchange.record.images.push(data);
    }
    if (parameters.includeRaiReason === true) {
      for (let index = 0; index < filtered; index++) {
        predictions.push({ raiFilteredReason: RAI_FILTERED_REASON });
      }
    }
    answer(exchange, 200, predictions.length > 0 ? { predictions } : {});
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as AddressInfo;
  sim.baseURL = `http://127.0.0.1:${address.port}`;
  return sim;
}

/** A model list entry, before its `name` is made of its id. */
interface ListedModel {
  id: string;
  version: string;
  displayName: string;
  description: string;
  inputTokenLimit: number;
  outputTokenLimit: number;
  supportedGenerationMethods: readonly string[];
}

/** Every model the simulator knows, in the order Google lists them: Gemini, then Imagen. */
function listedModels(): ListedModel[] {
  const entry = (
    id: string,
    displayName: string,
    methods: readonly string[],
    limits: [number, number],
  ): ListedModel => ({
    id,
    version: id.endsWith("-001") || id.endsWith("-002") ? id.slice(-3) : "001",
    displayName,
    description: displayName,
    inputTokenLimit: limits[0],
    outputTokenLimit: limits[1],
    supportedGenerationMethods: methods,
  });
  const gemini = ["generateContent", "countTokens", "batchGenerateContent"];
  return [
    ...Object.entries(OTHER_MODELS).map(([id, model]) =>
      entry(id, model.displayName, model.methods, [1_048_576, 65_536]),
    ),
    ...Object.entries(GEMINI_MODELS).map(([id, model]) =>
      entry(id, model.displayName, gemini, [65_536, 32_768]),
    ),
    ...Object.entries(IMAGEN_MODELS).map(([id, model]) =>
      entry(id, model.displayName, ["predict"], [480, 8_192]),
    ),
  ];
}

/** Page tokens are opaque to clients; this one holds the offset of the next page. */
function pageTokenOf(offset: number): string {
  return Buffer.from(`offset:${offset}`).toString("base64url");
}

function offsetOfPageToken(token: string): number | undefined {
  const match = /^offset:(\d+)$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  return match ? Number(match[1]) : undefined;
}

/** Google's status names and messages for the failures `failModelList` can ask for. */
const GOOGLE_STATUS: Record<number, [string, string]> = {
  400: ["INVALID_ARGUMENT", "Request contains an invalid argument."],
  403: ["PERMISSION_DENIED", "The caller does not have permission."],
  429: ["RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."],
  500: [
    "INTERNAL",
    "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
  ],
  503: ["UNAVAILABLE", "The model is overloaded. Please try again later."],
  504: ["DEADLINE_EXCEEDED", "The request timed out. Please try again."],
};

function answer(exchange: Exchange, status: number, body: unknown): void {
  exchange.record.reply = body;
  send(exchange.response, status, JSON.stringify(body));
}

function send(
  response: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  if (response.destroyed || response.headersSent) return;
  response.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers });
  response.end(text);
}

function googleError(code: number, status: string, message: string, details?: unknown[]) {
  return { error: { code, message, status, ...(details ? { details } : {}) } };
}

function invalidArgument(message: string) {
  return googleError(400, "INVALID_ARGUMENT", message);
}

async function readText(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function dimensionsOf(
  base64: string,
): Promise<{ width: number; height: number } | undefined> {
  if (base64 === "") return undefined;
  try {
    const metadata = await sharp(Buffer.from(base64, "base64")).metadata();
    return metadata.width && metadata.height
      ? { width: metadata.width, height: metadata.height }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Without an aspect ratio, Gemini follows the input image's shape. */
function nearestRatio(size: { width: number; height: number }): string {
  const wanted = Math.log(size.width / size.height);
  let best = "1:1";
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const ratio of Object.keys(GEMINI_SIZES)) {
    const [width = 1, height = 1] = ratio.split(":").map(Number);
    const distance = Math.abs(wanted - Math.log(width / height));
    if (distance < bestDistance) {
      best = ratio;
      bestDistance = distance;
    }
  }
  return best;
}

/** A flat image whose colour follows the seed, so different prompts give different bytes. */
async function drawImage(
  width: number,
  height: number,
  seed: string,
  format: "png" | "jpeg",
): Promise<string> {
  const hash = createHash("sha256").update(seed).digest();
  const image = sharp({
    create: {
      width,
      height,
      channels: 3,
      background: { r: hash[0] ?? 0, g: hash[1] ?? 0, b: hash[2] ?? 0 },
    },
  });
  const bytes = await (format === "jpeg" ? image.jpeg() : image.png()).toBuffer();
  return bytes.toString("base64");
}
