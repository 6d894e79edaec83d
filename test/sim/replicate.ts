/**
 * A loopback simulator of Replicate's predictions API on real `node:http` servers at 127.0.0.1:
 * the API (`POST /v1/models/{owner}/{name}/predictions`, `POST /v1/predictions` with `version`,
 * `GET /v1/predictions/{id}`, `POST /v1/predictions/{id}/cancel`) and, on a second origin as
 * replicate.delivery is, the result files.
 *
 * Each prediction runs its own state machine: `script` (read when it is created) lists the
 * states it shows, one more per poll, the last one staying: `starting`, `processing`, then
 * `succeeded`, `failed`, `nsfw` (failed with Replicate's E005 message), `partial` (succeeded with
 * one image fewer, as FLUX drops an image its safety checker flags), `expired` (succeeded, output
 * removed) or `canceled`. With `finishOnWait`, a create that asks `Prefer: wait` answers in the
 * last state at once (sync mode).
 *
 * Strict where tests depend on it: `Authorization: Bearer <key>` (401), `Prefer: wait[=1..60]`,
 * `Cancel-After` (a duration of at least 5 s), the input of the three built-in models (their
 * fields, enums and ranges, 422 in Replicate's problem+json shape; a field a model does not
 * declare is refused too, stricter than Replicate, to catch a misspelt one). Result images are
 * real, made with sharp at the size the input asks; `filesExpired` makes them answer 404.
 * Every request is recorded; `polls` and `cancels` count; `delayMs` holds API requests (a client
 * that hangs up is counted in `hangUps`); `failNext` scripts the next API replies.
 */
import { randomBytes } from "node:crypto";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { FLUX_ASPECT_SIZES, IDEOGRAM_V3_RESOLUTIONS } from "../../src/providers/replicate.ts";

export const DEFAULT_REPLICATE_SIMULATOR_KEY = "r8_sim0123456789abcdefghijklmnopqrstuv";

export type SimState =
  | "starting"
  | "processing"
  | "succeeded"
  | "failed"
  | "nsfw"
  | "partial"
  | "expired"
  | "canceled";
const TERMINAL: ReadonlySet<SimState> = new Set([
  "succeeded",
  "failed",
  "nsfw",
  "partial",
  "expired",
  "canceled",
]);

export const E005 =
  "The input or output was flagged as sensitive. Please try again with different inputs. (E005) (sIm0k3y9Zq)";
export const E1001 = "CUDA out of memory: the model ran out of memory and was terminated (E1001)";

export interface ReplicateRecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown> | undefined;
  reply: { status: number; body: unknown } | undefined;
}

interface SimPrediction {
  id: string;
  model: string;
  version: string;
  input: Record<string, unknown>;
  script: SimState[];
  at: number;
  canceled: boolean;
  image: {
    width: number;
    height: number;
    format: "png" | "jpeg" | "webp";
    count: number;
    list: boolean;
  };
}

export interface ReplicateSimulator {
  readonly baseURL: string;
  /** The origin result files are served from (replicate.delivery's stand-in). */
  readonly deliveryURL: string;
  readonly apiKey: string;
  readonly requests: ReplicateRecordedRequest[];
  /** Requests the delivery origin received: files, and anything else sent there. */
  readonly deliveryRequests: { method: string; path: string; headers: IncomingHttpHeaders }[];
  script: SimState[];
  finishOnWait: boolean;
  /** Where `urls.get`/`urls.cancel` point instead of the API (a reply that tries to steer). */
  urlsOrigin: string | undefined;
  filesExpired: boolean;
  delayMs: number;
  readonly polls: number;
  readonly cancels: string[];
  readonly hangUps: number;
  failNext(reply: { status: number; body?: unknown; headers?: Record<string, string> }): void;
  reset(): void;
  close(): Promise<void>;
}

class Problem extends Error {
  readonly status: number;
  readonly body: Record<string, unknown>;
  constructor(status: number, title: string, detail: string, extra: Record<string, unknown> = {}) {
    super(detail);
    this.status = status;
    this.body = { title, detail, status, ...extra };
  }
}

const invalid = (field: string, description: string) =>
  new Problem(422, "Input validation failed", `- ${field}: ${description}\n`, {
    invalid_fields: [{ type: "invalid", field, description }],
  });

type Field = { enum: readonly string[] } | { min?: number; max?: number } | "string" | "boolean";
const FORMATS = { enum: ["webp", "jpg", "png"] } as const;
const FLUX_RATIOS = Object.keys(FLUX_ASPECT_SIZES);
const SCHEMAS: Record<string, Record<string, Field>> = {
  "black-forest-labs/flux-schnell": {
    prompt: "string",
    aspect_ratio: { enum: FLUX_RATIOS },
    num_outputs: { min: 1, max: 4 },
    num_inference_steps: { min: 1, max: 4 },
    seed: {},
    output_format: FORMATS,
    output_quality: { min: 0, max: 100 },
    disable_safety_checker: "boolean",
    go_fast: "boolean",
    megapixels: { enum: ["1", "0.25"] },
  },
  "black-forest-labs/flux-1.1-pro": {
    prompt: "string",
    image_prompt: "string",
    seed: {},
    prompt_upsampling: "boolean",
    aspect_ratio: {
      enum: ["custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3"],
    },
    width: { min: 256, max: 1440 },
    height: { min: 256, max: 1440 },
    safety_tolerance: { min: 1, max: 5 },
    output_format: FORMATS,
    output_quality: { min: 0, max: 100 },
  },
  "ideogram-ai/ideogram-v3-turbo": {
    prompt: "string",
    seed: { min: 0, max: 2147483647 },
    image: "string",
    mask: "string",
    aspect_ratio: {
      enum: [
        "1:3",
        "3:1",
        "1:2",
        "2:1",
        "9:16",
        "16:9",
        "10:16",
        "16:10",
        "2:3",
        "3:2",
        "3:4",
        "4:3",
        "4:5",
        "5:4",
        "1:1",
      ],
    },
    resolution: { enum: ["None", ...IDEOGRAM_V3_RESOLUTIONS] },
    magic_prompt_option: { enum: ["Auto", "On", "Off"] },
    style_type: { enum: ["None", "Auto", "General", "Realistic", "Design"] },
  },
};

export async function startReplicateSimulator(
  options: { apiKey?: string } = {},
): Promise<ReplicateSimulator> {
  const apiKey = options.apiKey ?? DEFAULT_REPLICATE_SIMULATOR_KEY;
  const predictions = new Map<string, SimPrediction>();
  const scripted: { status: number; body?: unknown; headers?: Record<string, string> }[] = [];
  let polls = 0;
  let hangUps = 0;
  const sim = {
    baseURL: "",
    deliveryURL: "",
    apiKey,
    requests: [] as ReplicateRecordedRequest[],
    deliveryRequests: [] as ReplicateSimulator["deliveryRequests"],
    script: ["starting", "processing", "succeeded"] as SimState[],
    finishOnWait: false,
    urlsOrigin: undefined as string | undefined,
    filesExpired: false,
    delayMs: 0,
    get polls() {
      return polls;
    },
    cancels: [] as string[],
    get hangUps() {
      return hangUps;
    },
    failNext(reply: { status: number; body?: unknown; headers?: Record<string, string> }) {
      scripted.push(reply);
    },
    reset() {
      Object.assign(sim, {
        script: ["starting", "processing", "succeeded"],
        finishOnWait: false,
        urlsOrigin: undefined,
        filesExpired: false,
        delayMs: 0,
      });
      sim.requests.length = 0;
      sim.deliveryRequests.length = 0;
      sim.cancels.length = 0;
      scripted.length = 0;
      polls = 0;
    },
    close: async () => {},
  };

  const state = (prediction: SimPrediction): SimState =>
    prediction.canceled
      ? "canceled"
      : (prediction.script[Math.min(prediction.at, prediction.script.length - 1)] ?? "starting");

  function view(prediction: SimPrediction) {
    const status = state(prediction);
    const urlsBase = sim.urlsOrigin ?? sim.baseURL;
    const files = (count: number) =>
      Array.from(
        { length: count },
        (_, n) =>
          `${sim.deliveryURL}/xezq/${prediction.id}/out-${n}.${prediction.image.format === "jpeg" ? "jpg" : prediction.image.format}`,
      );
    let output: unknown = null;
    if (status === "succeeded" || status === "partial") {
      const list = files(prediction.image.count - (status === "partial" ? 1 : 0));
      output = prediction.image.list ? list : list[0];
    }
    const failed = status === "failed" || status === "nsfw";
    return {
      id: prediction.id,
      model: prediction.model,
      version: prediction.version,
      input: prediction.input,
      logs: "",
      output,
      data_removed: status === "expired",
      error: status === "nsfw" ? E005 : status === "failed" ? E1001 : null,
      status: failed
        ? "failed"
        : status === "partial" || status === "expired"
          ? "succeeded"
          : status,
      created_at: new Date().toISOString(),
      urls: {
        web: `https://replicate.com/p/${prediction.id}`,
        get: `${urlsBase}/v1/predictions/${prediction.id}`,
        cancel: `${urlsBase}/v1/predictions/${prediction.id}/cancel`,
        stream: `https://stream.replicate.com/v1/files/${prediction.id}`,
      },
    };
  }

  function create(
    model: string,
    version: string,
    body: Record<string, unknown>,
    prefer: string | undefined,
  ) {
    const input = body.input;
    if (!input || typeof input !== "object" || Array.isArray(input))
      throw invalid("input", "input is required");
    const checked = validate(model, input as Record<string, unknown>);
    const id = randomBytes(13).toString("hex").slice(0, 26);
    const prediction: SimPrediction = {
      id,
      model,
      version,
      input: checked,
      script: [...sim.script],
      at: 0,
      canceled: false,
      image: imageOf(model, checked),
    };
    if (prefer !== undefined && sim.finishOnWait) prediction.at = prediction.script.length - 1;
    predictions.set(id, prediction);
    return view(prediction);
  }

  async function route(request: IncomingMessage, record: ReplicateRecordedRequest) {
    const given = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
    if (given !== apiKey)
      throw new Problem(401, "Unauthenticated", "You did not pass a valid authentication token");
    const { method, path } = record;
    const official = /^\/v1\/models\/([\w.-]+)\/([\w.-]+)\/predictions$/.exec(path);
    const byId = /^\/v1\/predictions\/([\w-]+)(\/cancel)?$/.exec(path);
    if (method === "POST" && (official || path === "/v1/predictions")) {
      const prefer = headerOf(request, "prefer");
      const wait = prefer === undefined ? undefined : /^wait(?:=(\d+))?$/.exec(prefer);
      if (
        prefer !== undefined &&
        (!wait || Number(wait[1] ?? 60) < 1 || Number(wait[1] ?? 60) > 60)
      ) {
        throw new Problem(
          400,
          "Invalid Prefer header",
          "Prefer must be wait or wait=n, n from 1 to 60",
        );
      }
      checkCancelAfter(headerOf(request, "cancel-after"));
      if (!String(request.headers["content-type"]).startsWith("application/json") || !record.body) {
        throw new Problem(400, "Bad request", "The body must be a JSON object");
      }
      if (official) {
        const model = `${official[1]}/${official[2]}`;
        if (!(model in SCHEMAS))
          throw new Problem(404, "Not found", "The requested resource could not be found.");
        return [201, create(model, "hidden", record.body, prefer)] as const;
      }
      const version = /^(?:([\w.-]+\/[\w.-]+):)?([0-9a-f]{64})$/.exec(
        String(record.body.version ?? ""),
      );
      if (!version) throw invalid("version", "version is required");
      return [
        201,
        create(version[1] ?? "unknown/model", version[2] as string, record.body, prefer),
      ] as const;
    }
    const prediction = byId ? predictions.get(byId[1] as string) : undefined;
    if (!prediction)
      throw new Problem(404, "Not found", "The requested resource could not be found.");
    if (method === "GET" && !byId?.[2]) {
      polls += 1;
      const reply = view(prediction);
      if (!TERMINAL.has(state(prediction))) prediction.at += 1;
      return [200, reply] as const;
    }
    if (method === "POST" && byId?.[2]) {
      sim.cancels.push(prediction.id);
      if (!TERMINAL.has(state(prediction))) prediction.canceled = true;
      return [200, view(prediction)] as const;
    }
    throw new Problem(405, "Method not allowed", `${method} ${path}`);
  }

  const api = createServer(async (request, response) => {
    const gone = abortOnHangUp(response);
    const record: ReplicateRecordedRequest = {
      method: request.method ?? "GET",
      path: request.url ?? "/",
      headers: request.headers,
      body: undefined,
      reply: undefined,
    };
    sim.requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.reply = { status, body };
      if (response.destroyed) return;
      const type = status >= 400 ? "application/problem+json" : "application/json";
      response.writeHead(status, { "content-type": type, ...headers });
      response.end(typeof body === "string" ? body : JSON.stringify(body));
    };
    try {
      const raw = await readBody(request);
      if (raw.length > 0) record.body = JSON.parse(raw.toString("utf8"));
      if (sim.delayMs > 0) {
        await sleep(sim.delayMs, undefined, { signal: gone }).catch(() => {});
        if (gone.aborted) {
          hangUps += 1;
          return;
        }
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);
      const [status, body] = await route(request, record);
      send(status, body);
    } catch (error) {
      if (error instanceof Problem) send(error.status, error.body);
      else send(500, { title: "Internal server error", detail: String(error), status: 500 });
    }
  });

  const delivery = createServer(async (request, response) => {
    sim.deliveryRequests.push({
      method: request.method ?? "GET",
      path: request.url ?? "/",
      headers: request.headers,
    });
    const file = /^\/xezq\/([\w-]+)\/out-(\d+)\.(png|jpg|webp)$/.exec(request.url ?? "");
    const prediction = file ? predictions.get(file[1] as string) : undefined;
    if (!prediction || sim.filesExpired) {
      response.writeHead(404, { "content-type": "text/plain" });
      return response.end("Not Found");
    }
    const { width, height, format } = prediction.image;
    const bytes = await draw(width, height, format, `${prediction.id}-${file?.[2]}`);
    response.writeHead(200, {
      "content-type": `image/${format}`,
      "content-length": String(bytes.length),
    });
    response.end(bytes);
  });

  sim.baseURL = await listen(api);
  sim.deliveryURL = await listen(delivery);
  sim.close = async () => {
    await Promise.all(
      [api, delivery].map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
  };
  return sim;
}

function validate(model: string, input: Record<string, unknown>): Record<string, unknown> {
  const schema = SCHEMAS[model];
  if (typeof input.prompt !== "string" || input.prompt.length === 0)
    throw invalid("input", "prompt is required");
  if (!schema) return input;
  for (const [name, value] of Object.entries(input)) {
    const field = schema[name];
    if (!field) throw invalid(`input.${name}`, `Additional property ${name} is not allowed`);
    if (field === "string" && typeof value !== "string")
      throw invalid(`input.${name}`, "Invalid type. Expected: string");
    if (field === "boolean" && typeof value !== "boolean")
      throw invalid(`input.${name}`, "Invalid type. Expected: boolean");
    if (typeof field === "object" && "enum" in field && !field.enum.includes(String(value))) {
      throw invalid(
        `input.${name}`,
        `${name} must be one of the following: ${field.enum.map((item) => `"${item}"`).join(", ")}`,
      );
    }
    if (typeof field === "object" && !("enum" in field)) {
      if (!Number.isInteger(value))
        throw invalid(`input.${name}`, "Invalid type. Expected: integer");
      if (field.min !== undefined && (value as number) < field.min)
        throw invalid(`input.${name}`, `Must be greater than or equal to ${field.min}`);
      if (field.max !== undefined && (value as number) > field.max)
        throw invalid(`input.${name}`, `Must be less than or equal to ${field.max}`);
    }
  }
  return input;
}

/** What the model makes of the input: size (as its own table says), format, how many. */
function imageOf(model: string, input: Record<string, unknown>): SimPrediction["image"] {
  const named = { jpg: "jpeg", png: "png", webp: "webp" } as const;
  const ratio = String(input.aspect_ratio ?? "1:1");
  let size: string = FLUX_ASPECT_SIZES[ratio as keyof typeof FLUX_ASPECT_SIZES] ?? "1024x1024";
  if (ratio === "custom") size = `${round32(input.width)}x${round32(input.height)}`;
  if (input.resolution !== undefined && input.resolution !== "None")
    size = String(input.resolution);
  let [width, height] = size.split("x").map(Number) as [number, number];
  if (input.megapixels === "0.25")
    [width, height] = [Math.floor(width / 2), Math.floor(height / 2)];
  const ideogram = model.startsWith("ideogram-ai/");
  const format = ideogram
    ? "png"
    : named[String(input.output_format ?? "webp") as keyof typeof named];
  const list = model === "black-forest-labs/flux-schnell" || !(model in SCHEMAS);
  return { width, height, format, count: Number(input.num_outputs ?? 1), list };
}

function round32(value: unknown): number {
  return Math.round(Number(value ?? 1024) / 32) * 32;
}

function checkCancelAfter(value: string | undefined) {
  if (value === undefined) return;
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(value);
  const seconds = match
    ? Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0)
    : 0;
  if (seconds < 5)
    throw new Problem(
      400,
      "Invalid Cancel-After header",
      "The minimum allowed duration is 5 seconds",
    );
}

function headerOf(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function abortOnHangUp(response: ServerResponse): AbortSignal {
  const gone = new AbortController();
  response.on("close", () => {
    if (!response.writableFinished) gone.abort();
  });
  return gone.signal;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function draw(
  width: number,
  height: number,
  format: "png" | "jpeg" | "webp",
  seed: string,
): Promise<Buffer> {
  let hash = 0;
  for (const character of seed) hash = (hash * 31 + (character.codePointAt(0) ?? 0)) >>> 0;
  const background = { r: hash & 0xff, g: (hash >>> 8) & 0xff, b: (hash >>> 16) & 0xff };
  return sharp({ create: { width, height, channels: 3, background } })
    .toFormat(format)
    .toBuffer();
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
