/**
 * The floor: the least a Node.js gateway can do per request, measured beside the hub so that
 * the hub's figures read as ratios to what Node itself can reach on the same machine in the same
 * run. A plain `node:http` server passes every request to the upstream with the upstream's key,
 * over a keep-alive undici Agent, in one of three modes:
 *
 *   stream        the upstream's reply body is piped to the client as it arrives
 *   buffered      the whole reply is read first (as a gateway that checks it must), then sent
 *                 with its Content-Length; its chunks are written as they came, no copy
 *   buffered-row  buffered, plus one INSERT per request into a SQLite table shaped like the
 *                 hub's usage_records (text UUID key, three secondary indexes, WAL, one commit
 *                 per request), written before the reply like the hub's ledger row
 *
 * It prints {"port":…} on stdout once it listens. Errors go to stderr as pino-like JSON lines
 * (level 50), which the bench counts like the hub's.
 *
 * @example
 * node bench/floor.ts --mode buffered-row --upstream http://127.0.0.1:41234 --key sk-… --db /tmp/f.db
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { Agent, type Dispatcher, request } from "undici";

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "stream" },
    upstream: { type: "string", default: "http://127.0.0.1:8080" },
    key: { type: "string", default: "sk-bench-upstream" },
    port: { type: "string", default: "0" },
    db: { type: "string", default: ":memory:" },
  },
});
const mode = values.mode;
if (mode !== "stream" && mode !== "buffered" && mode !== "buffered-row") {
  throw new Error(`--mode is stream, buffered or buffered-row, not ${mode}`);
}
const agent = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
const insertRow = mode === "buffered-row" ? await usageTable(values.db) : undefined;

/**
 * The hub's usage_records as migrations 1 to 5 leave it (src/storage/db/migrations.ts), copied
 * rather than imported so that the floor stays put while the hub's schema changes. The hub's two
 * partial indexes (requested_model, app) cover only non-null values, which its bench rows lack.
 */
async function usageTable(file: string) {
  // Imported here so that the other modes' idle memory does not carry SQLite.
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(file);
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
    CREATE TABLE usage_records (id TEXT PRIMARY KEY, key_id TEXT NOT NULL, model TEXT NOT NULL,
      requested_model TEXT, app TEXT, provider TEXT NOT NULL, images_requested INTEGER NOT NULL,
      images_delivered INTEGER NOT NULL, size TEXT, quality TEXT, response_format TEXT NOT NULL,
      status TEXT NOT NULL, error_code TEXT, latency_ms INTEGER NOT NULL,
      upstream_latency_ms INTEGER, cost_micros BIGINT NOT NULL DEFAULT 0, input_tokens INTEGER,
      output_tokens INTEGER, created_at BIGINT NOT NULL);
    CREATE INDEX usage_records_key_time ON usage_records (key_id, created_at);
    CREATE INDEX usage_records_time ON usage_records (created_at);
    CREATE INDEX usage_records_model_time ON usage_records (model, created_at);`);
  const insert = db.prepare(`INSERT INTO usage_records (id, key_id, model, requested_model, app,
    provider, images_requested, images_delivered, size, quality, response_format, status,
    error_code, latency_ms, upstream_latency_ms, cost_micros, input_tokens, output_tokens,
    created_at) VALUES (?, ?, ?, NULL, NULL, 'openai', ?, ?, ?, NULL, ?, ?, NULL, ?, ?, 0, NULL,
    NULL, ?)`);
  return (body: Buffer, status: number, started: number, upstreamMs: number) => {
    // A gateway reads the request to fill its row; the plain modes never parse it.
    const text = body.toString("utf8");
    const fields: Record<string, unknown> = text ? JSON.parse(text) : {};
    const n = Number(fields.n ?? 1);
    const ok = status >= 200 && status < 300;
    const latencyMs = Math.round(performance.now() - started);
    insert.run(
      randomUUID(),
      "floor",
      String(fields.model),
      n,
      ok ? n : 0,
      String(fields.size ?? "1024x1024"),
      String(fields.response_format ?? "url"),
      ok ? "ok" : "failed",
      latencyMs,
      Math.round(upstreamMs),
      Date.now(),
    );
  };
}

/** A stream's chunks, by events: async iteration would cost a promise or two per chunk. */
function readAll(stream: Readable): Promise<{ chunks: Buffer[]; length: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    stream.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.byteLength;
    });
    stream.once("end", () => resolve({ chunks, length }));
    stream.once("error", reject);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const { chunks: parts } = await readAll(req);
  const body = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  const reply = await request(`${values.upstream}${req.url}`, {
    method: req.method as Dispatcher.HttpMethod,
    headers: {
      authorization: `Bearer ${values.key}`,
      "content-type": req.headers["content-type"] ?? "application/json",
    },
    body: body.length > 0 ? body : undefined,
    dispatcher: agent,
  });
  // The load generator closes its connections when a round ends: no news, and no reply to send.
  if (res.destroyed) return discard(reply.body);
  const headers: Record<string, string | number> = {
    "content-type": String(reply.headers["content-type"] ?? "application/json"),
  };
  if (mode === "stream") {
    const length = reply.headers["content-length"];
    if (length !== undefined) headers["content-length"] = String(length);
    res.writeHead(reply.statusCode, headers);
    // pipe() rather than pipeline(): the least machinery per request. It leaves the upstream's
    // body open when the client leaves, hence the close handler.
    reply.body.pipe(res);
    res.once("close", () => {
      if (!res.writableFinished) discard(reply.body);
    });
    reply.body.once("error", (error) => {
      if (res.destroyed) return; // discarded: the client left
      logError(error);
      res.destroy();
    });
    return;
  }
  const { chunks, length } = await readAll(reply.body);
  insertRow?.(body, reply.statusCode, started, performance.now() - started);
  if (res.destroyed) return;
  headers["content-length"] = length;
  res.writeHead(reply.statusCode, headers);
  // Corked, the chunks leave in as few socket writes as the kernel takes; end() uncorks.
  res.cork();
  for (const chunk of chunks) res.write(chunk);
  res.end();
}

/** undici turns destroy() into an "aborted" error event, which would crash us unheard. */
function discard(body: Readable): void {
  body.on("error", () => {});
  body.destroy();
}

function logError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = { level: 50, msg: "floor request failed", err: { message } };
  process.stderr.write(`${JSON.stringify(line)}\n`);
  return message;
}

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  handle(req, res).catch((error: unknown) => {
    if (res.destroyed) return; // the client left first
    const message = logError(error);
    if (res.headersSent) return void res.destroy();
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message, type: "server_error", param: null, code: null } }));
  });
});
server.listen(Number(values.port), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    void agent.close().finally(() => process.exit(0));
  });
}
