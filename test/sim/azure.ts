/**
 * A loopback simulator of Azure OpenAI's image API for one resource with named deployments, as
 * strict as the OpenAI one:
 *
 * - `api-key: <apiKey>` or 401 `{"error":{"code":"401","message":"Access denied due to invalid
 *   subscription key or wrong API endpoint. …"}}` (Azure's shape; an `Authorization` header alone
 *   does not count);
 * - v1 URLs `/openai/v1/images/{generations,edits}?api-version=preview|v1` with the deployment in
 *   `model`, and deployment URLs `/openai/deployments/{name}/images/…?api-version=YYYY-MM-DD[-preview]`;
 *   a missing or unknown `api-version` → 400 (Azure's wording), an unknown deployment → 404
 *   `DeploymentNotFound`;
 * - GPT image parameters only: `response_format`, `style` and `moderation` → 400
 *   `unknown_parameter`; `output_format` png or jpeg (no webp); sizes as the deployment's model
 *   takes them (gpt-image-2: multiples of 16, up to 3840, ratio ≤ 3:1, 655,360 to 8,294,400 px);
 * - a prompt containing `forbidden-content` → 400 `content_filter` with `innererror.code:
 *   ResponsibleAIPolicyViolation`; `filtered-image` → 400 `contentFilter` (the image API's
 *   "Generated image was filtered" shape);
 * - real images made with sharp, as `b64_json`, with `usage` as OpenAI reports it.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  closeServer,
  recordRequest,
  type ScriptedReply,
  type SimRequest,
  sendJson,
  solidImage,
} from "./openai-compatible.ts";

export interface AzureSimulatorOptions {
  apiKey?: string;
  /** Deployment name → the model it serves. */
  deployments?: Record<string, "gpt-image-1-mini" | "gpt-image-1.5" | "gpt-image-2">;
}

export interface AzureSimulator {
  /** The resource endpoint, e.g. `http://127.0.0.1:41234` (no `/openai`). */
  readonly endpoint: string;
  readonly apiKey: string;
  readonly requests: SimRequest[];
  delayMs: number;
  failNext(reply: ScriptedReply): void;
  close(): Promise<void>;
}

export const AZURE_SIM_KEY = "0123456789abcdef0123456789abcdef";
const FIXED_SIZES = ["1024x1024", "1536x1024", "1024x1536", "auto"];
const ACCEPTED_FIELDS = [
  "model",
  "prompt",
  "n",
  "size",
  "user",
  "quality",
  "background",
  "output_format",
  "output_compression",
];
const DATED_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;

class AzureError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`Azure ${status}`);
    this.status = status;
    this.body = body;
  }
}

function azureError(status: number, code: string, message: string, param: string | null = null) {
  return new AzureError(status, { error: { code, message, param, type: "invalid_request_error" } });
}

export async function startAzureSimulator(
  options: AzureSimulatorOptions = {},
): Promise<AzureSimulator> {
  const apiKey = options.apiKey ?? AZURE_SIM_KEY;
  const deployments = options.deployments ?? { "hub-image": "gpt-image-2" };
  const scripted: ScriptedReply[] = [];
  const simulator: AzureSimulator = {
    endpoint: "",
    apiKey,
    requests: [],
    delayMs: 0,
    failNext: (reply) => scripted.push(reply),
    close: async () => {},
  };

  const server = createServer(async (request, response) => {
    const gone = new AbortController();
    response.on("close", () => gone.abort());
    const record = await recordRequest(request);
    simulator.requests.push(record);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.reply = { status, body };
      sendJson(response, status, body, { "apim-request-id": "sim", ...headers });
    };
    try {
      if (simulator.delayMs > 0) {
        await sleep(simulator.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) return;
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);
      if (request.headers["api-key"] !== apiKey) {
        throw new AzureError(401, {
          error: {
            code: "401",
            message:
              "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
          },
        });
      }
      const url = new URL(record.path, "http://sim");
      const route =
        /^\/openai\/v1\/images\/(generations|edits)$/.exec(url.pathname) ??
        /^\/openai\/deployments\/([^/]+)\/images\/(generations|edits)$/.exec(url.pathname);
      if (!route || record.method !== "POST") throw azureError(404, "404", "Resource not found");
      const v1 = url.pathname.startsWith("/openai/v1/");
      const version = url.searchParams.get("api-version");
      const versionOk = v1
        ? version === "preview" || version === "v1"
        : DATED_VERSION.test(version ?? "");
      if (!versionOk) {
        throw azureError(
          400,
          "BadRequest",
          version ? "API version not supported" : "Missing required query parameter: api-version",
        );
      }
      const operation = v1 ? route[1] : route[2];
      const fields = operation === "edits" ? formFields(record) : record.json;
      if (!fields) throw azureError(400, "invalid_request_error", "Unreadable body.");
      const deployment = v1 ? String(fields.model ?? "") : decodeURIComponent(route[1] ?? "");
      const model = deployments[deployment];
      if (!model) {
        throw azureError(
          404,
          "DeploymentNotFound",
          "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        );
      }
      send(200, await serve(model, fields, operation === "edits", record));
    } catch (error) {
      if (error instanceof AzureError) send(error.status, error.body);
      else send(500, { error: { code: "InternalServerError", message: "Internal error." } });
    }
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  Object.assign(simulator, {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
  });
  simulator.close = () => closeServer(server);
  return simulator;
}

async function serve(
  model: string,
  fields: Record<string, unknown>,
  edit: boolean,
  record: SimRequest,
) {
  for (const name of Object.keys(fields)) {
    const taken = ACCEPTED_FIELDS.includes(name) || (edit && ["image[]", "mask"].includes(name));
    if (!taken) throw azureError(400, "unknown_parameter", `Unknown parameter: '${name}'.`, name);
  }
  const format = String(fields.output_format ?? "png");
  if (format !== "png" && format !== "jpeg") {
    throw azureError(400, "invalid_value", "output_format must be png or jpeg.", "output_format");
  }
  const size = String(fields.size ?? "1024x1024");
  if (!sizeFits(model, size)) {
    throw azureError(400, "invalid_value", "The size is not supported by this model.", "size");
  }
  if (edit && !record.form?.files.some((file) => file.field === "image[]")) {
    throw azureError(400, "missing_required_parameter", "Missing 'image'.", "image");
  }
  const prompt = String(fields.prompt ?? "");
  if (prompt.includes("forbidden-content")) {
    throw new AzureError(400, {
      error: {
        message:
          "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        type: null,
        param: "prompt",
        code: "content_filter",
        status: 400,
        innererror: {
          code: "ResponsibleAIPolicyViolation",
          content_filter_result: { violence: { filtered: true, severity: "medium" } },
        },
      },
    });
  }
  if (prompt.includes("filtered-image")) {
    throw new AzureError(400, {
      created: Math.floor(Date.now() / 1000),
      error: {
        code: "contentFilter",
        message: "Generated image was filtered as a result of our safety system.",
      },
    });
  }
  const [width, height] = size === "auto" ? [1024, 1024] : size.split("x").map(Number);
  const n = Number(fields.n ?? 1);
  const data = [];
  for (let index = 0; index < n; index++) {
    const bytes = await solidImage(`${prompt}#${index}`, width ?? 1024, height ?? 1024, format);
    data.push({ b64_json: bytes.toString("base64") });
  }
  const textTokens = Math.ceil(prompt.length / 4);
  const imageTokens = edit ? 323 * (record.form?.files.length ?? 0) : 0;
  return {
    created: Math.floor(Date.now() / 1000),
    data,
    output_format: format,
    usage: {
      input_tokens: textTokens + imageTokens,
      input_tokens_details: { image_tokens: imageTokens, text_tokens: textTokens },
      output_tokens: 196 * n,
      total_tokens: textTokens + imageTokens + 196 * n,
    },
  };
}

function sizeFits(model: string, size: string): boolean {
  if (model !== "gpt-image-2") return FIXED_SIZES.includes(size);
  if (size === "auto") return true;
  const [width = 0, height = 0] = size.split("x").map(Number);
  const pixels = width * height;
  return (
    width % 16 === 0 &&
    height % 16 === 0 &&
    Math.max(width, height) <= 3840 &&
    Math.max(width, height) / Math.min(width, height) <= 3 &&
    pixels >= 655_360 &&
    pixels <= 8_294_400
  );
}

function formFields(record: SimRequest): Record<string, unknown> | undefined {
  if (!record.form) return undefined;
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record.form.fields)) {
    fields[name] = name === "n" || name === "output_compression" ? Number(value) : value;
  }
  for (const file of record.form.files) fields[file.field] = true;
  return fields;
}
