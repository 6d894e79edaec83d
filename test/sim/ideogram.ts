/**
 * A loopback simulator of Ideogram's v2 task API for Ideogram 3.0, on a real `node:http` server
 * at 127.0.0.1:
 *
 * - `POST /v2/image/generate/ideogram-3` (JSON or multipart) and `POST /v2/image/remix/ideogram-3`
 *   (multipart, with an `image` file), checked as strictly as Ideogram: the `Api-Key` header
 *   (401 otherwise), known fields only, v2's lower-case enums, ranges, `resolution` from the 69
 *   of Ideogram 3.0; `async: true` answers `{generation_id, seed}` at once (without it, the
 *   images inline, as Ideogram does synchronously);
 * - `GET /v2/generations/{id}`: each task walks its script, one step per poll (`script([...])`
 *   sets the next task's; the last step repeats): `pending`, `completed`, `failed`, `moderated`
 *   (failed, `content_policy_violation`), `unsafe` (completed, every image withheld),
 *   `partly-unsafe` (the first image withheld), `expired` (completed, links already past their
 *   `exp`); an unknown id is 404;
 * - result images are real PNGs of the resolution (sharp), served at
 *   `/api/images/ephemeral/{id}-{n}.png?exp=…&sig=…`, 403 once `exp` has passed or with a bad sig.
 *
 * A prompt containing `forbidden-content` is refused 422 with Ideogram's safety message. There is
 * no cancel endpoint (Ideogram has none): anything else is a 404, recorded like every request.
 * `failNext` scripts the next reply (429 with Retry-After, 402, 5xx…), `delayMs` holds requests
 * (counting `hangUps` when the client leaves), `polls(id)` counts the polls of a task.
 */
import { createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { IDEOGRAM_RESOLUTIONS, IDEOGRAM_STYLE_PRESETS } from "../../src/providers/ideogram.ts";

export const DEFAULT_IDEOGRAM_SIMULATOR_KEY = "ideogram-sim-key-0123456789abcdef";
export const SAFETY_MESSAGE =
  "Prompt provided failed safety check due to the inclusion of prohibited content.";

export type IdeogramStep =
  | "pending"
  | "completed"
  | "failed"
  | "moderated"
  | "unsafe"
  | "partly-unsafe"
  | "expired";

export interface IdeogramScriptedReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface IdeogramRecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The JSON body, or a multipart form's text fields. */
  fields: Record<string, unknown> | undefined;
  files: { field: string; contentType: string; bytes: Buffer }[];
  reply: { status: number; body: unknown } | undefined;
}

interface Task {
  steps: IdeogramStep[];
  polls: number;
  count: number;
  resolution: string;
  prompt: string;
  seed: number;
}

export interface IdeogramSimulator {
  readonly baseURL: string;
  readonly apiKey: string;
  readonly requests: IdeogramRecordedRequest[];
  delayMs: number;
  readonly hangUps: number;
  /** How long result links live, in ms. */
  linkTtlMs: number;
  script(steps: IdeogramStep[]): void;
  polls(id: string): number;
  failNext(reply: IdeogramScriptedReply): void;
  close(): Promise<void>;
}

class IdeogramError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const GENERATE_FIELDS = [
  ...["prompt", "async", "num_images", "seed", "resolution", "aspect_ratio", "rendering_speed"],
  ...["magic_prompt", "negative_prompt", "style_type", "style_preset", "private"],
];
const REMIX_FIELDS = [...GENERATE_FIELDS, "image_weight"];
const ENUMS: Record<string, readonly string[]> = {
  rendering_speed: ["turbo", "default", "quality"],
  magic_prompt: ["auto", "on", "off"],
  style_type: ["auto", "general", "realistic", "design", "custom", "fiction", "stylized"],
  resolution: IDEOGRAM_RESOLUTIONS,
};

export async function startIdeogramSimulator(
  options: { apiKey?: string } = {},
): Promise<IdeogramSimulator> {
  const apiKey = options.apiKey ?? DEFAULT_IDEOGRAM_SIMULATOR_KEY;
  const secret = randomBytes(16);
  const tasks = new Map<string, Task>();
  const scripted: IdeogramScriptedReply[] = [];
  let nextScript: IdeogramStep[] = ["pending", "pending", "completed"];
  let hangUps = 0;
  const sim = {
    baseURL: "",
    apiKey,
    requests: [] as IdeogramRecordedRequest[],
    delayMs: 0,
    linkTtlMs: 60_000,
    get hangUps() {
      return hangUps;
    },
    script(steps: IdeogramStep[]) {
      nextScript = steps;
    },
    polls: (id: string) => tasks.get(id)?.polls ?? 0,
    failNext(reply: IdeogramScriptedReply) {
      scripted.push(reply);
    },
    close: async () => {},
  };
  const sign = (path: string, exp: number) =>
    createHmac("sha256", secret).update(`${path}:${exp}`).digest("hex");

  function linkOf(id: string, index: number, expired: boolean) {
    const path = `/api/images/ephemeral/${id}-${index}.png`;
    const exp = Math.floor((Date.now() + (expired ? -60_000 : sim.linkTtlMs)) / 1000);
    return `${sim.baseURL}${path}?exp=${exp}&sig=${sign(path, exp)}`;
  }

  function generationOf(id: string, task: Task) {
    const step = task.steps[Math.min(task.polls, task.steps.length) - 1] ?? "pending";
    const base = { generation_id: id, created: new Date().toISOString() };
    if (step === "pending") return { ...base, status: "pending" };
    if (step === "failed") return { ...base, status: "failed", failure_reason: "internal_error" };
    if (step === "moderated") {
      return { ...base, status: "failed", failure_reason: "content_policy_violation" };
    }
    const data = Array.from({ length: task.count }, (_, index) => {
      const safe = step !== "unsafe" && !(step === "partly-unsafe" && index === 0);
      return {
        object_type: "image.generation",
        url: safe ? linkOf(id, index, step === "expired") : null,
        prompt: `${task.prompt}, magic`,
        resolution: task.resolution,
        seed: task.seed,
        is_image_safe: safe,
      };
    });
    return { ...base, status: "completed", response_type: "url", data };
  }

  async function route(request: IncomingMessage, record: IdeogramRecordedRequest, raw: Buffer) {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const image = /^\/api\/images\/ephemeral\/([\w-]+)-(\d+)\.png$/.exec(url.pathname);
    if (request.method === "GET" && image) {
      const exp = Number(url.searchParams.get("exp"));
      if (url.searchParams.get("sig") !== sign(url.pathname, exp) || exp * 1000 <= Date.now()) {
        throw new IdeogramError(403, "Link expired or invalid.");
      }
      const task = tasks.get(image[1] ?? "");
      if (!task) throw new IdeogramError(404, "Not found.");
      const [width, height] = task.resolution.split("x").map(Number) as [number, number];
      return { status: 200, body: await draw(width, height), contentType: "image/png" };
    }
    if (request.headers["api-key"] !== apiKey) {
      throw new IdeogramError(401, "Invalid API key.");
    }
    const poll = /^\/v2\/generations\/([\w-]+)$/.exec(url.pathname);
    if (request.method === "GET" && poll) {
      const id = poll[1] ?? "";
      const task = tasks.get(id);
      if (!task) throw new IdeogramError(404, "Generation not found.");
      task.polls += 1;
      return { status: 200, body: generationOf(id, task) };
    }
    const action = /^\/v2\/image\/(generate|remix)\/ideogram-3$/.exec(url.pathname)?.[1];
    if (request.method !== "POST" || !action) {
      throw new IdeogramError(404, `No route ${request.method} ${url.pathname}.`);
    }
    await readForm(request, record, raw);
    const fields = checked(action, record);
    if (String(fields.prompt).includes("forbidden-content")) {
      throw new IdeogramError(422, SAFETY_MESSAGE);
    }
    const id = randomBytes(16).toString("base64url");
    const task: Task = {
      steps: nextScript,
      polls: 0,
      count: Number(fields.num_images ?? 1),
      resolution: String(fields.resolution ?? "1024x1024"),
      prompt: String(fields.prompt),
      seed: Number(fields.seed ?? 1 + Math.floor(Math.random() * 2147483646)),
    };
    tasks.set(id, task);
    if (String(fields.async) === "true") {
      return { status: 200, body: { generation_id: id, seed: task.seed } };
    }
    // Synchronous: as Ideogram does without `async`, the images inline.
    task.steps = ["completed"];
    task.polls = 1;
    const done = generationOf(id, task) as { data: unknown };
    return { status: 200, body: { generation_id: id, seed: task.seed, data: done.data } };
  }

  const server = createServer(async (request, response) => {
    const gone = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) gone.abort();
    });
    const record: IdeogramRecordedRequest = {
      method: request.method ?? "GET",
      path: request.url ?? "/",
      headers: request.headers,
      fields: undefined,
      files: [],
      reply: undefined,
    };
    sim.requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.reply = { status, body: Buffer.isBuffer(body) ? "<image>" : body };
      if (response.destroyed || response.writableEnded) return;
      const text = Buffer.isBuffer(body) || typeof body === "string" ? body : JSON.stringify(body);
      response.writeHead(status, { "content-type": "application/json", ...headers });
      response.end(text);
    };
    try {
      const raw = await readBody(request);
      if (sim.delayMs > 0) {
        await sleep(sim.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) {
          hangUps += 1;
          return;
        }
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);
      const reply = await route(request, record, raw);
      send(
        reply.status,
        reply.body,
        reply.contentType ? { "content-type": reply.contentType } : {},
      );
    } catch (error) {
      if (error instanceof IdeogramError) send(error.status, { error: error.message });
      else send(500, { error: String(error) });
    }
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  sim.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sim.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  return sim;
}

/** The fields of a submit, checked against Ideogram 3.0's schema; a 400 for what it refuses. */
function checked(action: string, record: IdeogramRecordedRequest): Record<string, unknown> {
  const fields = record.fields ?? {};
  const known = action === "remix" ? REMIX_FIELDS : GENERATE_FIELDS;
  for (const name of Object.keys(fields)) {
    if (!known.includes(name)) throw new IdeogramError(400, `${name}: unknown field`);
  }
  const prompt = fields.prompt;
  if (typeof prompt !== "string" || prompt.length < 1 || prompt.length > 10000) {
    throw new IdeogramError(400, "prompt: must be 1 to 10000 characters");
  }
  for (const [name, values] of Object.entries(ENUMS)) {
    if (fields[name] !== undefined && !values.includes(String(fields[name]))) {
      throw new IdeogramError(400, `${name}: invalid value ${String(fields[name])}`);
    }
  }
  if (fields.resolution !== undefined && fields.aspect_ratio !== undefined) {
    throw new IdeogramError(400, "resolution: cannot be combined with aspect_ratio");
  }
  if (
    fields.style_preset !== undefined &&
    !IDEOGRAM_STYLE_PRESETS.has(String(fields.style_preset))
  ) {
    throw new IdeogramError(400, "style_preset: invalid value");
  }
  inRange(fields.num_images, "num_images", 1, 8);
  inRange(fields.seed, "seed", 0, 2147483647);
  inRange(fields.image_weight, "image_weight", 1, 100);
  const images = record.files.filter((file) => file.field === "image");
  if (action === "remix" && images.length !== 1) {
    throw new IdeogramError(400, "image: exactly one image is required");
  }
  if (action === "generate" && record.files.length > 0) {
    throw new IdeogramError(400, `${record.files[0]?.field}: unknown field`);
  }
  return fields;
}

function inRange(value: unknown, name: string, minimum: number, maximum: number) {
  if (value === undefined) return;
  const number = Number(value);
  if (!Number.isInteger(number) || number < minimum || number > maximum) {
    throw new IdeogramError(400, `${name}: must be an integer from ${minimum} to ${maximum}`);
  }
}

async function readForm(request: IncomingMessage, record: IdeogramRecordedRequest, raw: Buffer) {
  const contentType = request.headers["content-type"] ?? "";
  if (contentType.startsWith("application/json")) {
    try {
      record.fields = JSON.parse(raw.toString("utf8"));
    } catch {
      throw new IdeogramError(400, "body: invalid JSON");
    }
    return;
  }
  if (!contentType.startsWith("multipart/form-data")) {
    throw new IdeogramError(415, "content-type: must be application/json or multipart/form-data");
  }
  const form = await new Request("http://127.0.0.1/", {
    method: "POST",
    headers: { "content-type": contentType },
    body: new Uint8Array(raw),
  })
    .formData()
    .catch(() => {
      throw new IdeogramError(400, "body: could not parse multipart/form-data");
    });
  const fields: Record<string, unknown> = {};
  for (const [name, value] of form) {
    if (typeof value === "string") fields[name] = value;
    else {
      const bytes = Buffer.from(await value.arrayBuffer());
      record.files.push({ field: name, contentType: value.type, bytes });
    }
  }
  record.fields = fields;
}

function draw(width: number, height: number): Promise<Buffer> {
  const background = { r: 200, g: 80, b: 40 };
  return sharp({ create: { width, height, channels: 3, background } })
    .png()
    .toBuffer();
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
