/**
 * A loopback simulator of xAI's image API on a real `node:http` server at 127.0.0.1:
 * `POST /v1/images/generations`, `POST /v1/images/edits` (JSON, input images as data URLs),
 * `GET /v1/image-generation-models` and `GET /v1/api-key`.
 *
 * It answers as xAI does where tests depend on it, including where xAI departs from OpenAI:
 *
 * - a wrong or missing key → 400 with xAI's flat body
 *   `{"code":"Client specified an invalid argument","error":"Incorrect API key provided: …"}`;
 * - an argument xAI does not take (`size`, `style`, `quality` before Grok Imagine 2, anything
 *   unknown) → 400 `Argument not supported: <name>`, in the same flat shape;
 * - an unknown model → 404 in that shape;
 * - a prompt containing `forbidden-content` → 200 with every image `respect_moderation: false`
 *   and no image, as xAI's moderation answers;
 * - `b64_json` answered as a `data:image/jpeg;base64,…` URL; `url` (the default, or with
 *   `replyWithUrl`) pointing at an image this server serves itself, until `close`;
 * - real JPEGs made with sharp at xAI's 1k size for the aspect ratio (`auto` makes 1:1; a
 *   single-image edit keeps the input's ratio).
 *
 * Every request is recorded, with its JSON body and, once sent, the reply. `delayMs` holds image
 * requests (and stops waiting when the client hangs up: `hangUps` counts those); `failNext`
 * answers the next request with any status, body and headers (429 with Retry-After, 5xx, …).
 *
 * @example
 * const sim = await startXaiSimulator();
 * const xai = createXaiProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
 * sim.failNext({ status: 429, headers: { "retry-after": "3" }, body: { code: "…", error: "…" } });
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { nearestRatio, XAI_1K_SIZES } from "../../src/providers/xai.ts";

export const DEFAULT_XAI_SIMULATOR_KEY = "xai-sim-0123456789abcdef";

export interface XaiScriptedReply {
  status: number;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface XaiRecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  json: Record<string, unknown> | undefined;
  reply: { status: number; body: unknown } | undefined;
}

export interface XaiSimulator {
  readonly baseURL: string;
  readonly apiKey: string;
  readonly requests: XaiRecordedRequest[];
  /** Holds each image request this long (the model list and key info answer at once). */
  delayMs: number;
  /** Answer with `url` whatever `response_format` asked. */
  replyWithUrl: boolean;
  /** Image requests whose client hung up while the simulator was still working on them. */
  readonly hangUps: number;
  failNext(reply: XaiScriptedReply): void;
  close(): Promise<void>;
}

const MODELS: Record<string, { quality: boolean; aliases: string[]; created: number }> = {
  "grok-imagine-image": { quality: false, aliases: [], created: 1769472000 },
  "grok-imagine-image-quality": { quality: false, aliases: [], created: 1776556800 },
  "grok-imagine-image-2.0": {
    quality: true,
    aliases: [],
    created: 1786579200,
  },
};
const MODEL_OF_ALIAS = new Map<string, string>(
  Object.entries(MODELS).flatMap(([id, model]) => [
    [id, id] as const,
    ...model.aliases.map((alias) => [alias, id] as const),
  ]),
);
const RATIOS = [...Object.keys(XAI_1K_SIZES), "21:9", "5:2", "auto"];
const COMMON_FIELDS = [
  "model",
  "prompt",
  "n",
  "response_format",
  "aspect_ratio",
  "resolution",
  "user",
];
const INVALID_ARGUMENT = "Client specified an invalid argument";

class XaiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const refuse = (message: string) => new XaiError(400, INVALID_ARGUMENT, message);

export async function startXaiSimulator(options: { apiKey?: string } = {}): Promise<XaiSimulator> {
  const apiKey = options.apiKey ?? DEFAULT_XAI_SIMULATOR_KEY;
  const requests: XaiRecordedRequest[] = [];
  const scripted: XaiScriptedReply[] = [];
  const served = new Map<string, Buffer>();
  let origin = "";
  let hangUps = 0;

  const simulator = {
    baseURL: "",
    apiKey,
    requests,
    delayMs: 0,
    replyWithUrl: false,
    get hangUps() {
      return hangUps;
    },
    failNext(reply: XaiScriptedReply) {
      scripted.push(reply);
    },
    close: async () => {},
  };

  const server = createServer(async (request, response) => {
    const gone = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) gone.abort();
    });
    const path = request.url ?? "/";
    const record: XaiRecordedRequest = {
      method: request.method ?? "GET",
      path,
      headers: request.headers,
      json: undefined,
      reply: undefined,
    };
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.reply = { status, body };
      if (response.destroyed || response.writableEnded) return;
      const isBytes = Buffer.isBuffer(body);
      const type = isBytes ? "image/jpeg" : "application/json";
      response.writeHead(status, { "content-type": type, ...headers });
      response.end(isBytes || typeof body === "string" ? body : JSON.stringify(body));
    };
    try {
      const raw = await readBody(request);
      if (path.startsWith("/sim-images/")) {
        const image = served.get(path.slice("/sim-images/".length));
        send(image ? 200 : 404, image ?? { code: "Not found", error: "No such image." });
        return;
      }
      requests.push(record);
      if (raw.length > 0) {
        try {
          record.json = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
        } catch {
          throw refuse("Failed to deserialize the JSON body into the target type.");
        }
      }
      if (path.startsWith("/v1/images") && simulator.delayMs > 0) {
        await sleep(simulator.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) {
          hangUps += 1;
          return;
        }
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);

      checkKey(request.headers.authorization, apiKey);
      const endpoint = `${request.method} ${path.split("?")[0]}`;
      if (endpoint === "GET /v1/api-key") return send(200, keyInfo());
      if (endpoint === "GET /v1/image-generation-models") return send(200, modelList());
      if (endpoint !== "POST /v1/images/generations" && endpoint !== "POST /v1/images/edits") {
        throw new XaiError(404, "Some requested entity was not found", `No route ${endpoint}.`);
      }
      if (!request.headers["content-type"]?.startsWith("application/json") || !record.json) {
        throw new XaiError(415, INVALID_ARGUMENT, "Expected a JSON body (application/json).");
      }
      const edit = endpoint.endsWith("edits");
      send(
        200,
        await serve(record.json, edit, simulator.replyWithUrl, (bytes) => {
          const id = `${served.size + 1}-${Date.now()}.jpeg`;
          served.set(id, bytes);
          return `${origin}/sim-images/${id}`;
        }),
      );
    } catch (error) {
      if (error instanceof XaiError) send(error.status, { code: error.code, error: error.message });
      else send(500, { code: "Internal error", error: String(error) });
    }
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  simulator.baseURL = `${origin}/v1`;
  simulator.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  return simulator;
}

function checkKey(header: string | undefined, apiKey: string) {
  const given = /^Bearer (.+)$/.exec(header ?? "")?.[1];
  if (given === apiKey) return;
  const masked = given ? `${given.slice(0, 2)}***${given.slice(-2)}` : "";
  throw refuse(
    `Incorrect API key provided: ${masked}. You can obtain an API key from https://console.x.ai.`,
  );
}

async function serve(
  body: Record<string, unknown>,
  edit: boolean,
  replyWithUrl: boolean,
  host: (bytes: Buffer) => string,
): Promise<unknown> {
  const model = MODEL_OF_ALIAS.get(String(body.model ?? "grok-imagine-image"));
  if (!model) {
    throw new XaiError(
      404,
      "Some requested entity was not found",
      `The model ${String(body.model)} does not exist or your team does not have access to it.`,
    );
  }
  const accepted = [...COMMON_FIELDS, ...(edit ? ["image", "images"] : [])];
  if (MODELS[model]?.quality) accepted.push("quality");
  for (const name of Object.keys(body)) {
    if (!accepted.includes(name)) throw refuse(`Argument not supported: ${name}`);
  }
  if (typeof body.prompt !== "string" || body.prompt === "") throw refuse("prompt is required.");
  const n = body.n ?? 1;
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 10) {
    throw refuse("n must be between 1 and 10.");
  }
  const format = body.response_format ?? "url";
  if (format !== "url" && format !== "b64_json") throw refuse(`Invalid response_format: ${format}`);
  if (body.resolution !== undefined && !["1k", "2k"].includes(String(body.resolution))) {
    throw refuse(`Invalid resolution: ${String(body.resolution)}`);
  }
  if (body.quality !== undefined && !["low", "medium", "high"].includes(String(body.quality))) {
    throw refuse(`Invalid quality: ${String(body.quality)}`);
  }
  let ratio = String(body.aspect_ratio ?? "auto");
  if (!RATIOS.includes(ratio)) throw refuse(`Invalid aspect_ratio: ${ratio}`);
  if (edit) ratio = await editRatio(body, ratio);
  const size = XAI_1K_SIZES[ratio as keyof typeof XAI_1K_SIZES] ?? XAI_1K_SIZES["1:1"];
  const [width, height] = size.split("x").map(Number) as [number, number];
  const scale = body.resolution === "2k" ? 2 : 1;

  const moderated = body.prompt.includes("forbidden-content");
  const data = [];
  for (let index = 0; index < (n as number); index++) {
    if (moderated) {
      data.push({ url: "", mime_type: "image/jpeg", respect_moderation: false });
      continue;
    }
    const jpeg = await drawJpeg(width * scale, height * scale, index);
    data.push(
      format === "b64_json" && !replyWithUrl
        ? { b64_json: `data:image/jpeg;base64,${jpeg.toString("base64")}`, mime_type: "image/jpeg" }
        : { url: host(jpeg), mime_type: "image/jpeg" },
    );
  }
  // xAI bills per image made: 0.02 USD is 200,000,000 ticks.
  return { data, usage: { cost_in_usd_ticks: 200_000_000 * (moderated ? 0 : (n as number)) } };
}

/** Checks an edit's input images; a single image sets the ratio, several take `aspect_ratio`. */
async function editRatio(body: Record<string, unknown>, asked: string): Promise<string> {
  if ((body.image === undefined) === (body.images === undefined)) {
    throw refuse("Exactly one of image or images must be set.");
  }
  const inputs = body.image === undefined ? body.images : [body.image];
  if (!Array.isArray(inputs) || inputs.length < 1 || inputs.length > 3) {
    throw refuse("images must hold 1 to 3 images.");
  }
  const sizes = [];
  for (const input of inputs) sizes.push(await decodeDataUrl(input));
  if (body.image !== undefined) {
    if (body.aspect_ratio !== undefined) throw refuse("Argument not supported: aspect_ratio");
    const first = sizes[0] as { width: number; height: number };
    return nearestRatio(first.width, first.height);
  }
  return asked;
}

async function decodeDataUrl(input: unknown): Promise<{ width: number; height: number }> {
  const url = typeof input === "object" && input !== null ? (input as { url?: unknown }).url : "";
  const match = /^data:(image\/(?:png|jpeg|webp));base64,(.+)$/.exec(String(url));
  if (!match)
    throw refuse("Image url must be a public URL or a base64 data URL of PNG, JPEG or WebP.");
  const metadata = await sharp(Buffer.from(match[2] as string, "base64"))
    .metadata()
    .catch(() => undefined);
  if (!metadata?.width || !metadata.height || `image/${metadata.format}` !== match[1]) {
    throw refuse("Could not decode the input image.");
  }
  return { width: metadata.width, height: metadata.height };
}

function drawJpeg(width: number, height: number, index: number): Promise<Buffer> {
  const shade = (40 * index) % 256;
  return sharp({ create: { width, height, channels: 3, background: { r: shade, g: 90, b: 160 } } })
    .jpeg()
    .toBuffer();
}

function modelList() {
  return {
    models: Object.entries(MODELS).map(([id, model]) => ({
      id,
      fingerprint: "fp_sim",
      max_prompt_length: 1024,
      created: model.created,
      object: "model",
      owned_by: "xai",
      version: "1.0.0",
      input_modalities: ["text", "image"],
      output_modalities: ["image"],
      image_price: 2,
      aliases: model.aliases,
    })),
  };
}

function keyInfo() {
  return {
    redacted_api_key: "xai-...cdef",
    name: "simulator",
    api_key_blocked: false,
    api_key_disabled: false,
    team_blocked: false,
  };
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
