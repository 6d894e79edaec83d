/**
 * S3 on loopback for tests: s3rver in a temporary directory, a recording proxy to see the
 * exact requests the SDK sends, and small fake servers for failures s3rver cannot show.
 * Buckets are created here, by the test, never by the store under test.
 */

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { s3ClientConfig } from "../../src/storage/blobs/s3.ts";

/** s3rver's built-in account; with SigV4 it checks the access key id, not the signature. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
export const TEST_REGION = "us-east-1";

export interface TestS3Server {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** A client for `endpoint` (or another one) with the store's own settings. */
  client(options?: { endpoint?: string; accessKeyId?: string }): S3Client;
  createBucket(name: string): Promise<void>;
  close(): Promise<void>;
}

// s3rver runs in a child process because its ListObjectsV2 continuation tokens use DES, which
// OpenSSL 3 only offers through its legacy provider: in this process, a listing that needs a
// second page fails with 500 InternalError. The child also exits when this process does.
const S3RVER_SCRIPT = `
const S3rver = require(process.argv[1]);
const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: process.argv[2] });
server.run().then(
  ({ port }) => process.stdout.write(JSON.stringify({ port }) + "\\n"),
  (error) => { console.error(error); process.exit(1); },
);
process.stdin.on("end", () => process.exit(0)).resume();
`;

export async function startS3Server(): Promise<TestS3Server> {
  const directory = await mkdtemp(join(tmpdir(), "image-hub-s3rver-"));
  const s3rverPath = createRequire(import.meta.url).resolve("s3rver");
  const child = spawn(
    process.execPath,
    ["--openssl-legacy-provider", "-e", S3RVER_SCRIPT, s3rverPath, directory],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const exited = once(child, "exit");
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("s3rver did not start within 10 s")), 10_000);
    child.once("exit", (code) => reject(new Error(`s3rver exited with ${code}`)));
    createInterface({ input: child.stdout }).once("line", (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { port: number }).port);
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  const client = (options: { endpoint?: string; accessKeyId?: string } = {}) => {
    const made = new S3Client({
      ...s3ClientConfig({ forcePathStyle: true }),
      endpoint: options.endpoint ?? endpoint,
      region: TEST_REGION,
      credentials: {
        ...S3RVER_CREDENTIALS,
        accessKeyId: options.accessKeyId ?? S3RVER_CREDENTIALS.accessKeyId,
      },
    });
    clients.push(made);
    return made;
  };
  const admin = client();
  return {
    endpoint,
    client,
    async createBucket(name) {
      await admin.send(new CreateBucketCommand({ Bucket: name }));
    },
    async close() {
      for (const made of clients) made.destroy();
      child.stdin.end();
      await exited;
      await rm(directory, { recursive: true, force: true });
    },
  };
}

export interface RecordedRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  /** How many body bytes arrived. */
  bodyLength: number;
  /** The body, when it is at most 1 MB. */
  body?: Buffer;
}

export interface RecordingProxy {
  endpoint: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** Forwards everything to `target` and records each request as it arrived. */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const upstream = new URL(target);
  const requests: RecordedRequest[] = [];
  const server = createServer((incoming, outgoing) => {
    const record: RecordedRequest = {
      method: incoming.method ?? "",
      url: incoming.url ?? "",
      headers: incoming.headers,
      bodyLength: 0,
    };
    requests.push(record);
    const chunks: Buffer[] = [];
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    forward.on("error", () => outgoing.destroy());
    incoming.on("data", (chunk: Buffer) => {
      record.bodyLength += chunk.length;
      if (record.bodyLength <= 1024 * 1024) chunks.push(chunk);
    });
    incoming.on("end", () => {
      if (record.bodyLength <= 1024 * 1024) record.body = Buffer.concat(chunks);
    });
    incoming.pipe(forward);
  });
  return { endpoint: await listen(server), requests, close: () => closeServer(server) };
}

/**
 * A server that answers every request with `status` and an S3-style XML error (HEAD gets no
 * body, as from S3), or never answers when `status` is undefined.
 */
export async function startFakeS3(status: number | undefined): Promise<{
  endpoint: string;
  close(): Promise<void>;
}> {
  const server = createServer((incoming, outgoing) => {
    incoming.resume();
    if (status === undefined) return;
    const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`;
    outgoing.writeHead(status, { "content-type": "application/xml" });
    outgoing.end(incoming.method === "HEAD" ? undefined : body);
  });
  return { endpoint: await listen(server), close: () => closeServer(server) };
}

/** A loopback port with nothing listening on it. */
export async function unusedEndpoint(): Promise<string> {
  const server = createServer();
  const endpoint = await listen(server);
  await closeServer(server);
  return endpoint;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Sets environment variables (undefined removes one) and returns a function restoring them. */
export function withEnv(values: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
  const apply = (from: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(from)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(values);
  return () => apply(saved);
}
