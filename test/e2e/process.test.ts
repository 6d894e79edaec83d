/**
 * The hub as its own process, as `npm start` runs it: nothing of the test runner's globals can
 * mask a difference (undici's FormData once worked in-process and failed in a real hub).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const ADMIN_KEY = "process-test-admin-key";

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("the hub as a process", { timeout: 60_000 }, () => {
  let sim: OpenAISimulator;
  let hub: ChildProcess;
  let dataDir: string;
  let base: string;
  let output = "";

  before(async () => {
    sim = await startOpenAISimulator();
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-process-"));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    hub = spawn(process.execPath, ["src/main.ts"], {
      env: {
        ...process.env,
        PORT: String(port),
        DATA_DIR: dataDir,
        ADMIN_KEY,
        OPENAI_API_KEY: sim.apiKey,
        OPENAI_BASE_URL: sim.baseURL,
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    hub.stdout?.on("data", (chunk) => {
      output += chunk;
    });
    hub.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    for (let attempt = 0; attempt < 100 && !output.includes("listens on"); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(output, /image-hub listens on/);
  });

  after(async () => {
    if (hub.exitCode === null) hub.kill("SIGKILL");
    await sim?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("edits through the OpenAI provider with a multipart upload upstream", async () => {
    const created = await fetch(`${base}/api/admin/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "process" }),
    });
    const { key } = (await created.json()) as { key: string };
    const input = await sharp({
      create: { width: 32, height: 32, channels: 3, background: "#888" },
    })
      .png()
      .toBuffer();
    const response = await fetch(`${base}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "gpt-image-1",
        prompt: "make it blue",
        image: input.toString("base64"),
        response_format: "b64_json",
      }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const edit = sim.requests.find((request) => request.path.endsWith("/images/edits"));
    assert.ok(edit?.form, "the upstream received a multipart edit");
    assert.ok(edit.form.files[0]?.bytes.equals(input), "with the input image's bytes");
  });

  it("stops on SIGTERM with exit code 0", async () => {
    hub.kill("SIGTERM");
    const [code] = await once(hub, "exit");
    assert.equal(code, 0, output);
  });
});
