/**
 * A loopback simulator of Stability AI's Stable Image generate API on a real `node:http` server
 * at 127.0.0.1: `POST /v2beta/stable-image/generate/{ultra,core,sd3}`.
 *
 * It is as strict as Stability where tests depend on it:
 *
 * - the body must be multipart/form-data (a JSON body is refused 400, as Stability does), and each
 *   service takes only its own fields, with Stability's enums and ranges;
 * - `Authorization: Bearer <key>` (401 otherwise); `Accept: image/*` (the default) answers the raw
 *   image with `finish-reason` and `seed` headers, `application/json` answers
 *   `{image, finish_reason, seed}` with `Content-Type: application/json; type=image/png`;
 * - an image-to-image call (Ultra with `image`, sd3 with `mode=image-to-image`) needs `strength`
 *   and takes its shape from the input, decoded and checked (sd3 refuses `aspect_ratio` then);
 * - a prompt with `forbidden-content` is refused 403 `{"name":"content_moderation"}`; one with
 *   `blurred-content` is answered 200 with `finish_reason: CONTENT_FILTERED`;
 * - errors in Stability's shape `{id, name, errors: [...]}`.
 *
 * Images are real, made with sharp at the size of the ratio (`STABILITY_SIZES`). Every request is
 * recorded with its form and, once sent, the reply. `delayMs` holds requests (and stops waiting
 * when the client hangs up: `hangUps` counts those); `failNext` scripts the next reply (402, 429
 * with Retry-After, 5xx, …).
 *
 * @example
 * const sim = await startStabilitySimulator();
 * const stability = createStabilityProvider({ apiKey: sim.apiKey, baseURL: sim.baseURL });
 * sim.failNext({ status: 402, body: stabilityErrorBody("payment_required", "…") });
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import {
  nearestRatio,
  STABILITY_SIZES,
  STABILITY_STYLE_PRESETS,
} from "../../src/providers/stability.ts";

export const DEFAULT_STABILITY_SIMULATOR_KEY = "sk-stability-sim-0123456789abcdef";

export const SD3_MODELS = ["sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash"];

export interface StabilityScriptedReply {
  status: number;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface StabilityFile {
  field: string;
  filename: string;
  contentType: string;
  bytes: Buffer;
}

export interface StabilityRecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  form: { fields: Record<string, string>; files: StabilityFile[] } | undefined;
  /** The status, and the body as JSON (an image reply is recorded as its bytes). */
  reply: { status: number; body: unknown; headers: Record<string, string> } | undefined;
}

export interface StabilitySimulator {
  readonly baseURL: string;
  readonly apiKey: string;
  readonly requests: StabilityRecordedRequest[];
  delayMs: number;
  readonly hangUps: number;
  failNext(reply: StabilityScriptedReply): void;
  close(): Promise<void>;
}

class StabilityError extends Error {
  readonly status: number;
  /** Stability's `name`: `bad_request`, `content_moderation`, … */
  readonly errorName: string;
  constructor(status: number, errorName: string, message: string) {
    super(message);
    this.status = status;
    this.errorName = errorName;
  }
}

const badRequest = (message: string) => new StabilityError(400, "bad_request", message);

/** Stability's error shape. */
export function stabilityErrorBody(name: string, ...errors: string[]) {
  return { id: randomUUID().replace(/-/g, ""), name, errors };
}

const COMMON = [
  "prompt",
  "negative_prompt",
  "aspect_ratio",
  "seed",
  "style_preset",
  "output_format",
];
const FIELDS: Record<string, readonly string[]> = {
  ultra: [...COMMON, "image", "strength"],
  core: COMMON,
  sd3: [...COMMON, "model", "mode", "image", "strength", "cfg_scale"],
};
const FORMATS: Record<string, readonly string[]> = {
  ultra: ["png", "jpeg", "webp"],
  core: ["png", "jpeg", "webp"],
  sd3: ["png", "jpeg"],
};

export async function startStabilitySimulator(
  options: { apiKey?: string } = {},
): Promise<StabilitySimulator> {
  const apiKey = options.apiKey ?? DEFAULT_STABILITY_SIMULATOR_KEY;
  const requests: StabilityRecordedRequest[] = [];
  const scripted: StabilityScriptedReply[] = [];
  let hangUps = 0;
  const simulator = {
    baseURL: "",
    apiKey,
    requests,
    delayMs: 0,
    get hangUps() {
      return hangUps;
    },
    failNext(reply: StabilityScriptedReply) {
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
    const record: StabilityRecordedRequest = {
      method: request.method ?? "GET",
      path,
      headers: request.headers,
      form: undefined,
      reply: undefined,
    };
    requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.reply = { status, body, headers };
      if (response.destroyed || response.writableEnded) return;
      const isBytes = Buffer.isBuffer(body);
      response.writeHead(status, { "content-type": "application/json", ...headers });
      response.end(isBytes || typeof body === "string" ? body : JSON.stringify(body));
    };
    try {
      const raw = await readBody(request);
      if (simulator.delayMs > 0) {
        await sleep(simulator.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) {
          hangUps += 1;
          return;
        }
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);

      const given = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
      if (given !== apiKey) {
        throw new StabilityError(401, "unauthorized", "Incorrect API key provided.");
      }
      const service = /^\/v2beta\/stable-image\/generate\/(ultra|core|sd3)$/.exec(path)?.[1];
      if (request.method !== "POST" || service === undefined) {
        throw new StabilityError(404, "not_found", `No route ${request.method} ${path}.`);
      }
      const contentType = request.headers["content-type"] ?? "";
      if (!contentType.startsWith("multipart/form-data")) {
        throw badRequest("content-type: must be multipart/form-data");
      }
      record.form = await parseMultipart(raw, contentType);
      const accept = request.headers.accept ?? "image/*";
      if (accept !== "image/*" && accept !== "application/json") {
        throw badRequest("accept: must be image/* or application/json");
      }
      const made = await generate(service, record.form);
      const mimeType = `image/${made.format}`;
      if (accept === "application/json") {
        send(
          200,
          {
            image: made.bytes.toString("base64"),
            finish_reason: made.finishReason,
            seed: made.seed,
          },
          { "content-type": `application/json; type=${mimeType}` },
        );
      } else {
        send(200, made.bytes, {
          "content-type": mimeType,
          "finish-reason": made.finishReason,
          seed: String(made.seed),
        });
      }
    } catch (error) {
      if (error instanceof StabilityError) {
        send(error.status, stabilityErrorBody(error.errorName, error.message));
      } else {
        send(500, stabilityErrorBody("internal_error", String(error)));
      }
    }
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  simulator.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  simulator.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  return simulator;
}

async function generate(
  service: string,
  form: { fields: Record<string, string>; files: StabilityFile[] },
) {
  const { fields, files } = form;
  for (const name of [...Object.keys(fields), ...files.map((file) => file.field)]) {
    if (!FIELDS[service]?.includes(name)) throw badRequest(`${name}: unknown field`);
  }
  const prompt = fields.prompt ?? "";
  if (prompt.length < 1 || prompt.length > 10000) {
    throw badRequest("prompt: must be between 1 and 10000 characters");
  }
  if ((fields.negative_prompt?.length ?? 0) > 10000) {
    throw badRequest("negative_prompt: must be at most 10000 characters");
  }
  const format = fields.output_format ?? "png";
  if (!FORMATS[service]?.includes(format)) throw badRequest(`output_format: invalid ${format}`);
  if (fields.style_preset !== undefined) {
    if (!(STABILITY_STYLE_PRESETS as readonly string[]).includes(fields.style_preset)) {
      throw badRequest(`style_preset: invalid ${fields.style_preset}`);
    }
  }
  const seed = numberField(fields.seed, "seed", 0, 4294967294, true) ?? 0;
  numberField(fields.cfg_scale, "cfg_scale", 1, 10, false);
  if (service === "sd3" && !SD3_MODELS.includes(fields.model ?? "sd3.5-large")) {
    throw badRequest(`model: invalid ${fields.model}`);
  }
  let ratio = fields.aspect_ratio ?? "1:1";
  if (!(ratio in STABILITY_SIZES)) throw badRequest(`aspect_ratio: invalid ${ratio}`);

  const image = files.find((file) => file.field === "image");
  const mode = fields.mode ?? "text-to-image";
  if (service === "sd3" && mode !== "text-to-image" && mode !== "image-to-image") {
    throw badRequest(`mode: invalid ${mode}`);
  }
  const imageToImage = service === "sd3" ? mode === "image-to-image" : image !== undefined;
  if (imageToImage) {
    if (!image) throw badRequest("image: required for image-to-image");
    if (fields.strength === undefined) throw badRequest("strength: required when image is given");
    numberField(fields.strength, "strength", 0, 1, false);
    if (service === "sd3" && fields.aspect_ratio !== undefined) {
      throw badRequest("aspect_ratio: only valid for text-to-image requests");
    }
    const { width, height } = await measureInput(image);
    ratio = nearestRatio(width, height);
  } else if (image !== undefined || fields.strength !== undefined) {
    throw badRequest("image, strength: only valid for image-to-image requests");
  }

  if (prompt.includes("forbidden-content")) {
    throw new StabilityError(
      403,
      "content_moderation",
      "Your request was flagged by our content moderation system, as a result your request was denied and you were not charged.",
    );
  }
  const size = STABILITY_SIZES[ratio as keyof typeof STABILITY_SIZES];
  const [width, height] = size.split("x").map(Number) as [number, number];
  const filtered = prompt.includes("blurred-content");
  const bytes = await draw(width, height, format, prompt);
  const madeSeed = seed === 0 ? 1 + Math.floor(Math.random() * 4294967293) : seed;
  return { bytes, format, seed: madeSeed, finishReason: filtered ? "CONTENT_FILTERED" : "SUCCESS" };
}

function numberField(
  value: string | undefined,
  name: string,
  minimum: number,
  maximum: number,
  integer: boolean,
): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number < minimum || number > maximum) {
    throw badRequest(`${name}: must be between ${minimum} and ${maximum}`);
  }
  if (integer && !Number.isInteger(number)) throw badRequest(`${name}: must be an integer`);
  return number;
}

/** Stability's rules for an input image: PNG, JPEG or WebP, 64 to 16,384 px a side, ≥ 4,096 px. */
async function measureInput(image: StabilityFile) {
  const metadata = await sharp(image.bytes)
    .metadata()
    .catch(() => undefined);
  const { width = 0, height = 0, format } = metadata ?? {};
  if (!format || !["png", "jpeg", "webp"].includes(format)) {
    throw badRequest("image: must be a jpeg, png or webp image");
  }
  if (width < 64 || height < 64 || width > 16384 || height > 16384 || width * height < 4096) {
    throw badRequest("image: sides must be 64 to 16384 pixels, at least 4096 pixels in all");
  }
  return { width, height };
}

function draw(width: number, height: number, format: string, prompt: string): Promise<Buffer> {
  let hash = 0;
  for (const character of prompt) hash = (hash * 31 + (character.codePointAt(0) ?? 0)) >>> 0;
  const background = { r: hash & 0xff, g: (hash >>> 8) & 0xff, b: (hash >>> 16) & 0xff };
  const image = sharp({ create: { width, height, channels: 3, background } });
  if (format === "jpeg") return image.jpeg().toBuffer();
  if (format === "webp") return image.webp().toBuffer();
  return image.png().toBuffer();
}

async function parseMultipart(raw: Buffer, contentType: string) {
  const fields: Record<string, string> = {};
  const files: StabilityFile[] = [];
  let formData: FormData;
  try {
    formData = await new Request("http://127.0.0.1/", {
      method: "POST",
      headers: { "content-type": contentType },
      body: new Uint8Array(raw),
    }).formData();
  } catch {
    throw badRequest("body: could not parse multipart/form-data");
  }
  for (const [field, value] of formData) {
    if (typeof value === "string") {
      if (field in fields) throw badRequest(`${field}: given more than once`);
      fields[field] = value;
    } else {
      const bytes = Buffer.from(await value.arrayBuffer());
      files.push({ field, filename: value.name, contentType: value.type, bytes });
    }
  }
  return { fields, files };
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
