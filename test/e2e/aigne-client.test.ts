/**
 * AIGNE's own client, `@aigne/aigne-hub` with `@aigne/core`, as the client of a running hub:
 * discovery, generation in each output type, edits, the model list and errors, as an AIGNE
 * application sees them. The hub talks to the OpenAI simulator and fetches client image URLs
 * from a small local server (allowed by IMAGE_FETCH_ALLOW_CIDRS).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { AIGNEHubImageModel } from "@aigne/aigne-hub";
import { AIGNE, type ImageModelOutput } from "@aigne/core";
import sharp from "sharp";
import { issueKey } from "../../src/auth/issue.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type ImageServer, startImageServer } from "../helpers/image-server.ts";
import {
  OPENAI_SHUT_DOWN_MODELS,
  type OpenAISimulator,
  startOpenAISimulator,
} from "../sim/openai.ts";

let sim: OpenAISimulator;
let hub: TestHub;
let images: ImageServer;
let inputPng: Buffer;
/** A key with credit, so charges show in its balance. */
let paying: { id: string; key: string };
const CREDIT_MICROS = 10_000_000;

const aigne = new AIGNE();

function modelFor(model: string | undefined, apiKey = paying.key) {
  return new AIGNEHubImageModel({ baseURL: hub.url, apiKey, ...(model ? { model } : {}) });
}

async function generate(
  model: string | undefined,
  input: Record<string, unknown>,
  apiKey?: string,
): Promise<ImageModelOutput> {
  return aigne.invoke(modelFor(model, apiKey), { prompt: "a red bicycle", ...input } as never);
}

async function dimensionsOf(bytes: Buffer) {
  const { width, height } = await sharp(bytes).metadata();
  return { width, height };
}

async function fetchedFromHub(url: string | undefined): Promise<Buffer> {
  if (!url?.startsWith(`${hub.url}/files/images/`)) assert.fail(`not the hub's image URL: ${url}`);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  return Buffer.from(await response.arrayBuffer());
}

function imageCalls(from: number, endpoint: "generations" | "edits") {
  return sim.requests.slice(from).filter((request) => request.path === `/v1/images/${endpoint}`);
}

async function rejection(action: () => Promise<unknown>): Promise<Error> {
  try {
    await action();
  } catch (error) {
    assert.ok(error instanceof Error, String(error));
    return error;
  }
  assert.fail("expected the client to throw");
}

before(async () => {
  // As OpenAI is today: gpt-image-1, the client's default, is shut down.
  sim = await startOpenAISimulator({ shutDown: OPENAI_SHUT_DOWN_MODELS });
  images = await startImageServer();
  inputPng = images.png;
  hub = await startTestHub({
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    IMAGE_FETCH_ALLOW_CIDRS: "127.0.0.1/32",
  });
  paying = await issueKey(hub.db, {
    name: "aigne app",
    role: "client",
    balanceMicros: CREDIT_MICROS,
  });
});

after(async () => {
  await hub?.close();
  await sim?.close();
  await images?.close();
});

describe("generating through AIGNEHubImageModel", () => {
  it("url: the hub's signed link to a real image of the size asked, and the credits charged", async () => {
    const before = sim.requests.length;
    const result = await generate("gpt-image-2", {
      outputFileType: "url",
      modelOptions: { size: "1024x1536", quality: "low" },
    });
    assert.equal(result.images.length, 1);
    const image = result.images[0];
    assert.equal(image?.type, "url");
    const bytes = await fetchedFromHub(image?.type === "url" ? image.url : undefined);
    assert.deepEqual(await dimensionsOf(bytes), { width: 1024, height: 1536 });
    assert.equal(result.model, "gpt-image-2");

    const calls = imageCalls(before, "generations");
    assert.equal(calls.length, 1);
    assert.deepEqual(
      [calls[0]?.json?.model, calls[0]?.json?.size, calls[0]?.json?.quality],
      ["gpt-image-2", "1024x1536", "low"],
    );
    const [record] = await hub.db.listUsage({ keyId: paying.id, limit: 1 });
    assert.ok(record && record.costMicros > 0, "the image was charged");
    assert.equal(result.usage?.aigneHubCredits, record.costMicros / 1_000_000);
    assert.equal(record.app, `@aigne/aigne-hub:${os.hostname()}`, "the client's id is the app");
  });

  it("file: base64 the client decodes to the image", async () => {
    const result = await generate("gpt-image-2", {
      outputFileType: "file",
      modelOptions: { size: "1024x1024" },
    });
    const image = result.images[0];
    assert.equal(image?.type, "file");
    const data = image?.type === "file" ? image.data : "";
    assert.deepEqual(await dimensionsOf(Buffer.from(data, "base64")), {
      width: 1024,
      height: 1024,
    });
  });

  it("local: a file on the client's disk, written from the hub's URL", async () => {
    const result = await generate("local/placeholder", {
      n: 2,
      outputFileType: "local",
      modelOptions: { size: "320x200" },
    });
    assert.equal(result.images.length, 2);
    for (const image of result.images) {
      assert.equal(image.type, "local");
      const bytes = await readFile(image.type === "local" ? image.path : "");
      assert.deepEqual(await dimensionsOf(bytes), { width: 320, height: 200 });
    }
    assert.equal(result.model, "local/placeholder");
  });

  it("with no model, the client's default openai/gpt-image-1 is served by its successor", async () => {
    const result = await generate(undefined, { outputFileType: "url" });
    assert.equal(result.model, "gpt-image-2");
    const [record] = await hub.db.listUsage({ keyId: paying.id, limit: 1 });
    assert.deepEqual([record?.requestedModel, record?.model], ["gpt-image-1", "gpt-image-2"]);
  });

  it("aignehub/… names reach the hub as its own", async () => {
    const result = await generate("aignehub/local/placeholder", { outputFileType: "url" });
    assert.equal(result.model, "local/placeholder");
  });
});

describe("editing through AIGNEHubImageModel", () => {
  it("a base64 image goes to the provider's edit endpoint as the same picture", async () => {
    const before = sim.requests.length;
    const result = await generate("gpt-image-2", {
      prompt: "make it green",
      image: [{ type: "file", data: inputPng.toString("base64"), mimeType: "image/png" }],
      outputFileType: "file",
    });
    assert.equal(result.images.length, 1);
    const [edit] = imageCalls(before, "edits");
    const file = edit?.form?.files[0];
    assert.ok(file, "the simulator received the image");
    assert.deepEqual(await dimensionsOf(file.bytes), { width: 64, height: 48 });
  });

  it("a URL is fetched by the hub when the client passes it on", async () => {
    const before = sim.requests.length;
    const hits = images.hits();
    await generate("gpt-image-2", {
      prompt: "make it green",
      image: [{ type: "url", url: `${images.url}/input.png` }],
      modelOptions: { preferInputFileType: "url" },
    });
    assert.equal(images.hits(), hits + 1, "the hub fetched the URL, once");
    const [edit] = imageCalls(before, "edits");
    assert.ok(edit?.form?.files[0], "the simulator received the fetched image");
    assert.deepEqual(await dimensionsOf(edit.form.files[0].bytes), { width: 64, height: 48 });
  });
});

describe("errors as the client sees them", () => {
  it("an unknown model: the hub's message", async () => {
    const error = await rejection(() => generate("no-such-model", {}));
    assert.match(error.message, /The model 'no-such-model' does not exist on this hub/);
  });

  it("a wrong key: the hub's message", async () => {
    const error = await rejection(() =>
      generate("local/placeholder", {}, "sk-ih-wrongwrong.wrongwrongwrongwrongwrongwrong"),
    );
    assert.match(error.message, /Incorrect API key provided/);
  });

  it("a refused prompt: the provider's refusal, nothing charged", async () => {
    const [before] = await hub.db.listUsage({ keyId: paying.id, limit: 1 });
    const error = await rejection(() => generate("gpt-image-2", { prompt: "forbidden-content" }));
    assert.match(error.message, /rejected by the safety system/);
    const [record] = await hub.db.listUsage({ keyId: paying.id, limit: 1 });
    assert.notEqual(record?.id, before?.id);
    assert.deepEqual([record?.status, record?.costMicros], ["failed", 0]);
  });
});

describe("the model list", () => {
  it("lists the hub's image models in AIGNE Hub's shape", async () => {
    // The client reads the list from AIGNE_HUB_API_URL, whatever URL the model was given.
    process.env.AIGNE_HUB_API_URL = hub.url;
    const models = await modelFor("local/placeholder").models();
    const names = models.map((model) => model.model);
    assert.ok(names.includes("gpt-image-2"), names.join(", "));
    assert.ok(names.includes("local/placeholder"), names.join(", "));
    for (const model of models) {
      assert.equal(model.type, "image");
      assert.equal(model.status?.available, true);
    }
    const gpt = models.find((model) => model.model === "gpt-image-2");
    assert.equal(gpt?.provider, "openai");
    assert.ok(Number(gpt?.output_credits_per_token) > 0, "a price per image");
  });
});

describe("a ten-line script", () => {
  const run = promisify(execFile);
  for (const model of ["local/placeholder", "gpt-image-2"]) {
    it(`generates with ${model}, given only the hub's URL and a key`, async () => {
      const { stdout } = await run(
        process.execPath,
        ["examples/aigne-image.ts", model, "a lighthouse at dawn"],
        {
          env: {
            PATH: process.env.PATH,
            AIGNE_HUB_API_URL: hub.url,
            AIGNE_HUB_API_KEY: paying.key,
          },
          timeout: 30_000,
        },
      );
      const printed = JSON.parse(stdout) as { model: string; images: Array<{ url: string }> };
      assert.equal(printed.model, model);
      const bytes = await fetchedFromHub(printed.images[0]?.url);
      assert.ok((await dimensionsOf(bytes)).width > 0);
    });
  }
});
