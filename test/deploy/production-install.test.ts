/**
 * The install a production user makes, on the machine's own Node (not the one the tests run on):
 * `npm ci --omit=dev && npm start` in a copy of the package, with a `.env` file for its settings.
 * It must serve (Node 24 comes with the dependencies, the npm package `node`), and stay lean: no
 * type checker, linter, benchmark peer or test client installed.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cp, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ADMIN_KEY = "production-install-admin-key-0123456789";

/** PATH without any node_modules/.bin, so `npm` and `node` are the machine's own. */
const systemPath = (process.env.PATH ?? "")
  .split(path.delimiter)
  .filter((entry) => !entry.includes(`node_modules${path.sep}.bin`))
  .join(path.delimiter);

function run(command: string, args: string[], cwd: string, timeoutMs: number) {
  return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { PATH: systemPath, HOME: process.env.HOME ?? os.homedir() },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("npm ci --omit=dev && npm start on the system Node", () => {
  let directory: string;
  let hub: ChildProcess | undefined;

  before(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), "image-hub-production-"));
    for (const name of ["package.json", "package-lock.json", "src", "scripts", "console"]) {
      await cp(path.join(ROOT, name), path.join(directory, name), {
        recursive: true,
        // A build made here is not shipped: the install must make its own.
        filter: (source) => !source.includes(`${path.sep}dist`),
      });
    }
  });

  after(async () => {
    // npm runs the hub as a child of its own: end the whole group.
    if (hub?.pid !== undefined && hub.exitCode === null) process.kill(-hub.pid, "SIGKILL");
    await rm(directory, { recursive: true, force: true });
  });

  it("installs only what runs the hub", { timeout: 240_000 }, async () => {
    const installed = await run(
      "npm",
      ["ci", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund"],
      directory,
      230_000,
    );
    assert.equal(installed.code, 0, installed.output);
    const packages = new Set(await readdir(path.join(directory, "node_modules")));
    for (const dev of [
      "typescript",
      "autocannon",
      "openai",
      "fast-check",
      "@biomejs",
      "@portkey-ai",
    ]) {
      assert.ok(!packages.has(dev), `${dev} is not installed for production`);
    }
    for (const needed of ["fastify", "sharp", "node", "pg"])
      assert.ok(packages.has(needed), needed);
    const built = await readdir(path.join(directory, "console", "dist"));
    assert.ok(built.includes("index.html"), "npm ci built the console");
  });

  it("serves with its settings from .env", { timeout: 60_000 }, async () => {
    const port = await freePort();
    await writeFile(
      path.join(directory, ".env"),
      `PORT=${port}\nADMIN_KEY=${ADMIN_KEY}\nDATA_DIR=${path.join(directory, "data")}\n`,
    );
    hub = spawn("npm", ["start"], {
      cwd: directory,
      env: { PATH: systemPath, HOME: process.env.HOME ?? os.homedir() },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    hub.stdout?.on("data", (chunk) => {
      output += chunk;
    });
    hub.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    const deadline = Date.now() + 50_000;
    while (!output.includes("image-hub listens on")) {
      assert.ok(Date.now() < deadline, `the hub did not start:\n${output}`);
      assert.equal(hub.exitCode, null, `the hub exited:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    const models = await fetch(`http://127.0.0.1:${port}/api/admin/models`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    assert.equal(models.status, 200, "the ADMIN_KEY of .env is the admin key");
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<div id="app">/, "the console is served at /");
  });
});
