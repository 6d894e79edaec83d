/**
 * A loopback simulator of fal's queue API on a real `node:http` server at 127.0.0.1:
 *
 * - `POST /{owner}/{app}[/{path}]` (the model id) takes a task; the reply names its
 *   `status_url`, `response_url` and `cancel_url` on the app's root (`/{owner}/{app}/requests/…`),
 *   as fal does, so a client that rebuilds them from the model id goes wrong;
 * - `GET …/requests/{id}/status` walks the task's script one step per poll: `queued` answers 202
 *   `IN_QUEUE` with `queue_position`, `running` 202 `IN_PROGRESS`, the last step 200 `COMPLETED`;
 * - `GET …/requests/{id}` answers the outcome: `done` (images made with sharp at the preset's
 *   size, served at `/files/…`, `has_nsfw_concepts` all false), `nsfw` (a black image flagged
 *   true), `moderated` (422 `content_policy_violation`), `failed` (500, fal's request-error
 *   shape), `expired` (404: fal no longer holds the result);
 * - `PUT …/requests/{id}/cancel` records the cancel (202 `CANCELLATION_REQUESTED`).
 *
 * It checks `Authorization: Key <key>` (401 otherwise) and the input against the model's schema
 * (`FAL_SIM_MODELS`), answering fal's 422 `{"detail": [{loc, msg, type}]}`. `expireFiles()` makes
 * the image URLs answer 404, as fal's CDN does once they expire. `failNext` scripts the next reply
 * (429 with Retry-After…); `delayMs` holds requests and stops waiting when the client hangs up.
 *
 * @example
 * const sim = await startFalSimulator();
 * sim.nextTask({ states: ["queued", "running", "done"] });
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { FAL_IMAGE_SIZES } from "../../src/providers/fal.ts";

export const DEFAULT_FAL_SIMULATOR_KEY = "fal-sim-key-0123456789:abcdef";

type Outcome = "done" | "nsfw" | "moderated" | "failed" | "expired";
export type FalStep = "queued" | "running" | Outcome;

/** Each model's fields beyond the common ones, and whether it takes `num_images`. */
export const FAL_SIM_MODELS: Record<string, SimModel> = {
  "fal-ai/flux/schnell": { fields: ["num_inference_steps", "seed"], numImages: true, maxSteps: 12 },
  "fal-ai/flux/dev": {
    fields: ["num_inference_steps", "guidance_scale", "seed"],
    numImages: true,
    maxSteps: 50,
  },
  "fal-ai/flux-2-pro": { fields: ["safety_tolerance", "seed"], numImages: false, maxSteps: 0 },
};
interface SimModel {
  fields: string[];
  numImages: boolean;
  maxSteps: number;
}
const COMMON = ["prompt", "image_size", "output_format", "enable_safety_checker", "sync_mode"];
const PRESETS = Object.fromEntries(Object.entries(FAL_IMAGE_SIZES).map(([s, p]) => [p, s]));

interface SimTask {
  id: string;
  model: string;
  input: Record<string, unknown>;
  steps: FalStep[];
  polls: number;
  cancelled: boolean;
}

export interface FalRecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  reply: { status: number; body: unknown } | undefined;
  at: number;
}

export interface FalSimulator {
  readonly baseURL: string;
  readonly apiKey: string;
  readonly requests: FalRecordedRequest[];
  readonly tasks: Map<string, SimTask>;
  delayMs: number;
  readonly hangUps: number;
  /** How the next submitted task goes; `["queued", "running", "done"]` by default. */
  nextTask(script: { states: FalStep[] }): void;
  /** The submit reply names its URLs on this origin instead (a hostile or broken upstream). */
  foreignOrigin: string | undefined;
  /** Image URLs answer 404 from now on (or serve again, with `false`). */
  expireFiles(expired?: boolean): void;
  failNext(reply: { status: number; body?: unknown; headers?: Record<string, string> }): void;
  close(): Promise<void>;
}

class FalError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`fal ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** fal's model-error shape: one typed entry per problem. */
export function falDetail(type: string, msg: string, loc: string[] = ["body"]) {
  return { detail: [{ loc, msg, type }] };
}

const invalid = (field: string, msg: string) =>
  new FalError(422, falDetail("value_error", msg, ["body", field]));

export async function startFalSimulator(options: { apiKey?: string } = {}): Promise<FalSimulator> {
  const apiKey = options.apiKey ?? DEFAULT_FAL_SIMULATOR_KEY;
  const scripts: FalStep[][] = [];
  const scripted: { status: number; body?: unknown; headers?: Record<string, string> }[] = [];
  const files = new Map<string, Buffer>();
  let filesExpired = false;
  let hangUps = 0;
  const simulator: FalSimulator = {
    baseURL: "",
    apiKey,
    requests: [],
    tasks: new Map(),
    delayMs: 0,
    foreignOrigin: undefined,
    get hangUps() {
      return hangUps;
    },
    nextTask(script) {
      scripts.push(script.states);
    },
    expireFiles(expired = true) {
      filesExpired = expired;
    },
    failNext(reply) {
      scripted.push(reply);
    },
    close: async () => {},
  };

  const server = createServer(async (request, response) => {
    const gone = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) gone.abort();
    });
    const path = new URL(request.url ?? "/", "http://sim").pathname;
    const record: FalRecordedRequest = {
      method: request.method ?? "GET",
      path: request.url ?? "/",
      headers: request.headers,
      body: undefined,
      reply: undefined,
      at: performance.now(),
    };
    simulator.requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.reply = { status, body: Buffer.isBuffer(body) ? "<bytes>" : body };
      if (response.destroyed || response.writableEnded) return;
      const bytes = Buffer.isBuffer(body);
      response.writeHead(status, { "content-type": "application/json", ...headers });
      response.end(bytes || typeof body === "string" ? body : JSON.stringify(body));
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
      const file = /^\/files\/([\w-]+\.(?:png|jpeg))$/.exec(path)?.[1];
      if (file !== undefined && request.method === "GET") {
        const bytes = files.get(file);
        if (!bytes || filesExpired) return send(404, "Not Found", { "content-type": "text/plain" });
        const type = file.endsWith(".png") ? "image/png" : "image/jpeg";
        return send(200, bytes, { "content-type": type });
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);
      if (request.headers.authorization !== `Key ${apiKey}`) {
        throw new FalError(401, { detail: "No user found for Key ID and Secret" });
      }
      const route = /^\/([\w.-]+\/[\w.-]+)\/requests\/([\w-]+)(\/status|\/cancel)?$/.exec(path);
      if (route) {
        const [, app, id, action] = route as unknown as [string, string, string, string?];
        const task = simulator.tasks.get(id ?? "");
        if (!task || appOf(task.model) !== app) {
          throw new FalError(404, { detail: "Request not found" });
        }
        if (action === "/cancel" && request.method === "PUT") {
          task.cancelled = true;
          return send(202, { status: "CANCELLATION_REQUESTED" });
        }
        if (action === "/status" && request.method === "GET") {
          task.polls += 1;
          const step = task.steps[Math.min(task.polls - 1, task.steps.length - 1)];
          const urls = urlsOf(simulator.baseURL, task);
          if (step === "queued") {
            return send(202, { status: "IN_QUEUE", queue_position: 3, request_id: id, ...urls });
          }
          if (step === "running")
            return send(202, { status: "IN_PROGRESS", request_id: id, ...urls });
          return send(200, { status: "COMPLETED", request_id: id, metrics: {}, ...urls });
        }
        if (action === undefined && request.method === "GET") {
          const result = await outcomeOf(simulator.baseURL, task, files);
          return send(result.status, result.body);
        }
        throw new FalError(405, { detail: "Method Not Allowed" });
      }
      if (request.method !== "POST") throw new FalError(404, { detail: "Not Found" });
      const model = path.slice(1);
      const rules = FAL_SIM_MODELS[model];
      if (!rules) throw new FalError(404, { detail: `Application '${model}' not found` });
      if (!String(request.headers["content-type"]).startsWith("application/json")) {
        throw invalid("body", "Input should be a valid JSON object");
      }
      const input = parseJson(raw);
      record.body = input;
      checkInput(input, rules);
      const task: SimTask = {
        id: randomUUID(),
        model,
        input,
        steps: scripts.shift() ?? ["queued", "running", "done"],
        polls: 0,
        cancelled: false,
      };
      simulator.tasks.set(task.id, task);
      const urls = urlsOf(simulator.foreignOrigin ?? simulator.baseURL, task);
      send(200, { status: "IN_QUEUE", request_id: task.id, ...urls, queue_position: 0 });
    } catch (error) {
      if (error instanceof FalError) send(error.status, error.body);
      else send(500, { detail: String(error), error_type: "internal_error" });
    }
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (simulator as { baseURL: string }).baseURL =
    `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  simulator.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  return simulator;
}

/** fal's app root: the model id's owner and app, without the endpoint path. */
function appOf(model: string): string {
  return model.split("/").slice(0, 2).join("/");
}

function urlsOf(base: string, task: SimTask) {
  const root = `${base}/${appOf(task.model)}/requests/${task.id}`;
  return { response_url: root, status_url: `${root}/status`, cancel_url: `${root}/cancel` };
}

function checkInput(input: Record<string, unknown>, rules: SimModel) {
  const known = [...COMMON, ...rules.fields, ...(rules.numImages ? ["num_images"] : [])];
  for (const name of Object.keys(input)) {
    if (!known.includes(name)) throw invalid(name, "Extra inputs are not permitted");
  }
  if (typeof input.prompt !== "string" || input.prompt === "") {
    throw invalid("prompt", "Field required");
  }
  const size = input.image_size ?? "landscape_4_3";
  if (typeof size !== "string" || !(size in PRESETS)) throw invalid("image_size", "Invalid size");
  if (!["jpeg", "png", undefined].includes(input.output_format as string)) {
    throw invalid("output_format", "Input should be 'jpeg' or 'png'");
  }
  if (
    input.enable_safety_checker !== undefined &&
    typeof input.enable_safety_checker !== "boolean"
  ) {
    throw invalid("enable_safety_checker", "Input should be a valid boolean");
  }
  const count = input.num_images ?? 1;
  if (!Number.isInteger(count) || (count as number) < 1 || (count as number) > 4) {
    throw invalid("num_images", "Input should be between 1 and 4");
  }
  const steps = input.num_inference_steps;
  if (
    steps !== undefined &&
    (!Number.isInteger(steps) || (steps as number) < 1 || (steps as number) > rules.maxSteps)
  ) {
    throw invalid("num_inference_steps", `Input should be between 1 and ${rules.maxSteps}`);
  }
  if (input.seed !== undefined && !Number.isInteger(input.seed)) {
    throw invalid("seed", "Input should be a valid integer");
  }
  if (
    input.safety_tolerance !== undefined &&
    !["1", "2", "3", "4", "5"].includes(input.safety_tolerance as string)
  ) {
    throw invalid("safety_tolerance", "Input should be '1', '2', '3', '4' or '5'");
  }
}

async function outcomeOf(base: string, task: SimTask, files: Map<string, Buffer>) {
  if (
    task.polls === 0 ||
    task.steps[task.polls - 1] === "queued" ||
    task.steps[task.polls - 1] === "running"
  ) {
    return { status: 400, body: { detail: "Request is still in progress" } };
  }
  const outcome = task.steps[task.steps.length - 1] as Outcome;
  if (outcome === "expired") return { status: 404, body: { detail: "Request not found" } };
  if (outcome === "failed") {
    return {
      status: 500,
      body: { detail: "Runner disconnected", error_type: "runner_disconnected" },
    };
  }
  if (outcome === "moderated") {
    return {
      status: 422,
      body: falDetail("content_policy_violation", "The content was flagged by a content checker.", [
        "body",
        "prompt",
      ]),
    };
  }
  const [width, height] = String(PRESETS[String(task.input.image_size ?? "landscape_4_3")])
    .split("x")
    .map(Number) as [number, number];
  const format = task.input.output_format === "png" ? "png" : "jpeg";
  const count = Number(task.input.num_images ?? 1);
  const flagged = outcome === "nsfw";
  const images = [];
  for (let index = 0; index < count; index++) {
    const name = `${task.id}-${index}.${format}`;
    files.set(name, await draw(width, height, format, flagged ? "" : String(task.input.prompt)));
    images.push({ url: `${base}/files/${name}`, width, height, content_type: `image/${format}` });
  }
  return {
    status: 200,
    body: {
      images,
      seed: Number(task.input.seed ?? 42),
      has_nsfw_concepts: images.map(() => flagged),
      prompt: task.input.prompt,
      timings: { inference: 0.1 },
    },
  };
}

/** A real image of the size; black for a flagged one, as fal's safety checker answers. */
function draw(width: number, height: number, format: string, prompt: string) {
  let hash = 0;
  for (const character of prompt) hash = (hash * 31 + (character.codePointAt(0) ?? 0)) >>> 0;
  const background = prompt
    ? { r: hash & 0xff, g: (hash >>> 8) & 0xff, b: (hash >>> 16) & 0xff }
    : { r: 0, g: 0, b: 0 };
  const image = sharp({ create: { width, height, channels: 3, background } });
  return format === "png" ? image.png().toBuffer() : image.jpeg().toBuffer();
}

function parseJson(raw: Buffer): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(raw.toString("utf8"));
    if (value && typeof value === "object" && !Array.isArray(value)) {
      return value as Record<string, unknown>;
    }
  } catch {
    // answered below
  }
  throw invalid("body", "Input should be a valid JSON object");
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
