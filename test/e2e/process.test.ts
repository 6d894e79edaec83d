/**
 * The hub as its own process, as `npm start` runs it: nothing of the test runner's globals can
 * mask a difference (undici's FormData once worked in-process and failed in a real hub).
 * Shutdown and crashes of the process have files of their own (shutdown.test.ts, crash.test.ts).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { type HubProcess, startHubProcess } from "../helpers/hub-process.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const ADMIN_KEY = "process-test-admin-key";

describe("the hub as a process", { timeout: 60_000 }, () => {
  let sim: OpenAISimulator;
  let hub: HubProcess;
  let dataDir: string;

  before(async () => {
    sim = await startOpenAISimulator();
    dataDir = await mkdtemp(path.join(os.tmpdir(), "image-hub-process-"));
    hub = await startHubProcess({
      DATA_DIR: dataDir,
      ADMIN_KEY,
      OPENAI_API_KEY: sim.apiKey,
      OPENAI_BASE_URL: sim.baseURL,
    });
  });

  after(async () => {
    await hub?.stop("SIGKILL");
    await sim?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("edits through the OpenAI provider with a multipart upload upstream", async () => {
    const created = await fetch(`${hub.url}/api/admin/keys`, {
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
    const response = await fetch(`${hub.url}/v1/images/generations`, {
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

  it("lists the providers in its start banner: the configured ones with their model counts", () => {
    // OPENAI_API_KEY is set, GEMINI_API_KEY is not; local needs no credentials.
    const line = /providers: (.*)/.exec(hub.output())?.[1];
    assert.ok(line, hub.output());
    assert.match(line, /^openai \(\d+ built-in models\), local \(1 built-in model\); /);
    assert.match(line, /google: no credentials \(GEMINI_API_KEY/);
  });

  it("stops on SIGTERM with exit code 0", async () => {
    const { code } = await hub.stop("SIGTERM");
    assert.equal(code, 0, hub.output());
  });
});
