/**
 * A loopback upstream that misbehaves on request: a real `node:http` server at 127.0.0.1 that
 * speaks enough of OpenAI's Images API (`POST /v1/images/generations`, `POST /v1/images/edits`)
 * to serve the hub, and answers the requests it is told to with a fault instead.
 *
 * Faults (`inject(fault, times)`, used in the order the requests arrive; `"always"` until
 * `clearFaults()`):
 *
 * - `status`: any status, with `Retry-After` when given, and OpenAI's error body (or `body`);
 * - `malformedJson`: 200 with a complete body (right Content-Length) that is not JSON;
 * - `truncated`: 200 declaring the whole reply's Content-Length, half of it sent, then the
 *   socket is closed (FIN);
 * - `slowHeaders`: the normal reply, `ms` late;
 * - `slowBody`: headers and a first piece at once, then the rest trickled evenly over `ms`
 *   (each gap short, so only a budget for the whole call catches it) or, with `stall`, held
 *   back until `ms` has passed;
 * - `reset`: the request is read, then the connection is reset (RST), nothing is answered;
 * - `oversized`: 200 with a JSON reply of `bytes` bytes, with a Content-Length or, `chunked`,
 *   without one.
 *
 * Any other request is served: `n` copies of a real 8×8 PNG (made with sharp) as `b64_json`,
 * `revised_prompt` for dall-e-3, `usage` for GPT image models. Any bearer key is taken and
 * recorded, since the tests check that the hub's key does not leak, not that it is right.
 *
 * `GET /v1/models`, which the hub reads at start to learn which models exist, lists every
 * OpenAI model the hub knows (so each is called as itself); it takes no fault and is not
 * recorded, so the faults and requests of a test are only its image calls.
 *
 * Every request is recorded with its path, headers, body size, the fault it got and how the
 * exchange ended (`outcome`, and the `settled` promise): `answered` (the reply was written out),
 * `cut` (the fault closed the connection on purpose) or `aborted` (the client, i.e. the hub,
 * closed it before the reply was finished: what a cancelled or timed-out call looks like here).
 * A fault that waits stops waiting as soon as the client has gone.
 *
 * @example
 * ```ts
 * const upstream = await startFaultyUpstream();
 * const hub = await startTestHub({ OPENAI_API_KEY: "sk-any", OPENAI_BASE_URL: upstream.baseURL });
 * upstream.inject({ kind: "status", status: 503, retryAfter: 7 });
 * // ... the hub's next upstream call gets a 503, the one after a normal reply ...
 * const [call] = upstream.requests;
 * assert.equal(await outcomeWithin(call, 5000), "answered");
 * await upstream.close();
 * ```
 */
import { EventEmitter, once } from "node:events";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";

/** What `GET /v1/models` lists: the OpenAI models of the hub's catalog, retired ones too. */
const LISTED_MODELS = [
  "dall-e-2",
  "dall-e-3",
  "gpt-image-1",
  "gpt-image-1-mini",
  "gpt-image-1.5",
  "gpt-image-2",
];

export type Fault =
  | {
      kind: "status";
      status: number;
      /** Sent as `Retry-After` as given (seconds, or an HTTP date). */
      retryAfter?: number | string;
      /** A string is sent as is; anything else as JSON. OpenAI's error shape by default. */
      body?: unknown;
    }
  | { kind: "malformedJson" }
  | { kind: "truncated" }
  | { kind: "slowHeaders"; ms: number }
  | { kind: "slowBody"; ms: number; stall?: boolean }
  | { kind: "reset" }
  | { kind: "oversized"; bytes: number; chunked?: boolean };

export type Outcome = "pending" | "answered" | "cut" | "aborted";

export interface FaultyUpstreamRequest {
  /** 0 for the first request the server got. */
  index: number;
  method: string;
  /** Path and query, e.g. `/v1/images/generations`. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Bytes of the request body. */
  bodyBytes: number;
  /** The fault it got; undefined when it was served normally. */
  fault: Fault | undefined;
  /** How the exchange ended so far (see the header comment). */
  outcome: Outcome;
  /** Resolves with the final outcome. */
  settled: Promise<Exclude<Outcome, "pending">>;
  /** Resolves once the status line and headers are written (never, if they were not). */
  replyStarted: Promise<void>;
}

export interface FaultyUpstream {
  /** E.g. `http://127.0.0.1:41234/v1`: what the hub takes as OPENAI_BASE_URL. */
  readonly baseURL: string;
  readonly port: number;
  /** Every request received, in order. */
  readonly requests: FaultyUpstreamRequest[];
  /** The next `times` requests get `fault` (after faults queued before); `"always"`: all. */
  inject(fault: Fault, times?: number | "always"): void;
  /** Drops the queued faults and the standing one: requests are served normally again. */
  clearFaults(): void;
  /** Resolves once `count` requests in all have been read whole; rejects after `timeoutMs`. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface FaultyUpstreamOptions {
  /** Listen on this port (e.g. one a test saw refused before); any free one by default. */
  port?: number;
}

/** The pace of a trickled body: far below any budget a test sets, so only the sum exceeds it. */
const TRICKLE_INTERVAL_MS = 50;
const OVERSIZED_CHUNK_BYTES = 16 * 1024;

/**
 * The outcome of `request` once it has settled, or `"pending"` if it has not within `ms`, so a
 * test waiting for a hang-up cannot hang itself.
 */
export async function outcomeWithin(request: FaultyUpstreamRequest, ms: number): Promise<Outcome> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      request.settled,
      sleep(ms, "pending" as const, { signal: timer.signal }),
    ]);
  } finally {
    timer.abort();
  }
}

export async function startFaultyUpstream(
  options: FaultyUpstreamOptions = {},
): Promise<FaultyUpstream> {
  const png = await sharp({
    create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 40, b: 40 } },
  })
    .png()
    .toBuffer();
  const requests: FaultyUpstreamRequest[] = [];
  const queue: Array<{ fault: Fault; left: number }> = [];
  let standing: Fault | undefined;
  const arrivals = new EventEmitter();
  const sockets = new Set<Socket>();
  /** Requests whose body has been read: the ones a fault was chosen for. */
  let received = 0;

  function nextFault(): Fault | undefined {
    const head = queue[0];
    if (!head) return standing;
    head.left -= 1;
    if (head.left <= 0) queue.shift();
    return head.fault;
  }

  const server = createServer((request, response) => {
    void handle(request, response);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  async function handle(request: IncomingMessage, response: ServerResponse) {
    if (request.method === "GET" && request.url === "/v1/models") {
      return sendJson(response, 200, {
        object: "list",
        data: LISTED_MODELS.map((id) => ({ id, object: "model", created: 0, owned_by: "system" })),
      });
    }
    const exchange = track(request, response);
    // A client that leaves (the hub cancelling or timing out) ends any wait at once.
    const gone = new AbortController();
    response.once("close", () => gone.abort());
    try {
      const body = await readBody(request);
      exchange.record.bodyBytes = body.byteLength;
      exchange.record.fault = nextFault();
      received += 1;
      arrivals.emit("request");
      const parameters = await parametersOf(body, request.headers["content-type"] ?? "");
      await answer(exchange, parameters, gone.signal);
    } catch {
      // The client went away mid-request: the close listener has recorded it.
      if (!response.destroyed) response.destroy();
    }
  }

  function track(request: IncomingMessage, response: ServerResponse): Exchange {
    let settle: (outcome: Exclude<Outcome, "pending">) => void = () => {};
    let started: () => void = () => {};
    const record: FaultyUpstreamRequest = {
      index: requests.length,
      method: request.method ?? "GET",
      path: request.url ?? "/",
      headers: request.headers,
      bodyBytes: 0,
      fault: undefined,
      outcome: "pending",
      settled: new Promise((resolve) => {
        settle = resolve;
      }),
      replyStarted: new Promise((resolve) => {
        started = resolve;
      }),
    };
    const end = (outcome: Exclude<Outcome, "pending">) => {
      if (record.outcome !== "pending") return;
      record.outcome = outcome;
      settle(outcome);
    };
    onHeadersWritten(response, started);
    response.once("close", () => end(response.writableFinished ? "answered" : "aborted"));
    requests.push(record);
    // A fault that closes the connection says so first, so its close is not taken for an abort.
    return { record, response, cut: () => end("cut") };
  }

  async function answer(exchange: Exchange, parameters: Record<string, string>, gone: AbortSignal) {
    const { response } = exchange;
    const fault = exchange.record.fault;
    if (!fault) return sendJson(response, 200, normalReply(parameters));
    switch (fault.kind) {
      case "status": {
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter);
        const body = fault.body ?? openAIError(fault.status);
        return sendJson(response, fault.status, body, headers);
      }
      case "malformedJson": {
        // A complete reply with its closing brace missing: well delimited, not JSON.
        const text = JSON.stringify(normalReply(parameters)).slice(0, -1);
        return sendJson(response, 200, text);
      }
      case "truncated": {
        const bytes = Buffer.from(JSON.stringify(normalReply(parameters)));
        response.writeHead(200, jsonHeaders({ "content-length": String(bytes.byteLength) }));
        response.write(bytes.subarray(0, Math.floor(bytes.byteLength / 2)), () => {
          exchange.cut();
          response.socket?.destroy();
        });
        return;
      }
      case "slowHeaders": {
        await sleep(fault.ms, undefined, { signal: gone }).catch(() => {});
        if (gone.aborted) return;
        return sendJson(response, 200, normalReply(parameters));
      }
      case "slowBody":
        return trickle(response, Buffer.from(JSON.stringify(normalReply(parameters))), fault, gone);
      case "reset": {
        exchange.cut();
        response.socket?.resetAndDestroy();
        return;
      }
      case "oversized":
        return sendOversized(response, fault.bytes, fault.chunked === true, gone);
    }
  }

  function normalReply(parameters: Record<string, string>) {
    const count = Number(parameters.n ?? 1);
    const n = Number.isInteger(count) && count >= 1 && count <= 10 ? count : 1;
    const model = parameters.model ?? "dall-e-2";
    const data = Array.from({ length: n }, () => {
      const item: Record<string, string> = { b64_json: png.toString("base64") };
      if (model === "dall-e-3") item.revised_prompt = `A rendering of: ${parameters.prompt ?? ""}`;
      return item;
    });
    const reply: Record<string, unknown> = { created: Math.floor(Date.now() / 1000), data };
    if (model.startsWith("gpt-image")) {
      reply.usage = {
        input_tokens: 10,
        input_tokens_details: { image_tokens: 0, text_tokens: 10 },
        output_tokens: 272 * n,
        total_tokens: 10 + 272 * n,
      };
    }
    return reply;
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    inject(fault, times = 1) {
      if (times === "always") standing = fault;
      else queue.push({ fault, left: times });
    },
    clearFaults() {
      queue.length = 0;
      standing = undefined;
    },
    async waitForRequests(count, timeoutMs = 5000) {
      const timer = new AbortController();
      const deadline = sleep(timeoutMs, undefined, { signal: timer.signal }).then(() => {
        throw new Error(`expected ${count} upstream requests, got ${requests.length}`);
      });
      deadline.catch(() => {});
      try {
        while (received < count) {
          await Promise.race([once(arrivals, "request", { signal: timer.signal }), deadline]);
        }
      } finally {
        timer.abort();
      }
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Pooled keep-alive connections of the hub, and any exchange still trickling.
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}

interface Exchange {
  record: FaultyUpstreamRequest;
  response: ServerResponse;
  cut(): void;
}

/** node:http has no event for it; the reply's headers are what a slow-body test waits for. */
function onHeadersWritten(response: ServerResponse, callback: () => void) {
  const writeHead = response.writeHead.bind(response);
  response.writeHead = ((...args: Parameters<ServerResponse["writeHead"]>) => {
    const result = writeHead(...args);
    callback();
    return result;
  }) as ServerResponse["writeHead"];
}

function jsonHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { "content-type": "application/json", "x-request-id": "req_faulty", ...extra };
}

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  if (response.destroyed) return;
  const text = typeof body === "string" ? body : JSON.stringify(body);
  response.writeHead(
    status,
    jsonHeaders({ ...headers, "content-length": String(Buffer.byteLength(text)) }),
  );
  response.end(text);
}

/** OpenAI's error body for a status, as its API sends it. */
function openAIError(status: number) {
  const message =
    status === 429
      ? "Rate limit reached for images per minute. Please try again later."
      : status >= 500
        ? "The server had an error while processing your request. Sorry about that!"
        : "The request was refused.";
  return {
    error: {
      message,
      type: status === 429 ? "requests" : status >= 500 ? "server_error" : "invalid_request_error",
      param: null,
      code: null,
    },
  };
}

async function trickle(
  response: ServerResponse,
  bytes: Buffer,
  fault: { ms: number; stall?: boolean },
  gone: AbortSignal,
) {
  response.writeHead(200, jsonHeaders({ "content-length": String(bytes.byteLength) }));
  const first = Math.min(16, bytes.byteLength);
  response.write(bytes.subarray(0, first));
  const steps = fault.stall ? 1 : Math.max(1, Math.floor(fault.ms / TRICKLE_INTERVAL_MS));
  const pause = fault.stall ? fault.ms : TRICKLE_INTERVAL_MS;
  const rest = bytes.subarray(first);
  const piece = Math.ceil(rest.byteLength / steps);
  for (let offset = 0; offset < rest.byteLength; offset += piece) {
    await sleep(pause, undefined, { signal: gone }).catch(() => {});
    if (gone.aborted) return;
    response.write(rest.subarray(offset, offset + piece));
  }
  response.end();
}

/** A syntactically valid reply of exactly `bytes` bytes (one huge base64 string), streamed. */
async function sendOversized(
  response: ServerResponse,
  bytes: number,
  chunked: boolean,
  gone: AbortSignal,
) {
  const head = Buffer.from('{"created":1,"data":[{"b64_json":"');
  const tail = Buffer.from('"}]}');
  const padding = Math.max(0, bytes - head.byteLength - tail.byteLength);
  // Without a Content-Length, node:http sends the body chunked.
  response.writeHead(
    200,
    jsonHeaders(
      chunked ? {} : { "content-length": String(head.byteLength + padding + tail.byteLength) },
    ),
  );
  const filler = Buffer.alloc(OVERSIZED_CHUNK_BYTES, "A");
  const pieces = function* () {
    yield head;
    for (let left = padding; left > 0; left -= filler.byteLength) {
      yield left >= filler.byteLength ? filler : filler.subarray(0, left);
    }
    yield tail;
  };
  for (const piece of pieces()) {
    if (gone.aborted || response.destroyed) return;
    if (!response.write(piece)) {
      // Wait for the reader; a reader that hung up ends the wait through `gone`.
      await once(response, "drain", { signal: gone }).catch(() => {});
    }
  }
  if (!gone.aborted) response.end();
}

/** The fields of a JSON or multipart request the normal reply depends on (`model`, `n`). */
async function parametersOf(body: Buffer, contentType: string): Promise<Record<string, string>> {
  const parameters: Record<string, string> = {};
  try {
    if (contentType.startsWith("application/json")) {
      const json = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      for (const [name, value] of Object.entries(json)) parameters[name] = String(value);
    } else if (contentType.startsWith("multipart/form-data")) {
      const form = await new Request("http://127.0.0.1/", {
        method: "POST",
        headers: { "content-type": contentType },
        body: new Uint8Array(body),
      }).formData();
      for (const [name, value] of form) if (typeof value === "string") parameters[name] = value;
    }
  } catch {
    // Unreadable: served with the defaults; the hub's own tests check what it sends.
  }
  return parameters;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
