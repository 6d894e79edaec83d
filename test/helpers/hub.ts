/**
 * Starts a real hub for tests: the same `buildApp` as main.ts, listening on a loopback port,
 * with a temporary DATA_DIR, an admin key and one client key. Provider settings come from the
 * `env` given (point OPENAI_BASE_URL / GEMINI_BASE_URL at the simulators under test/sim).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/app.ts";
import { issueKey } from "../../src/auth/issue.ts";
import { loadConfig } from "../../src/config.ts";
import type { Database } from "../../src/storage/db/types.ts";

export const TEST_ADMIN_KEY = "test-admin-key-0123456789";

export interface TestHub {
  app: FastifyInstance;
  db: Database;
  /** http://127.0.0.1:PORT, also the PUBLIC_URL of hosted images. */
  url: string;
  dataDir: string;
  /** A client API key. */
  key: string;
  adminKey: string;
  /** Moves the hub's clock (URL expiry tests); starts at the real time. */
  advanceClock(ms: number): void;
  /** Stops the hub and starts it again on the same data (a restart); `app` and `db` change. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestHub(env: Record<string, string | undefined> = {}): Promise<TestHub> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-test-"));
  let offset = 0;
  const clock = () => Date.now() + offset;
  // Listen first on an ephemeral port to learn it, since PUBLIC_URL must name it.
  const probe = await import("node:net").then(
    (net) =>
      new Promise<number>((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as { port: number };
          server.close(() => resolve(port));
        });
      }),
  );
  const url = `http://127.0.0.1:${probe}`;
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: String(probe),
    ADMIN_KEY: TEST_ADMIN_KEY,
    PUBLIC_URL: url,
    LOG_LEVEL: "silent",
    ...env,
  });
  const start = async () => {
    const built = await buildApp(config, { logger: false, clock });
    await built.app.listen({ port: probe, host: "127.0.0.1" });
    return built;
  };
  const { app, db } = await start();
  const { key } = await issueKey(db, { name: "test client", role: "client" });
  const hub: TestHub = {
    app,
    db,
    url,
    dataDir,
    key,
    adminKey: TEST_ADMIN_KEY,
    advanceClock: (ms) => {
      offset += ms;
    },
    restart: async () => {
      await hub.app.close();
      const restarted = await start();
      hub.app = restarted.app;
      hub.db = restarted.db;
    },
    close: async () => {
      await hub.app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return hub;
}
