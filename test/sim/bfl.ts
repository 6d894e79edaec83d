/**
 * A loopback simulator of Black Forest Labs' FLUX API on a real `node:http` server at 127.0.0.1:
 * `POST /v1/{model}` takes a task, `GET /v1/get_result?id=` reports it, and
 * `GET /results/{id}/sample.{jpeg|png}?se=` serves its image until the signed expiry `se`.
 *
 * It is as strict as BFL where tests depend on it:
 * - `x-key` must be the key: 403 `{"detail":"Not authenticated - Invalid Authentication"}`
 *   otherwise (FastAPI's shape, as BFL answers);
 * - each family takes only its own fields, with BFL's ranges (FLUX.2: multiples of 16 up to 4 MP;
 *   FLUX1.1 [pro]: multiples of 32 from 256 to 1440; Kontext and Ultra: `aspect_ratio` only); a
 *   wrong field is 422 `{"detail":[{loc, msg, type}]}`; input images must decode;
 * - each task runs a script of statuses, one step per poll (`script`, default Pending then Ready);
 *   the last status stays; polls are counted per task with their times.
 *
 * Images are real, made with sharp at the size asked (or the ratio's size, or the first input's).
 * `delayMs` holds replies and stops waiting when the client hangs up; `failNext` scripts the
 * next reply to any request (429 with Retry-After, 402, 5xx…); `pollingHost` forges the
 * `polling_url` the next submit hands back.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import { KONTEXT_SIZES, ULTRA_SIZES } from "../../src/providers/bfl.ts";

export const DEFAULT_BFL_SIMULATOR_KEY = "bfl_sim_0123456789abcdef";

export type BflStatus =
  | "Pending"
  | "Ready"
  | "Error"
  | "Request Moderated"
  | "Content Moderated"
  | "Task not found";

export interface BflScriptedReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface BflRecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown> | undefined;
  at: number;
}

export interface BflTask {
  id: string;
  model: string;
  body: Record<string, unknown>;
  script: BflStatus[];
  /** Poll times (ms, performance.now()), one per poll. */
  polls: number[];
  width: number;
  height: number;
  format: "jpeg" | "png";
}

const FAMILIES: Record<
  string,
  { fields: string[]; sizing: "16" | "32" | "ratio"; images: number }
> = {
  "flux-2-pro": { fields: ["prompt_upsampling"], sizing: "16", images: 8 },
  "flux-2-max": { fields: [], sizing: "16", images: 8 },
  "flux-2-flex": { fields: ["prompt_upsampling", "steps", "guidance"], sizing: "16", images: 8 },
  "flux-2-klein-4b": { fields: [], sizing: "16", images: 4 },
  "flux-2-klein-9b": { fields: [], sizing: "16", images: 4 },
  "flux-kontext-pro": { fields: ["prompt_upsampling"], sizing: "ratio", images: 4 },
  "flux-kontext-max": { fields: ["prompt_upsampling"], sizing: "ratio", images: 4 },
  "flux-pro-1.1": { fields: ["prompt_upsampling"], sizing: "32", images: 0 },
  "flux-pro-1.1-ultra": { fields: ["prompt_upsampling", "raw"], sizing: "ratio", images: 0 },
};
const COMMON = ["prompt", "seed", "safety_tolerance", "output_format", "webhook_url"];

class BflError extends Error {
  readonly status: number;
  readonly detail: unknown;
  constructor(status: number, detail: unknown) {
    super(typeof detail === "string" ? detail : "validation error");
    this.status = status;
    this.detail = detail;
  }
}

const invalid = (field: string, msg: string) =>
  new BflError(422, [{ loc: ["body", field], msg, type: "value_error" }]);

export async function startBflSimulator(options: { apiKey?: string } = {}) {
  const apiKey = options.apiKey ?? DEFAULT_BFL_SIMULATOR_KEY;
  const requests: BflRecordedRequest[] = [];
  const tasks = new Map<string, BflTask>();
  const scripted: BflScriptedReply[] = [];
  const sim = {
    baseURL: "",
    apiKey,
    requests,
    tasks,
    delayMs: 0,
    hangUps: 0,
    /** The statuses the next tasks run through, one per poll. */
    nextScript: ["Pending", "Ready"] as BflStatus[],
    /** How long a result URL works, ms. */
    resultTtlMs: 600_000,
    /** Forges the next `polling_url` onto this origin (`http://evil.test`). */
    pollingHost: undefined as string | undefined,
    script(statuses: BflStatus[]) {
      sim.nextScript = statuses;
    },
    failNext(reply: BflScriptedReply) {
      scripted.push(reply);
    },
    get polls() {
      return [...tasks.values()].reduce((sum, task) => sum + task.polls.length, 0);
    },
    close: async () => {},
  };

  const server = createServer(async (request, response) => {
    const gone = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) gone.abort();
    });
    const url = new URL(request.url ?? "/", "http://sim");
    const record: BflRecordedRequest = {
      method: request.method ?? "GET",
      path: url.pathname + url.search,
      headers: request.headers,
      body: undefined,
      at: performance.now(),
    };
    requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (response.destroyed || response.writableEnded) return;
      const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      response.writeHead(status, { "content-type": "application/json", ...headers });
      response.end(bytes);
    };
    try {
      const raw = await readBody(request);
      if (raw.length > 0) record.body = JSON.parse(raw.toString("utf8"));
      if (sim.delayMs > 0) {
        await sleep(sim.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) {
          sim.hangUps += 1;
          return;
        }
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? { detail: "scripted" }, next.headers);
      const sample = /^\/results\/([\w-]+)\/sample\.(jpeg|png)$/.exec(url.pathname);
      if (request.method === "GET" && sample) {
        return await serveResult(sample[1] ?? "", url, (status, bytes, type) =>
          send(status, bytes, { "content-type": type }),
        );
      }
      if (request.headers["x-key"] === undefined) throw new BflError(403, "Not authenticated");
      if (request.headers["x-key"] !== apiKey) {
        throw new BflError(403, "Not authenticated - Invalid Authentication");
      }
      if (request.method === "GET" && url.pathname === "/v1/get_result") {
        return send(200, poll(url.searchParams.get("id") ?? ""));
      }
      const model = /^\/v1\/([\w.-]+)$/.exec(url.pathname)?.[1] ?? "";
      if (request.method !== "POST" || !FAMILIES[model]) throw new BflError(404, "Not Found");
      const task = await submit(model, record.body ?? {});
      const origin = sim.pollingHost ?? sim.baseURL;
      sim.pollingHost = undefined;
      send(200, {
        id: task.id,
        polling_url: `${origin}/v1/get_result?id=${task.id}`,
        cost: 3,
        input_mp: 0,
        output_mp: (task.width * task.height) / 1e6,
      });
    } catch (error) {
      if (error instanceof BflError) send(error.status, { detail: error.detail });
      else send(500, { detail: "Internal Server Error" });
    }
  });

  async function submit(model: string, body: Record<string, unknown>): Promise<BflTask> {
    const family = FAMILIES[model] as (typeof FAMILIES)[string];
    const images = Array.from({ length: 8 }, (_, index) =>
      index === 0 ? "input_image" : `input_image_${index + 1}`,
    ).slice(0, family.images);
    const sizing = family.sizing === "ratio" ? ["aspect_ratio"] : ["width", "height"];
    const allowed = new Set([...COMMON, ...family.fields, ...images, ...sizing]);
    for (const field of Object.keys(body)) {
      if (!allowed.has(field)) throw invalid(field, "Extra inputs are not permitted");
    }
    if (typeof body.prompt !== "string" || body.prompt.length === 0) {
      throw invalid("prompt", "Field required");
    }
    const maxSafety = model.startsWith("flux-2-") ? 5 : 6;
    const safety = body.safety_tolerance;
    if (safety !== undefined && !(Number.isInteger(safety) && (safety as number) <= maxSafety)) {
      throw invalid("safety_tolerance", `Input should be less than or equal to ${maxSafety}`);
    }
    if (body.output_format !== undefined && !["jpeg", "png"].includes(String(body.output_format))) {
      throw invalid("output_format", "Input should be 'jpeg' or 'png'");
    }
    let [width, height] = [1024, 1024];
    const input = typeof body.input_image === "string" ? body.input_image : undefined;
    if (input !== undefined) {
      const metadata = await sharp(Buffer.from(input, "base64"))
        .metadata()
        .catch(() => {
          throw invalid("input_image", "Could not decode the image");
        });
      [width, height] = [metadata.width ?? 0, metadata.height ?? 0];
    }
    if (family.sizing === "ratio") {
      const table: Record<string, string> = model.endsWith("ultra") ? ULTRA_SIZES : KONTEXT_SIZES;
      const ratio = body.aspect_ratio ?? (input === undefined ? "1:1" : undefined);
      if (ratio !== undefined) {
        const size = table[String(ratio)];
        if (!size) throw invalid("aspect_ratio", "Aspect ratio must be between 21:9 and 9:21");
        [width, height] = size.split("x").map(Number) as [number, number];
      }
    } else if (body.width !== undefined || body.height !== undefined) {
      [width, height] = [Number(body.width), Number(body.height)];
      const step = family.sizing === "16" ? 16 : 32;
      const [min, maxSide] = step === 16 ? [64, 2048] : [256, 1440];
      for (const [field, value] of [
        ["width", width],
        ["height", height],
      ] as const) {
        if (!Number.isInteger(value) || value % step !== 0 || value < min || value > maxSide) {
          throw invalid(field, `Must be a multiple of ${step} from ${min} to ${maxSide}`);
        }
      }
      if (width * height > 4_194_304) throw invalid("width", "At most 4 megapixels");
    }
    const format = body.output_format === "png" ? "png" : "jpeg";
    const task: BflTask = {
      id: randomUUID(),
      model,
      body,
      script: [...sim.nextScript],
      polls: [],
      width,
      height,
      format,
    };
    tasks.set(task.id, task);
    return task;
  }

  function poll(id: string) {
    const task = tasks.get(id);
    if (!task) return { id, status: "Task not found", result: null };
    task.polls.push(performance.now());
    const status = task.script.length > 1 ? (task.script.shift() as BflStatus) : task.script[0];
    if (status === "Ready") {
      const expiry = new Date(Date.now() + sim.resultTtlMs).toISOString().replace(/\.\d+Z$/, "Z");
      const sample = `${sim.baseURL}/results/${id}/sample.${task.format}?se=${encodeURIComponent(expiry)}&sp=r&sig=sim`;
      return { id, status, result: { sample, prompt: task.body.prompt, seed: 42 }, progress: 1 };
    }
    if (status === "Error") return { id, status, result: null, details: { error: "GPU fault" } };
    if (status === "Pending") return { id, status, result: null, progress: 0.4 };
    return { id, status, result: null, details: { "Moderation Reasons": ["Sim"] } };
  }

  /** Like BFL's delivery URLs (Azure blobs): a signed URL past its `se` is a 403 in XML. */
  async function serveResult(
    id: string,
    url: URL,
    reply: (status: number, bytes: Buffer, type: string) => void,
  ) {
    const task = tasks.get(id);
    const expiry = Date.parse(url.searchParams.get("se") ?? "");
    if (!task || !(expiry > Date.now())) {
      const xml =
        "<Error><Code>AuthenticationFailed</Code><Message>Signed expiry time has passed.</Message></Error>";
      return reply(403, Buffer.from(xml), "application/xml");
    }
    const bytes = await sharp({
      create: { width: task.width, height: task.height, channels: 3, background: "#2a6" },
    })
      .toFormat(task.format)
      .toBuffer();
    reply(200, bytes, `image/${task.format}`);
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  sim.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sim.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  return sim;
}

export type BflSimulator = Awaited<ReturnType<typeof startBflSimulator>>;

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
