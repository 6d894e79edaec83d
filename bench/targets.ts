/**
 * The things a benchmark drives, each its own child process so that the load generator, the
 * upstream and the gateways never share an event loop: the loopback upstream (bench/upstream.ts),
 * the floor proxies (bench/floor.ts, one process per mode), image-hub (src/main.ts) and the
 * Portkey gateway (headless).
 *
 * Every child started here is tracked; `stopAll` ends them gracefully and `killAllNow` is the
 * synchronous last resort for `process.on("exit")`.
 *
 * @example
 * const upstream = await startUpstream({ logFile });
 * const hub = await startHub({ upstream, logFile });
 * const floor = await startFloor({ upstream, mode: "buffered", logFile });
 * await stopAll();
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;

export interface Child {
  name: string;
  pid: number;
  port: number;
  /** Origin without a trailing slash, e.g. http://127.0.0.1:41234. */
  origin: string;
}

export interface UpstreamTarget extends Child {
  apiKey: string;
  imageBytes: { tiny: number; large: number };
}

export interface HubTarget extends Child {
  /** A client key with no balance (unlimited) and no rate limits. */
  clientKey: string;
  dataDir: string;
}

interface Running {
  name: string;
  process: ChildProcess;
  exited: Promise<void>;
  cleanup: () => void;
  stopping: boolean;
}

const running = new Set<Running>();

export interface UnexpectedExit {
  name: string;
  code: number | null;
  signal: string | null;
  logFile: string;
  logTail: string;
}

/** Children that ended while nobody was stopping them (a crash, the OOM killer, a signal). */
export const unexpectedExits: UnexpectedExit[] = [];

function launch(
  name: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; logFile: string; pipeStdout?: boolean; cleanup?: () => void },
): Running {
  const log = openSync(options.logFile, "a");
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: options.env,
    stdio: ["ignore", options.pipeStdout ? "pipe" : log, log],
  });
  closeSync(log); // the child holds its own descriptor
  const entry: Running = {
    name,
    process: child,
    exited: new Promise((resolve) => child.once("exit", () => resolve())),
    cleanup: options.cleanup ?? (() => {}),
    stopping: false,
  };
  running.add(entry);
  entry.exited.then(() => {
    running.delete(entry);
    if (!entry.stopping) {
      const { exitCode: code, signalCode: signal } = child;
      const logTail = tail(options.logFile, 10);
      unexpectedExits.push({ name, code, signal, logFile: options.logFile, logTail });
    }
    entry.cleanup();
  });
  return entry;
}

/** Rejects when the child exits before `ready` settles, naming its log. */
async function untilReady<T>(entry: Running, logFile: string, ready: Promise<T>): Promise<T> {
  const died = entry.exited.then(() => {
    throw new Error(
      `${entry.name} exited (code ${entry.process.exitCode}, signal ${entry.process.signalCode}) before it was ready; see ${logFile}:\n${tail(logFile)}`,
    );
  });
  return Promise.race([ready, died]);
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** The first line the child prints on stdout: where it listens, once it does. */
function firstLine(entry: Running): Promise<string> {
  const stdout = entry.process.stdout;
  if (stdout === null) throw new Error(`${entry.name} has no stdout`);
  return new Promise<string>((resolve) => {
    let buffered = "";
    stdout.setEncoding("utf8");
    stdout.on("data", (chunk: string) => {
      if (buffered.includes("\n")) return; // keep draining; the first line is all we read
      buffered += chunk;
      const end = buffered.indexOf("\n");
      if (end !== -1) resolve(buffered.slice(0, end));
    });
  });
}

/** A port free right now (the child binds it a moment later; fine on loopback). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no free port");
  return address.port;
}

/** Polls `url` until it answers with `expectStatus`, or throws after the timeout. */
async function poll(url: string, expectStatus = 200): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === expectStatus) return;
      last = `status ${response.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  throw new Error(`${url} was not ready after ${READY_TIMEOUT_MS} ms (${last})`);
}

/** Only what a child needs of our environment: nothing that could point the hub elsewhere. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ["PATH", "HOME", "TMPDIR", "LANG", "TZ"]) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  return env;
}

export async function startUpstream(options: { logFile: string }): Promise<UpstreamTarget> {
  const apiKey = `sk-bench-upstream-${randomBytes(8).toString("hex")}`;
  const entry = launch(
    "upstream",
    [path.join(REPO_ROOT, "bench/upstream.ts"), "--port", "0", "--key", apiKey],
    { env: baseEnv(), logFile: options.logFile, pipeStdout: true },
  );
  const line = await untilReady(entry, options.logFile, firstLine(entry));
  const { port, imageBytes } = JSON.parse(line) as UpstreamTarget;
  const pid = entry.process.pid ?? 0;
  return { name: "upstream", pid, port, origin: `http://127.0.0.1:${port}`, apiKey, imageBytes };
}

/**
 * The V8 and Node flags `npm start` gives the hub (package.json), so that the bench measures the
 * hub as it is deployed; `--env-file…` is left out (the bench sets the environment itself). The
 * floors keep Node's defaults: they are what plain Node reaches.
 */
export function nodeFlagsOfStart(): string[] {
  const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
    scripts?: Record<string, string>;
  };
  const words = (manifest.scripts?.start ?? "").split(/\s+/);
  const script = words.findIndex((word) => word.endsWith(".ts"));
  if (words[0] !== "node" || script === -1) return [];
  return words.slice(1, script).filter((word) => !word.startsWith("--env-file"));
}

export async function startHub(options: {
  upstream: UpstreamTarget;
  logFile: string;
}): Promise<HubTarget> {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), "image-hub-bench-"));
  const adminKey = `sk-bench-admin-${randomBytes(16).toString("hex")}`;
  const origin = `http://127.0.0.1:${port}`;
  const args = [...nodeFlagsOfStart(), path.join(REPO_ROOT, "src/main.ts")];
  const entry = launch("image-hub", args, {
    env: {
      ...baseEnv(),
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      ADMIN_KEY: adminKey,
      OPENAI_API_KEY: options.upstream.apiKey,
      OPENAI_BASE_URL: `${options.upstream.origin}/v1`,
      // The upstream's image URLs (scenario S1) are on loopback, which the guarded fetch refuses
      // unless told otherwise.
      IMAGE_FETCH_ALLOW_CIDRS: "127.0.0.1/32",
      LOG_LEVEL: "warn",
    },
    logFile: options.logFile,
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
  });
  await untilReady(entry, options.logFile, poll(`${origin}/healthz`));
  const response = await fetch(`${origin}/api/admin/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "bench" }),
  });
  const created = (await response.json()) as { key?: string };
  if (!response.ok || typeof created.key !== "string") {
    throw new Error(
      `image-hub did not create a key: ${response.status} ${JSON.stringify(created)}`,
    );
  }
  const pid = entry.process.pid ?? 0;
  return { name: "image-hub", pid, port, origin, clientKey: created.key, dataDir };
}

export type FloorMode = "stream" | "buffered" | "buffered-row";

export async function startFloor(options: {
  upstream: UpstreamTarget;
  mode: FloorMode;
  name: string;
  logFile: string;
}): Promise<Child> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "image-hub-bench-floor-"));
  const args = [path.join(REPO_ROOT, "bench/floor.ts"), "--mode", options.mode];
  args.push("--upstream", options.upstream.origin, "--key", options.upstream.apiKey);
  args.push("--db", path.join(dataDir, "usage.db"));
  const entry = launch(options.name, args, {
    env: baseEnv(),
    logFile: options.logFile,
    pipeStdout: true,
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
  });
  const line = await untilReady(entry, options.logFile, firstLine(entry));
  const { port } = JSON.parse(line) as { port: number };
  const origin = `http://127.0.0.1:${port}`;
  return { name: options.name, pid: entry.process.pid ?? 0, port, origin };
}

export async function startPortkey(options: { logFile: string }): Promise<Child> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const script = path.join(REPO_ROOT, "node_modules/@portkey-ai/gateway/build/start-server.js");
  const entry = launch("portkey", [script, "--headless", `--port=${port}`], {
    env: baseEnv(),
    logFile: options.logFile,
  });
  await untilReady(entry, options.logFile, poll(`${origin}/`));
  return { name: "portkey", pid: entry.process.pid ?? 0, port, origin };
}

/** Ends every child still running: SIGTERM, then SIGKILL after a grace period. */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...running].map(async (entry) => {
      entry.stopping = true;
      entry.process.kill("SIGTERM");
      const timer = setTimeout(() => entry.process.kill("SIGKILL"), STOP_GRACE_MS);
      await entry.exited;
      clearTimeout(timer);
    }),
  );
}

/** For `process.on("exit")`, where nothing asynchronous runs any more. */
export function killAllNow(): void {
  for (const entry of running) {
    entry.stopping = true;
    entry.process.kill("SIGKILL");
    entry.cleanup();
  }
}
