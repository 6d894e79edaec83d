/**
 * The hub as its own process, started the way `npm start` starts it (`node src/main.ts`), for
 * tests of what only a process has: signals, exit codes, a kill -9 and a restart on the same
 * data. The environment is only what the test gives (plus PATH and HOME), so a developer's
 * OPENAI_API_KEY or DATABASE_URL cannot leak in.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import path from "node:path";

const MAIN = path.join(import.meta.dirname, "..", "..", "src", "main.ts");

export interface HubProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (null when a signal ended it) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A start that ended before the hub listened: its exit and everything it wrote. */
export class HubExitedEarly extends Error {
  readonly exit: { code: number | null; signal: NodeJS.Signals | null };
  readonly output: string;

  constructor(exit: { code: number | null; signal: NodeJS.Signals | null }, output: string) {
    super(`the hub exited before listening (${JSON.stringify(exit)}):\n${output}`);
    this.name = "HubExitedEarly";
    this.exit = exit;
    this.output = output;
  }
}

/** A port free right now on 127.0.0.1 (the hub must know its port before it listens). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts `node src/main.ts` with `env` and waits until it listens (its banner); rejects with
 * `HubExitedEarly` when the process ends first.
 *
 * @example
 * const hub = await startHubProcess({ DATA_DIR: dir, ADMIN_KEY: "admin-key" });
 * await fetch(`${hub.url}/healthz`);
 * await hub.stop("SIGTERM");
 */
export async function startHubProcess(
  env: Record<string, string>,
  options: { port?: number } = {},
): Promise<HubProcess> {
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
      // Hubs on a shared database must share a signing secret (config.ts); tests give one.
      ...(env.DATABASE_URL ? { URL_SIGNING_SECRET: "test-url-signing-secret-0123456789" } : {}),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  // "close", not "exit": by then the pipes are drained, so `output` holds the last lines too.
  const exited = once(child, "close").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const listening = new Promise<void>((resolve) => {
    const onData = () => {
      if (!output.includes("image-hub listens on")) return;
      child.stdout?.off("data", onData);
      resolve();
    };
    child.stdout?.on("data", onData);
  });
  const outcome = await Promise.race([listening.then(() => "listening" as const), exited]);
  if (outcome !== "listening") throw new HubExitedEarly(outcome, output);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    output: () => output,
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * A JSON request to a hub (a process or an in-process test hub) with `key` as bearer token, or
 * none for null; the reply's status and parsed body.
 *
 * @example
 * const created = await callHub(hub, "POST", "/api/admin/keys", { key: adminKey, body: { name: "a" } });
 */
export async function callHub(
  hub: { url: string },
  method: string,
  path: string,
  options: { key: string | null; body?: unknown },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { key, body } = options;
  const response = await fetch(`${hub.url}${path}`, {
    method,
    headers: {
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
