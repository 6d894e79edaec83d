/**
 * A loopback simulator of an OpenAI-compatible image server with quirks, configured with the same
 * `OpenAICompatibleQuirks` an instance of the adapter takes, so a test can run two side by side,
 * each requiring its own key in its own auth style. Strict where real servers are lenient:
 *
 * - the key in the quirk's auth style (`Authorization: Bearer`, `api-key`, a named header with
 *   its prefix), or 401; with auth `none`, any credential sent is refused too (a server that
 *   takes none must not be handed the hub's keys);
 * - body fields: `model`, `prompt`, the declared params (`width`/`height` for `sizeAs:
 *   width-height`), `response_format` only when the server takes it (`both`), with the quirk's
 *   base64 value or `url`, the fixed `extraBody` fields (required, with their values), and the
 *   names in `extraFields` (vendor options); anything else → 400 `unknown_parameter`;
 * - `POST /images/edits` (multipart, `image[]`, `mask`) only when `edits`; otherwise 404;
 * - replies as the server would: `b64_json` (of the `base64Value` asked, or always for a
 *   `b64_json` server), or `url` pointing at an image this server serves; real images made with
 *   sharp at the asked size, as PNG, or JPEG/WebP when `output_format` asks;
 * - a prompt containing `forbidden-content` → 400 with `policyCode`.
 *
 * Every request is recorded with its parsed body and reply; `delayMs` and `failNext` as in the
 * OpenAI simulator, and a client that hangs up ends the wait.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import type { OpenAICompatibleQuirks } from "../../src/providers/openai-compatible.ts";

export interface SimFile {
  field: string;
  filename: string;
  contentType: string;
  bytes: Buffer;
}

export interface SimRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  json: Record<string, unknown> | undefined;
  form: { fields: Record<string, string>; files: SimFile[] } | undefined;
  reply: { status: number; body: unknown } | undefined;
}

export interface ScriptedReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface CompatibleSimulatorOptions {
  quirks: OpenAICompatibleQuirks;
  apiKey: string;
  /** Vendor option names the server takes as body fields (LocalAI `step`, Together `seed`). */
  extraFields?: readonly string[];
  /** The `error.code` of a content refusal. */
  policyCode?: string;
}

export interface CompatibleSimulator {
  /** E.g. `http://127.0.0.1:41234/v1`. */
  readonly baseURL: string;
  readonly requests: SimRequest[];
  delayMs: number;
  failNext(reply: ScriptedReply): void;
  close(): Promise<void>;
}

class SimError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function startCompatibleSimulator(
  options: CompatibleSimulatorOptions,
): Promise<CompatibleSimulator> {
  const { quirks } = options;
  const served = new Map<string, { bytes: Buffer; contentType: string }>();
  const scripted: ScriptedReply[] = [];
  let origin = "";
  const simulator: CompatibleSimulator = {
    baseURL: "",
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
      sendJson(response, status, body, headers);
    };
    try {
      if (record.method === "GET" && record.path.startsWith("/files/")) {
        const file = served.get(record.path.slice("/files/".length));
        if (!file) throw new SimError(404, "not_found", "No such file.");
        response.writeHead(200, { "content-type": file.contentType });
        response.end(file.bytes);
        record.reply = { status: 200, body: file.bytes };
        return;
      }
      if (simulator.delayMs > 0) {
        await sleep(simulator.delayMs, undefined, { signal: gone.signal }).catch(() => {});
        if (gone.signal.aborted) return;
      }
      const next = scripted.shift();
      if (next) return send(next.status, next.body ?? "", next.headers);
      checkAuth(quirks, options.apiKey, record.headers);
      const editing = record.path === "/v1/images/edits" && quirks.edits;
      if (record.path !== "/v1/images/generations" && !editing) {
        throw new SimError(404, "not_found", `No route ${record.method} ${record.path}.`);
      }
      const fields = editing ? formFields(record) : record.json;
      if (!fields) throw new SimError(400, "invalid_body", "Expected a JSON or multipart body.");
      checkFields(options, fields, editing);
      const prompt = String(fields.prompt ?? "");
      if (prompt.includes("forbidden-content")) {
        throw new SimError(400, options.policyCode ?? "content_policy_violation", "Refused.");
      }
      send(200, await reply(fields, prompt));
    } catch (error) {
      const failure =
        error instanceof SimError ? error : new SimError(500, "server_error", "Server error.");
      send(failure.status, {
        error: { code: failure.code, message: failure.message, type: "invalid_request_error" },
      });
    }
  });

  async function reply(fields: Record<string, unknown>, prompt: string) {
    const [width, height] = sizeOf(quirks, fields);
    const count = Number(fields.n ?? 1);
    const format = String(fields.output_format ?? "png") as "png" | "jpeg" | "webp";
    const asked = fields.response_format;
    const asURL =
      quirks.responseFormat === "url" || (quirks.responseFormat === "both" && asked === "url");
    const data = [];
    for (let index = 0; index < count; index++) {
      const bytes = await solidImage(`${prompt}#${index}`, width, height, format);
      if (asURL) {
        const name = `${randomUUID()}.${format}`;
        served.set(name, { bytes, contentType: `image/${format}` });
        data.push({ url: `${origin}/files/${name}` });
      } else {
        data.push({ b64_json: bytes.toString("base64") });
      }
    }
    return { created: Math.floor(Date.now() / 1000), data };
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  Object.assign(simulator, { baseURL: `${origin}/v1` });
  simulator.close = () => closeServer(server);
  return simulator;
}

function checkAuth(quirks: OpenAICompatibleQuirks, apiKey: string, headers: IncomingHttpHeaders) {
  const credentials = ["authorization", "api-key", "x-api-key"].filter((name) => headers[name]);
  if (quirks.auth === "none") {
    if (credentials.length > 0) throw new SimError(401, "unauthorized", "No key is taken here.");
    return;
  }
  const [header, prefix] =
    quirks.auth === "bearer"
      ? ["authorization", "Bearer "]
      : quirks.auth === "api-key"
        ? ["api-key", ""]
        : [quirks.auth.header.toLowerCase(), quirks.auth.prefix ?? ""];
  if (headers[header] !== `${prefix}${apiKey}`) {
    throw new SimError(401, "invalid_api_key", "Invalid API key.");
  }
}

/** The body fields the server takes, as the quirks declare them. */
function acceptedFields(options: CompatibleSimulatorOptions, editing: boolean): Set<string> {
  const { quirks } = options;
  const names = ["model", "prompt", ...Object.keys(quirks.extraBody ?? {})];
  for (const param of quirks.params) {
    if (param === "size" && quirks.sizeAs === "width-height") names.push("width", "height");
    else names.push(param);
  }
  if (quirks.responseFormat === "both") names.push("response_format");
  if (editing) names.push("image[]", "mask");
  return new Set([...names, ...(options.extraFields ?? [])]);
}

function checkFields(
  options: CompatibleSimulatorOptions,
  fields: Record<string, unknown>,
  editing: boolean,
) {
  const accepted = acceptedFields(options, editing);
  for (const name of Object.keys(fields)) {
    if (!accepted.has(name)) {
      throw new SimError(400, "unknown_parameter", `Unknown parameter: '${name}'.`);
    }
  }
  for (const [name, value] of Object.entries(options.quirks.extraBody ?? {})) {
    if (String(fields[name]) !== String(value)) {
      throw new SimError(400, "invalid_value", `'${name}' must be ${String(value)} here.`);
    }
  }
  const base64Value = options.quirks.base64Value ?? "b64_json";
  if (
    fields.response_format !== undefined &&
    ![base64Value, "url"].includes(String(fields.response_format))
  ) {
    throw new SimError(400, "invalid_value", `response_format takes '${base64Value}' or 'url'.`);
  }
  if (typeof fields.prompt !== "string" || fields.prompt === "") {
    throw new SimError(400, "missing_required_parameter", "prompt required");
  }
}

function sizeOf(quirks: OpenAICompatibleQuirks, fields: Record<string, unknown>): [number, number] {
  if (quirks.sizeAs === "width-height") {
    return [Number(fields.width ?? 1024), Number(fields.height ?? 1024)];
  }
  const match = /^(\d+)x(\d+)$/.exec(String(fields.size ?? "512x512"));
  if (!match) throw new SimError(400, "invalid_size", "size must be WxH.");
  return [Number(match[1]), Number(match[2])];
}

/** A multipart request's fields (numbers as numbers), files by field name as `true`. */
function formFields(record: SimRequest): Record<string, unknown> | undefined {
  if (!record.form) return undefined;
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record.form.fields)) {
    fields[name] = /^\d+$/.test(value) ? Number(value) : value;
  }
  for (const file of record.form.files) fields[file.field] = true;
  return fields;
}

/** A solid colour of its own per seed text, so two images of a reply differ. */
export async function solidImage(
  seed: string,
  width: number,
  height: number,
  format: "png" | "jpeg" | "webp",
): Promise<Buffer> {
  const [r = 0, g = 0, b = 0] = createHash("sha256").update(seed).digest();
  const background = { r, g, b };
  return sharp({ create: { width, height, channels: 3, background } })
    .toFormat(format)
    .toBuffer();
}

/** Reads and parses a request (JSON or multipart) into a record. */
export async function recordRequest(request: IncomingMessage): Promise<SimRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const path = request.url ?? "/";
  const contentType = request.headers["content-type"] ?? "";
  const record: SimRequest = {
    method: request.method ?? "GET",
    path,
    headers: request.headers,
    json: undefined,
    form: undefined,
    reply: undefined,
  };
  if (contentType.startsWith("application/json")) {
    try {
      record.json = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
    } catch {
      // Left undefined: the handler answers 400.
    }
  } else if (contentType.startsWith("multipart/form-data")) {
    const form = await new Request(`http://127.0.0.1${path}`, {
      method: "POST",
      headers: { "content-type": contentType },
      body: new Uint8Array(raw),
    })
      .formData()
      .catch(() => undefined);
    if (form) {
      record.form = { fields: {}, files: [] };
      for (const [field, value] of form) {
        if (typeof value === "string") record.form.fields[field] = value;
        else {
          const bytes = Buffer.from(await value.arrayBuffer());
          record.form.files.push({ field, filename: value.name, contentType: value.type, bytes });
        }
      }
    }
  }
  return record;
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  if (response.destroyed || response.writableEnded) return;
  const text = typeof body === "string" ? body : JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(text);
}

export function closeServer(server: ReturnType<typeof createServer>): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    // Keep-alive connections of clients (undici pools them) would hold the close open.
    server.closeAllConnections();
  });
}
