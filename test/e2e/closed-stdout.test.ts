/**
 * A hub whose standard output is closed early (piped into `head -1`, a supervisor's pipe gone)
 * keeps serving, and still shuts down cleanly on SIGTERM: its logs and banner are lost, nothing
 * else is. Before, the banner's EPIPE crashed the start, or a log line's stopped the shutdown
 * halfway and the hub ran on.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../helpers/hub-process.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

describe("a closed stdout", { timeout: 60_000 }, () => {
  let dataDir: string;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-closed-stdout-"));
  });

  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it("neither crashes the hub nor stops its shutdown", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        DATA_DIR: dataDir,
        HOST: "127.0.0.1",
        PORT: String(port),
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let errors = "";
    child.stderr.on("data", (chunk) => {
      errors += chunk;
    });
    const exited = once(child, "close");
    // As `head -1` does: the first line read, the pipe closed, before the banner is written.
    child.stdout.once("data", () => child.stdout.destroy());
    try {
      let served = false;
      for (let i = 0; i < 200 && !served && child.exitCode === null; i += 1) {
        served = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (response) => response.status === 200,
          () => false,
        );
        if (!served) await sleep(50);
      }
      assert.ok(served, `the hub serves with its stdout closed: ${errors}`);
      child.kill("SIGTERM");
      const [code, signal] = await Promise.race([
        exited,
        sleep(15_000).then(() => assert.fail(`no exit after SIGTERM: ${errors}`)),
      ]);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, errors);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
