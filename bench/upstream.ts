/**
 * A loopback stand-in for OpenAI's Images API, fast enough not to be what a benchmark measures.
 *
 * `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart, read in full and
 * discarded) answer like OpenAI: `{"created", "data": [{"b64_json"}, …n]}`, and for GPT image
 * models also `background`, `output_format`, `quality`, `size` and `usage`. The images are real
 * PNGs made once at start: a tiny one (64x64, a few KB) for sizes up to 512x512 and a large one
 * (1024x1024, about 1.5 MB, like a real generation) for anything bigger. Each reply body is built
 * once per shape and then sent as a Buffer with its Content-Length; nothing is logged per request.
 *
 * A request whose `user` is URL_REPLY_USER is answered the way DALL·E answers by default, with
 * `data[].url`: a fresh URL per image on this server (`GET /files/…`, the same PNG bytes). The hub
 * always asks for `b64_json`, but it passes `user` through, so this is how a scenario makes the
 * hub re-host an upstream's URL.
 *
 * @example
 * // As a child process: prints {"port":…} on stdout once it listens.
 * // node bench/upstream.ts --port 0 --key sk-bench-upstream
 * const upstream = await startUpstream({ port: 0, apiKey: "sk-bench-upstream" });
 * await upstream.close();
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import sharp from "sharp";

/** What `GET /v1/models` lists: the models the scenarios use. */
const LISTED_MODELS = ["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-2"];

/** The `user` of a request that should be answered with image URLs instead of base64. */
export const URL_REPLY_USER = "bench-reply-with-url";

export interface UpstreamOptions {
  port: number;
  apiKey: string;
}

export interface Upstream {
  port: number;
  /** Byte sizes of the two images it answers with. */
  imageBytes: { tiny: number; large: number };
  close(): Promise<void>;
}

/** A 32-bit xorshift generator: the same pixels, hence the same PNG sizes, on every run. */
export function noise(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

/**
 * A PNG of gradients with noise of the given amplitude: the noise is what keeps it from
 * compressing to nothing. 1024x1024 at amplitude 8 comes to about 1.5 MB, the size of a real
 * 1024x1024 generation; 1200x1200 at 32 to about 3 MB.
 */
export async function noisyPng(width: number, height: number, amplitude: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  const next = noise(width * 7919 + height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const index = (y * width + x) * 3;
      raw[index] = ((x * 255) / width + (next() % amplitude)) & 255;
      raw[index + 1] = ((y * 255) / height + (next() % amplitude)) & 255;
      raw[index + 2] = (((x + y) * 128) / width + (next() % amplitude)) & 255;
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png({ adaptiveFiltering: true })
    .toBuffer();
}

const TINY_MAX_PIXELS = 512 * 512;
/** Output tokens per image of GPT image models at 1024x1024, by quality (OpenAI's table). */
const OUTPUT_TOKENS: Record<string, number> = { low: 272, medium: 1056, high: 4160 };
const TOKENS_PER_INPUT_IMAGE = 323;

interface Shape {
  gptImage: boolean;
  large: boolean;
  size: string;
  n: number;
  quality: string;
  inputTokens: number;
  inputImageTokens: number;
}

export async function startUpstream(options: UpstreamOptions): Promise<Upstream> {
  const [tiny, large] = await Promise.all([noisyPng(64, 64, 4), noisyPng(1024, 1024, 8)]);
  const base64 = { tiny: tiny.toString("base64"), large: large.toString("base64") };
  const created = Math.floor(Date.now() / 1000);
  const replies = new Map<string, Buffer>();
  let origin = ""; // known once it listens, before the first request

  /** The reply around `data` (a JSON array's text), shaped like OpenAI's for the model. */
  function envelope(shape: Shape, data: string): Buffer {
    if (!shape.gptImage) return Buffer.from(`{"created":${created},"data":${data}}`);
    const outputTokens = (OUTPUT_TOKENS[shape.quality] ?? 1056) * shape.n;
    const inputTokens = shape.inputTokens + shape.inputImageTokens;
    const usage = {
      input_tokens: inputTokens,
      input_tokens_details: {
        image_tokens: shape.inputImageTokens,
        text_tokens: shape.inputTokens,
      },
      output_tokens: outputTokens,
      total_tokens: inputTokens + outputTokens,
    };
    const size = shape.size === "auto" ? "1024x1024" : shape.size;
    return Buffer.from(
      `{"created":${created},"background":"opaque","data":${data},"output_format":"png",` +
        `"quality":"${shape.quality}","size":"${size}","usage":${JSON.stringify(usage)}}`,
    );
  }

  function replyFor(shape: Shape): Buffer {
    const key = JSON.stringify(shape);
    let body = replies.get(key);
    if (body === undefined) {
      const item = `{"b64_json":"${shape.large ? base64.large : base64.tiny}"}`;
      body = envelope(shape, `[${Array.from({ length: shape.n }, () => item).join(",")}]`);
      replies.set(key, body);
    }
    return body;
  }

  /** Each URL is new, like the signed blob URLs OpenAI answers with, so none can be cached. */
  let served = 0;
  function urlReplyFor(shape: Shape): Buffer {
    const kind = shape.large ? "large" : "tiny";
    const items = Array.from(
      { length: shape.n },
      () => `{"url":"${origin}/files/${kind}-${++served}.png"}`,
    );
    return envelope(shape, `[${items.join(",")}]`);
  }

  const server = createServer((request, response) => {
    response.on("error", () => {}); // a client that leaves mid-reply is no news here
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("error", () => {});
    request.on("end", () => {
      try {
        serve(request, response, Buffer.concat(chunks));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        sendError(response, 500, message, "server_error");
      }
    });
  });

  function serve(request: IncomingMessage, response: ServerResponse, body: Buffer): void {
    const path = (request.url ?? "").split("?")[0];
    // The model list the hub reads at start: every model the scenarios name is offered, so the
    // hub calls each as itself (the bench measures the gateway, not a retired model's successor).
    if (request.method === "GET" && path === "/v1/models") {
      const data = LISTED_MODELS.map((id) => ({
        id,
        object: "model",
        created: 0,
        owned_by: "system",
      }));
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ object: "list", data }));
      return;
    }
    if (request.method === "GET" && path?.startsWith("/files/")) {
      const image = path.startsWith("/files/large-") ? large : tiny;
      response.writeHead(200, { "content-type": "image/png", "content-length": image.byteLength });
      response.end(image);
      return;
    }
    const endpoint =
      path === "/v1/images/generations"
        ? "generations"
        : path === "/v1/images/edits"
          ? "edits"
          : "";
    if (request.method !== "POST" || endpoint === "") {
      sendError(response, 404, `Invalid URL (${request.method} ${path})`, "invalid_request_error");
      return;
    }
    const authorization = request.headers.authorization;
    if (authorization !== `Bearer ${options.apiKey}`) {
      sendError(
        response,
        401,
        authorization?.startsWith("Bearer ")
          ? "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
          : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        "invalid_request_error",
        authorization?.startsWith("Bearer ") ? "invalid_api_key" : null,
      );
      return;
    }
    let fields: Record<string, unknown>;
    let inputImages = 0;
    if (endpoint === "generations") {
      try {
        fields = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      } catch {
        sendError(
          response,
          400,
          "We could not parse the JSON body of your request.",
          "invalid_request_error",
        );
        return;
      }
    } else {
      fields = formFields(body, ["model", "prompt", "n", "size", "quality"]);
      inputImages = countOf(body, 'name="image') || 1;
    }
    const model = typeof fields.model === "string" ? fields.model : "dall-e-2";
    const size = typeof fields.size === "string" ? fields.size : "1024x1024";
    const n = Math.min(10, Math.max(1, Number(fields.n ?? 1) || 1));
    const prompt = typeof fields.prompt === "string" ? fields.prompt : "";
    const gptImage = !model.startsWith("dall-e");
    const match = /^(\d+)x(\d+)$/.exec(size);
    const pixels = match ? Number(match[1]) * Number(match[2]) : 1024 * 1024;
    const quality =
      typeof fields.quality === "string" && fields.quality in OUTPUT_TOKENS
        ? fields.quality
        : "medium";
    const shape = {
      gptImage,
      large: pixels > TINY_MAX_PIXELS,
      size,
      n,
      quality: gptImage ? quality : "",
      inputTokens: gptImage ? Math.ceil(prompt.length / 4) : 0,
      inputImageTokens: gptImage ? inputImages * TOKENS_PER_INPUT_IMAGE : 0,
    };
    const reply = fields.user === URL_REPLY_USER ? urlReplyFor(shape) : replyFor(shape);
    response.writeHead(200, {
      "content-type": "application/json",
      "content-length": reply.byteLength,
    });
    response.end(reply);
  }

  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;
  return {
    port,
    imageBytes: { tiny: tiny.byteLength, large: large.byteLength },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function sendError(
  response: ServerResponse,
  status: number,
  message: string,
  type: string,
  code: string | null = null,
): void {
  const body = JSON.stringify({ error: { message, type, param: null, code } });
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
}

/** The text fields of a multipart body, found by name; the files around them are skipped. */
function formFields(body: Buffer, names: string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const name of names) {
    const marker = `name="${name}"\r\n\r\n`;
    const start = body.indexOf(marker);
    if (start === -1) continue;
    const from = start + marker.length;
    const end = body.indexOf("\r\n--", from);
    if (end !== -1) fields[name] = body.toString("utf8", from, end);
  }
  return fields;
}

function countOf(body: Buffer, text: string): number {
  let count = 0;
  for (let at = body.indexOf(text); at !== -1; at = body.indexOf(text, at + text.length)) count++;
  return count;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      key: { type: "string", default: "sk-bench-upstream" },
    },
  });
  const upstream = await startUpstream({ port: Number(values.port), apiKey: values.key });
  process.stdout.write(
    `${JSON.stringify({ port: upstream.port, imageBytes: upstream.imageBytes })}\n`,
  );
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      upstream.close().finally(() => process.exit(0));
    });
  }
}
