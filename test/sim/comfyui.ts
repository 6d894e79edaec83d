/**
 * A loopback simulator of a ComfyUI server's HTTP API (server.py, execution.py), on a real
 * `node:http` server at 127.0.0.1, for tests of the comfyui provider: `POST /prompt`,
 * `GET /history/{id}`, `GET|POST /queue`, `POST /interrupt`, `POST /upload/image`, `GET /view`.
 *
 * It behaves like the real server where the provider depends on it, and is stricter where the
 * real one is lenient:
 *
 * - workflows are validated as `validate_prompt` does, with its error shapes: an unknown node is
 *   400 `invalid_prompt`, bad inputs 400 `prompt_outputs_failed_validation` with `node_errors`
 *   per node; numbers must be JSON numbers (the real one also converts "1024");
 * - each prompt runs a script of states (`queued`, `running`, `done`, `error`, `lost`), one step
 *   per `GET /history/{id}` (counted); `/history` is `{}` until it ends, `/queue` shows it;
 * - a workflow identical to one already run ends at once with the earlier run's files and makes
 *   no image (ComfyUI's cache); `imagesMade` counts the images really made;
 * - `POST /queue {delete}` removes a queued prompt; `POST /interrupt {prompt_id}` interrupts it
 *   only while it runs (PR #9607); one without `prompt_id` interrupts whatever runs (counted);
 * - images are real PNGs of the EmptyLatentImage size (or the loaded image's), served by `/view`
 *   until `expireFiles()`, then 404;
 * - with `token`, a bearer token is required (ComfyUI has none; a reverse proxy would): 401.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";

export type ComfyStep = "queued" | "running" | "done" | "error" | "lost";

export const SIMULATED_CHECKPOINTS = [
  "sd_xl_base_1.0.safetensors",
  "v1-5-pruned-emaonly.safetensors",
];

/** ComfyUI's default workflow (API format) for SDXL, with the hub's placeholders. */
export const SDXL_WORKFLOW = {
  "3": {
    class_type: "KSampler",
    inputs: {
      seed: "{{seed}}",
      steps: "{{steps|25}}",
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
  },
  "4": {
    class_type: "CheckpointLoaderSimple",
    inputs: { ckpt_name: "sd_xl_base_1.0.safetensors" },
  },
  "5": {
    class_type: "EmptyLatentImage",
    inputs: { width: "{{width|1024}}", height: "{{height|1024}}", batch_size: "{{count}}" },
  },
  "6": { class_type: "CLIPTextEncode", inputs: { text: "{{prompt}}", clip: ["4", 1] } },
  "7": { class_type: "CLIPTextEncode", inputs: { text: "{{negative_prompt}}", clip: ["4", 1] } },
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "image-hub/sdxl", images: ["8", 0] } },
} as const;

type InputSpec =
  | { kind: "link" }
  | { kind: "int" | "float"; min: number; max: number }
  | { kind: "string" }
  | { kind: "combo"; options: () => string[] };

const link = { kind: "link" } as const;
/** The nodes it knows, as `GET /object_info` describes them; LoadImage takes what was uploaded. */
const nodeSpecs = (
  uploaded: string[],
): Record<string, { inputs: Record<string, InputSpec>; output?: true }> => ({
  CheckpointLoaderSimple: {
    inputs: { ckpt_name: { kind: "combo", options: () => SIMULATED_CHECKPOINTS } },
  },
  CLIPTextEncode: { inputs: { text: { kind: "string" }, clip: link } },
  EmptyLatentImage: {
    inputs: {
      width: { kind: "int", min: 16, max: 16384 },
      height: { kind: "int", min: 16, max: 16384 },
      batch_size: { kind: "int", min: 1, max: 4096 },
    },
  },
  KSampler: {
    inputs: {
      seed: { kind: "int", min: 0, max: 2 ** 64 - 1 },
      steps: { kind: "int", min: 1, max: 10000 },
      cfg: { kind: "float", min: 0, max: 100 },
      sampler_name: { kind: "combo", options: () => ["euler", "euler_ancestral", "dpmpp_2m"] },
      scheduler: { kind: "combo", options: () => ["normal", "karras", "simple"] },
      denoise: { kind: "float", min: 0, max: 1 },
      model: link,
      positive: link,
      negative: link,
      latent_image: link,
    },
  },
  VAEDecode: { inputs: { samples: link, vae: link } },
  VAEEncode: { inputs: { pixels: link, vae: link } },
  LoadImage: { inputs: { image: { kind: "combo", options: () => uploaded } } },
  SaveImage: { inputs: { filename_prefix: { kind: "string" }, images: link }, output: true },
});

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  json: Record<string, unknown> | undefined;
  form: FormData | undefined;
}

export interface ScriptedReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface SimPrompt {
  id: string;
  workflow: Record<string, { class_type: string; inputs: Record<string, unknown> }>;
  script: ComfyStep[];
  at: number;
  state: ComfyStep | "cancelled" | "interrupted";
  history: Record<string, unknown> | undefined;
}

export interface ComfyUISimulator {
  readonly baseURL: string;
  readonly requests: RecordedRequest[];
  readonly prompts: Map<string, SimPrompt>;
  /** `GET /history/{id}` requests per prompt id. */
  readonly historyPolls: Map<string, number>;
  readonly deleted: string[];
  readonly interrupted: string[];
  globalInterrupts: number;
  imagesMade: number;
  /** Answer each request this many milliseconds late; stops waiting if the client leaves. */
  delayMs: number;
  /** The states of prompts queued from now on; `["queued", "running", "done"]` by default. */
  script(steps: ComfyStep[]): void;
  failNext(reply: ScriptedReply): void;
  /** Deletes every output file, as an operator cleaning the output folder would. */
  expireFiles(): void;
  close(): Promise<void>;
}

class ServerError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`status ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function startComfyUISimulator(options: { token?: string } = {}) {
  const scripted: ScriptedReply[] = [];
  const files = new Map<string, Buffer>();
  const inputs = new Map<string, Buffer>();
  const uploaded: string[] = [];
  const nodes = nodeSpecs(uploaded);
  const cache = new Map<string, Record<string, unknown>>();
  let steps: ComfyStep[] = ["queued", "running", "done"];
  let number = 0;
  let fileCounter = 0;
  const sim: ComfyUISimulator = {
    baseURL: "",
    requests: [],
    prompts: new Map(),
    historyPolls: new Map(),
    deleted: [],
    interrupted: [],
    globalInterrupts: 0,
    imagesMade: 0,
    delayMs: 0,
    script: (next) => {
      steps = [...next];
    },
    failNext: (reply) => scripted.push(reply),
    expireFiles: () => files.clear(),
    close: async () => {},
  };

  const server = createServer(async (request, response) => {
    const gone = new AbortController();
    response.on("close", () => gone.abort());
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(request.url ?? "/", "http://sim");
    const record: RecordedRequest = {
      method: request.method ?? "GET",
      path: url.pathname + url.search,
      headers: request.headers,
      json: undefined,
      form: undefined,
    };
    sim.requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (response.destroyed || response.writableEnded) return;
      const bytes = Buffer.isBuffer(body);
      const text = typeof body === "string";
      response.writeHead(status, {
        "content-type": bytes
          ? "image/png"
          : text
            ? "text/plain; charset=utf-8"
            : "application/json",
        ...headers,
      });
      response.end(bytes || text ? body : JSON.stringify(body));
    };
    try {
      if (sim.delayMs > 0) {
        await sleep(sim.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) return;
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);
      if (
        options.token !== undefined &&
        request.headers.authorization !== `Bearer ${options.token}`
      ) {
        throw new ServerError(401, "401: Unauthorized");
      }
      const contentType = request.headers["content-type"] ?? "";
      if (request.method === "POST" && contentType.startsWith("application/json")) {
        record.json = JSON.parse(raw.toString("utf8"));
      } else if (request.method === "POST" && contentType.startsWith("multipart/form-data")) {
        record.form = await new Request("http://sim/", {
          method: "POST",
          headers: { "content-type": contentType },
          body: new Uint8Array(raw),
        }).formData();
      }
      send(200, await route(`${request.method} ${url.pathname}`, url, record));
    } catch (error) {
      if (error instanceof ServerError) send(error.status, error.body);
      else send(500, `500 Internal Server Error\n\n${String(error)}`);
    }
  });

  async function route(endpoint: string, url: URL, record: RecordedRequest): Promise<unknown> {
    const historyId = /^GET \/history\/(.+)$/.exec(endpoint)?.[1];
    if (historyId !== undefined) return poll(decodeURIComponent(historyId));
    switch (endpoint) {
      case "POST /prompt":
        return queue(record.json ?? {});
      case "GET /queue": {
        const items = [...sim.prompts.values()];
        const item = (prompt: SimPrompt) => [0, prompt.id, prompt.workflow, {}, ["9"]];
        return {
          queue_running: items.filter((prompt) => prompt.state === "running").map(item),
          queue_pending: items.filter((prompt) => prompt.state === "queued").map(item),
        };
      }
      case "POST /queue":
        for (const id of (record.json?.delete as string[] | undefined) ?? []) {
          const prompt = sim.prompts.get(id);
          if (prompt?.state === "queued") prompt.state = "cancelled";
          sim.deleted.push(id);
        }
        return "";
      case "POST /interrupt": {
        const id = record.json?.prompt_id as string | undefined;
        if (id === undefined) sim.globalInterrupts += 1;
        for (const prompt of sim.prompts.values()) {
          if (prompt.state !== "running" || (id !== undefined && prompt.id !== id)) continue;
          prompt.state = "interrupted";
          prompt.history = ended(prompt, "error", {}, [
            [
              "execution_interrupted",
              { prompt_id: prompt.id, node_id: "3", node_type: "KSampler" },
            ],
          ]);
          sim.interrupted.push(prompt.id);
        }
        return "";
      }
      case "POST /upload/image":
        return upload(record.form);
      case "GET /view": {
        const key = `${url.searchParams.get("type")}/${url.searchParams.get("subfolder")}/${url.searchParams.get("filename")}`;
        const file = files.get(key);
        if (!file) throw new ServerError(404, "");
        return file;
      }
      default:
        throw new ServerError(404, "404: Not Found");
    }
  }

  function queue(body: Record<string, unknown>) {
    for (const key of Object.keys(body)) {
      if (key !== "prompt" && key !== "client_id") throw new ServerError(400, `unexpected ${key}`);
    }
    if (!body.prompt || typeof body.prompt !== "object") {
      const error = {
        type: "no_prompt",
        message: "No prompt provided",
        details: "No prompt provided",
        extra_info: {},
      };
      throw new ServerError(400, { error, node_errors: {} });
    }
    const workflow = body.prompt as SimPrompt["workflow"];
    validate(workflow);
    const id = randomUUID();
    const prompt: SimPrompt = {
      id,
      workflow,
      script: [...steps],
      at: 0,
      state: steps[0] ?? "done",
      history: undefined,
    };
    sim.prompts.set(id, prompt);
    const cached = cache.get(JSON.stringify(workflow));
    if (cached) {
      // ComfyUI's cache: every node's output is known, so it ends at once and makes nothing.
      prompt.state = "done";
      prompt.history = ended(prompt, "success", cached, [
        ["execution_cached", { nodes: Object.keys(workflow), prompt_id: id }],
      ]);
    }
    number += 1;
    return { prompt_id: id, number, node_errors: {} };
  }

  async function poll(id: string) {
    sim.historyPolls.set(id, (sim.historyPolls.get(id) ?? 0) + 1);
    const prompt = sim.prompts.get(id);
    if (!prompt) return {};
    if (prompt.state === "queued" || prompt.state === "running") {
      prompt.at = Math.min(prompt.at + 1, prompt.script.length - 1);
      prompt.state = prompt.script[prompt.at] ?? "done";
      if (prompt.state === "done") {
        const outputs = await render(prompt.workflow);
        cache.set(JSON.stringify(prompt.workflow), outputs);
        prompt.history = ended(prompt, "success", outputs, []);
      } else if (prompt.state === "error") {
        prompt.history = ended(prompt, "error", {}, [
          [
            "execution_error",
            {
              prompt_id: id,
              node_id: "3",
              node_type: "KSampler",
              exception_message:
                "Allocation on device \nThis error means you ran out of memory on your GPU.",
              exception_type: "torch.OutOfMemoryError",
            },
          ],
        ]);
      }
    }
    return prompt.history ? { [id]: prompt.history } : {};
  }

  function ended(
    prompt: SimPrompt,
    status: "success" | "error",
    outputs: unknown,
    messages: unknown[][],
  ) {
    return {
      prompt: [0, prompt.id, prompt.workflow, {}, ["9"]],
      outputs,
      status: {
        status_str: status,
        completed: status === "success",
        messages: [["execution_start", { prompt_id: prompt.id }], ...messages],
      },
      meta: {},
    };
  }

  /** Makes the images of every SaveImage node: real PNGs of the latent's (or input's) size. */
  async function render(workflow: SimPrompt["workflow"]) {
    const latent = Object.values(workflow).find((node) => node.class_type === "EmptyLatentImage");
    const loaded = Object.values(workflow).find((node) => node.class_type === "LoadImage");
    let width = Number(latent?.inputs.width ?? 512);
    let height = Number(latent?.inputs.height ?? 512);
    const batch = Number(latent?.inputs.batch_size ?? 1);
    if (!latent && loaded) {
      const metadata = await sharp(inputs.get(String(loaded.inputs.image))).metadata();
      [width, height] = [metadata.width ?? 512, metadata.height ?? 512];
    }
    const outputs: Record<string, unknown> = {};
    for (const [id, node] of Object.entries(workflow)) {
      if (node.class_type !== "SaveImage") continue;
      const prefix = String(node.inputs.filename_prefix);
      const subfolder = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
      const stem = prefix.slice(prefix.lastIndexOf("/") + 1);
      const images = [];
      for (let index = 0; index < batch; index++) {
        fileCounter += 1;
        const filename = `${stem}_${String(fileCounter).padStart(5, "0")}_.png`;
        // Latents are 1/8 of the image: ComfyUI floors sizes to multiples of 8.
        const png = await sharp({
          create: {
            width: width - (width % 8),
            height: height - (height % 8),
            channels: 3,
            background: { r: (fileCounter * 40) % 256, g: 90, b: 160 },
          },
        })
          .png()
          .toBuffer();
        files.set(`output/${subfolder}/${filename}`, png);
        sim.imagesMade += 1;
        images.push({ filename, subfolder, type: "output" });
      }
      outputs[id] = { images };
    }
    return outputs;
  }

  async function upload(form: FormData | undefined) {
    const image = form?.get("image");
    if (!(image instanceof File) || image.name === "") throw new ServerError(400, "");
    const type = form?.get("type") ?? "input";
    if (type !== "input") throw new ServerError(400, "sim: uploads go to input");
    inputs.set(image.name, Buffer.from(await image.arrayBuffer()));
    uploaded.push(image.name);
    return { name: image.name, subfolder: "", type: "input" };
  }

  function validate(workflow: SimPrompt["workflow"]): void {
    const outputs: string[] = [];
    const nodeErrors: Record<string, unknown> = {};
    for (const [id, node] of Object.entries(workflow)) {
      const spec = nodes[node?.class_type];
      if (!spec) {
        const message = `Cannot execute because node ${node?.class_type} does not exist.`;
        const error = {
          type: "invalid_prompt",
          message,
          details: `Node ID '#${id}'`,
          extra_info: {},
        };
        throw new ServerError(400, { error, node_errors: {} });
      }
      if (spec.output) outputs.push(id);
      const errors = Object.entries(spec.inputs).flatMap(([name, input]) =>
        inputProblem(workflow, name, input, node.inputs?.[name]),
      );
      if (errors.length > 0) {
        nodeErrors[id] = { errors, dependent_outputs: ["9"], class_type: node.class_type };
      }
    }
    if (outputs.length === 0) {
      const error = {
        type: "prompt_no_outputs",
        message: "Prompt has no outputs",
        details: "",
        extra_info: {},
      };
      throw new ServerError(400, { error, node_errors: {} });
    }
    if (Object.keys(nodeErrors).length > 0) {
      const details = Object.values(nodeErrors)
        .flatMap((node) => (node as { errors: { message: string; details: string }[] }).errors)
        .map((error) => `${error.message}: ${error.details}`)
        .join("\n");
      const error = {
        type: "prompt_outputs_failed_validation",
        message: "Prompt outputs failed validation",
        details,
        extra_info: {},
      };
      throw new ServerError(400, { error, node_errors: nodeErrors });
    }
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  Object.assign(sim, { baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  sim.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  return sim;
}

function inputProblem(
  workflow: SimPrompt["workflow"],
  name: string,
  spec: InputSpec,
  value: unknown,
): { type: string; message: string; details: string; extra_info: unknown }[] {
  const problem = (type: string, message: string, details = name) => [
    { type, message, details, extra_info: { input_name: name, received_value: value } },
  ];
  if (value === undefined) return problem("required_input_missing", "Required input is missing");
  if (spec.kind === "link") {
    const ok = Array.isArray(value) && value.length === 2 && String(value[0]) in workflow;
    return ok
      ? []
      : problem(
          "bad_linked_input",
          "Bad linked input, must be a length-2 list of [node_id, slot_index]",
        );
  }
  if (spec.kind === "string") {
    return typeof value === "string"
      ? []
      : problem("invalid_input_type", "Failed to convert an input value to a STRING value");
  }
  if (spec.kind === "combo") {
    const options = spec.options();
    return options.includes(value as string)
      ? []
      : problem(
          "value_not_in_list",
          "Value not in list",
          `${name}: '${String(value)}' not in ${JSON.stringify(options)}`,
        );
  }
  if (typeof value !== "number" || (spec.kind === "int" && !Number.isInteger(value))) {
    return problem(
      "invalid_input_type",
      `Failed to convert an input value to a ${spec.kind.toUpperCase()} value`,
    );
  }
  if (value < spec.min)
    return problem("value_smaller_than_min", `Value ${value} smaller than min of ${spec.min}`);
  if (value > spec.max)
    return problem("value_bigger_than_max", `Value ${value} bigger than max of ${spec.max}`);
  return [];
}
