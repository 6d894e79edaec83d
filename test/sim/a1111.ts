/**
 * A loopback simulator of AUTOMATIC1111's stable-diffusion-webui API (`--api`), or of Forge's,
 * on a real `node:http` server at 127.0.0.1: `POST /sdapi/v1/txt2img`, `POST /sdapi/v1/img2img`
 * and `GET /sdapi/v1/sd-models`, for tests of the a1111 provider.
 *
 * It behaves like the real server where the provider depends on it, and is stricter where the
 * real one is lenient, so a provider sending what it does not mean fails loudly:
 *
 * - with `auth` (`user:pass`, as `--api-auth`), HTTP basic auth or 401 (`Not authenticated`
 *   without it, `Incorrect username or password` when wrong), with `WWW-Authenticate: Basic`;
 * - a field outside those the provider may send, or of the wrong type, → 422 in FastAPI's
 *   validation shape `{detail: [{type, loc, msg, input}]}` (the real server ignores unknown
 *   fields); width and height must be multiples of 8 from 64 to 2048 (the real one floors them);
 * - errors as webui shapes them (`{error, detail, body, errors}`) or, with `flavour: "forge"`,
 *   as Forge does (its error middleware is disabled: FastAPI's `{detail}`, and a plain-text
 *   `Internal Server Error` for a crash);
 * - a checkpoint or sampler it does not know is ignored silently, as the real server does: it
 *   draws with the loaded checkpoint and `DPM++ 2M`, and `info` says so;
 * - a prompt containing `fail-model` crashes the model: 500;
 * - `batch_size` real images of width x height (512x512 by default) in `samplesFormat` (PNG by
 *   default), as base64, with `parameters` and `info` (a JSON string). img2img with a mask and
 *   `inpaint_full_res` left true answers at the input image's size, as the real one does.
 *
 * Every request is recorded with its parsed JSON body and, once sent, the reply.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";

export interface SimulatedCheckpoint {
  title: string;
  model_name: string;
  hash: string;
  sha256: string;
  filename: string;
}

export const SIMULATED_CHECKPOINTS: readonly SimulatedCheckpoint[] = [
  checkpoint("v1-5-pruned-emaonly.safetensors", "6ce0161689"),
  checkpoint("sdxl/sd_xl_base_1.0.safetensors", "31e35c80fc"),
];

function checkpoint(name: string, hash: string): SimulatedCheckpoint {
  return {
    title: `${name} [${hash}]`,
    model_name: name.replace(/\//g, "_").replace(/\.[^.]*$/, ""),
    hash,
    sha256: `${hash}${"0".repeat(54)}`,
    filename: `/models/Stable-diffusion/${name}`,
  };
}

export interface A1111SimulatorOptions {
  /** `user:pass`, as the server's `--api-auth`; no auth when unset. */
  auth?: string;
  flavour?: "webui" | "forge";
  samplesFormat?: "png" | "jpg" | "webp";
}

export interface ScriptedReply {
  status: number;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  json: Record<string, unknown> | undefined;
  reply: { status: number; body: unknown } | undefined;
}

export interface A1111Simulator {
  /** The server root, e.g. `http://127.0.0.1:41234`. */
  readonly baseURL: string;
  readonly requests: RecordedRequest[];
  /** Answer each image request this many milliseconds late; stops waiting if the client leaves. */
  delayMs: number;
  failNext(reply: ScriptedReply): void;
  close(): Promise<void>;
}

const SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "Euler a", "Euler", "DDIM", "UniPC"];
const SCHEDULERS = ["Automatic", "Uniform", "Karras", "Exponential", "SGM Uniform"];
const FIELD_TYPES: Record<
  string,
  "string" | "integer" | "number" | "boolean" | "object" | "array"
> = {
  prompt: "string",
  negative_prompt: "string",
  width: "integer",
  height: "integer",
  batch_size: "integer",
  steps: "integer",
  cfg_scale: "number",
  seed: "integer",
  sampler_name: "string",
  scheduler: "string",
  override_settings: "object",
};
const IMG2IMG_FIELD_TYPES = {
  ...FIELD_TYPES,
  init_images: "array",
  mask: "string",
  denoising_strength: "number",
  inpaint_full_res: "boolean",
} as const;

class ServerError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`status ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function startA1111Simulator(
  options: A1111SimulatorOptions = {},
): Promise<A1111Simulator> {
  const flavour = options.flavour ?? "webui";
  const requests: RecordedRequest[] = [];
  const scripted: ScriptedReply[] = [];
  const loaded = SIMULATED_CHECKPOINTS[0] as SimulatedCheckpoint;
  const simulator: A1111Simulator = {
    baseURL: "",
    requests,
    delayMs: 0,
    failNext: (reply) => scripted.push(reply),
    close: async () => {},
  };

  /** HTTPException as each flavour answers it. */
  const httpError = (status: number, detail: string) =>
    new ServerError(
      status,
      flavour === "forge"
        ? { detail }
        : { error: "HTTPException", detail, body: "", errors: `${status}: ${detail}` },
    );

  const server = createServer(async (request, response) => {
    const gone = new AbortController();
    response.on("close", () => gone.abort());
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const record: RecordedRequest = {
      method: request.method ?? "GET",
      path: request.url ?? "/",
      headers: request.headers,
      json: undefined,
      reply: undefined,
    };
    requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.reply = { status, body };
      if (response.destroyed || response.writableEnded) return;
      const text = typeof body === "string";
      response.writeHead(status, {
        "content-type": text ? "text/plain; charset=utf-8" : "application/json",
        ...headers,
      });
      response.end(text ? body : JSON.stringify(body));
    };
    try {
      if (request.method === "POST") {
        try {
          record.json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          throw validation("json_invalid", ["body", 0], "JSON decode error", "");
        }
      }
      if (simulator.delayMs > 0 && request.method === "POST") {
        await sleep(simulator.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) return;
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "");
      const endpoint = `${request.method} ${record.path.split("?")[0]}`;
      const routes = [
        "POST /sdapi/v1/txt2img",
        "POST /sdapi/v1/img2img",
        "GET /sdapi/v1/sd-models",
      ];
      // FastAPI checks the route before its dependencies (auth): an unknown path is 404.
      if (!routes.includes(endpoint)) throw new ServerError(404, { detail: "Not Found" });
      checkAuth(request.headers.authorization);
      if (endpoint === "GET /sdapi/v1/sd-models") {
        return send(
          200,
          SIMULATED_CHECKPOINTS.map((item) => ({ ...item, config: null })),
        );
      }
      const img2img = endpoint === "POST /sdapi/v1/img2img";
      send(200, await draw(record.json ?? {}, img2img));
    } catch (error) {
      if (error instanceof ServerError) {
        const headers: Record<string, string> =
          error.status === 401 ? { "www-authenticate": "Basic" } : {};
        send(error.status, error.body, headers);
      } else {
        send(500, "Internal Server Error");
      }
    }
  });

  function checkAuth(header: string | undefined): void {
    if (options.auth === undefined) return;
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? "");
    if (!match) throw httpError(401, "Not authenticated");
    if (Buffer.from(match[1] as string, "base64").toString("utf8") !== options.auth) {
      throw httpError(401, "Incorrect username or password");
    }
  }

  async function draw(body: Record<string, unknown>, img2img: boolean): Promise<unknown> {
    const types: Record<string, string> = img2img ? IMG2IMG_FIELD_TYPES : FIELD_TYPES;
    for (const [name, value] of Object.entries(body)) {
      const type = types[name];
      if (!type)
        throw validation(
          "extra_forbidden",
          ["body", name],
          "Extra inputs are not permitted",
          value,
        );
      if (!hasType(value, type)) {
        throw validation(`${type}_type`, ["body", name], `Input should be a valid ${type}`, value);
      }
    }
    const prompt = String(body.prompt ?? "");
    const width = Number(body.width ?? 512);
    const height = Number(body.height ?? 512);
    for (const [name, side] of [
      ["width", width],
      ["height", height],
    ] as const) {
      if (side % 8 !== 0 || side < 64 || side > 2048) {
        throw validation(
          "multiple_of",
          ["body", name],
          "Input should be a multiple of 8 from 64 to 2048",
          side,
        );
      }
    }
    const count = Number(body.batch_size ?? 1);
    if (count < 1 || count > 8) {
      throw validation(
        "less_than_equal",
        ["body", "batch_size"],
        "Input should be from 1 to 8",
        count,
      );
    }
    const overrides = (body.override_settings ?? {}) as Record<string, unknown>;
    const asked = overrides.sd_model_checkpoint;
    if (
      Object.keys(overrides).some((key) => key !== "sd_model_checkpoint") ||
      (typeof asked !== "string" && asked !== undefined)
    ) {
      throw validation(
        "string_type",
        ["body", "override_settings"],
        "Only sd_model_checkpoint, a string, is expected",
        overrides,
      );
    }
    // Unknown names are dropped silently, as webui's process_images does.
    const used =
      SIMULATED_CHECKPOINTS.find((item) =>
        [
          item.title,
          item.model_name,
          item.hash,
          item.sha256,
          item.filename.split("/").pop(),
        ].includes(String(asked)),
      ) ?? loaded;
    const sampler = SAMPLERS.includes(String(body.sampler_name))
      ? String(body.sampler_name)
      : "DPM++ 2M";
    const scheduler = SCHEDULERS.includes(String(body.scheduler))
      ? String(body.scheduler)
      : "Automatic";

    let size = { width, height };
    if (img2img) {
      const inits = body.init_images as unknown[] | undefined;
      if (!inits || inits.length === 0) throw httpError(404, "Init image not found");
      const init = await decode(inits[0]);
      if (body.mask !== undefined) await decode(body.mask);
      if (body.mask !== undefined && body.inpaint_full_res !== false) size = init;
    }
    if (prompt.includes("fail-model")) {
      if (flavour === "forge") throw new Error("model failed");
      throw new ServerError(500, {
        error: "OutOfMemoryError",
        detail: "",
        body: "",
        errors: "CUDA out of memory. Tried to allocate 2.00 GiB",
      });
    }
    const seed = typeof body.seed === "number" && body.seed >= 0 ? body.seed : 1_234_567;
    const seeds = Array.from({ length: count }, (_, index) => seed + index);
    const images = await Promise.all(
      seeds.map((each) => makeImage(each, size, options.samplesFormat)),
    );
    const info = {
      prompt,
      all_prompts: seeds.map(() => prompt),
      negative_prompt: body.negative_prompt ?? "",
      seed,
      all_seeds: seeds,
      width: size.width,
      height: size.height,
      sampler_name: sampler,
      scheduler,
      cfg_scale: body.cfg_scale ?? 7,
      steps: body.steps ?? 20,
      batch_size: count,
      sd_model_name: used.filename
        .split("/")
        .pop()
        ?.replace(/\.[^.]*$/, ""),
      sd_model_hash: used.hash,
      denoising_strength: img2img ? (body.denoising_strength ?? 0.75) : null,
      index_of_first_image: 0,
      job_timestamp: "20261203120000",
    };
    const parameters = { ...body, init_images: null, mask: null };
    return { images, parameters, info: JSON.stringify(info) };
  }

  async function decode(value: unknown): Promise<{ width: number; height: number }> {
    const metadata = await sharp(Buffer.from(String(value), "base64"))
      .metadata()
      .catch(() => undefined);
    if (!metadata?.width || !metadata.height) throw httpError(500, "Invalid encoded image");
    return { width: metadata.width, height: metadata.height };
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  Object.assign(simulator, { baseURL: `http://127.0.0.1:${port}` });
  simulator.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  return simulator;
}

/** FastAPI's 422 for a request its model does not take (both flavours). */
function validation(type: string, loc: (string | number)[], msg: string, input: unknown) {
  return new ServerError(422, { detail: [{ type, loc, msg, input }] });
}

function hasType(value: unknown, type: string): boolean {
  if (type === "integer") return Number.isInteger(value);
  if (type === "number") return typeof value === "number" && Number.isFinite(value);
  if (type === "array") return Array.isArray(value);
  if (type === "object")
    return typeof value === "object" && value !== null && !Array.isArray(value);
  return typeof value === type;
}

/** A solid colour of its own per seed, so the images of a batch differ. */
async function makeImage(
  seed: number,
  size: { width: number; height: number },
  format: "png" | "jpg" | "webp" = "png",
): Promise<string> {
  const background = { r: seed & 0xff, g: (seed >>> 8) & 0xff, b: (seed * 7) & 0xff };
  const image = sharp({ create: { ...size, channels: 3, background } });
  const encoded = format === "jpg" ? image.jpeg() : format === "webp" ? image.webp() : image.png();
  return (await encoded.toBuffer()).toString("base64");
}
