/**
 * The official `openai` SDK as the client of a running hub: what a real application sees. The
 * hub talks to the loopback simulators of OpenAI and Google, and fetches client image URLs from
 * a small local server (allowed by IMAGE_FETCH_ALLOW_CIDRS).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI, { toFile } from "openai";
import type { ImageGenerateParamsNonStreaming } from "openai/resources/images";
import sharp from "sharp";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type ImageServer, startImageServer } from "../helpers/image-server.ts";
import { type GoogleSimulator, startGoogleSimulator } from "../sim/google.ts";
import { type OpenAISimulator, type RecordedRequest, startOpenAISimulator } from "../sim/openai.ts";

let sim: OpenAISimulator;
let gsim: GoogleSimulator;
let hub: TestHub;
let client: OpenAI;
let images: ImageServer;
let imageServerUrl: string;
let inputPng: Buffer;

async function dimensionsOf(bytes: Buffer): Promise<{ width: number; height: number }> {
  const { width, height } = await sharp(bytes).metadata();
  return { width, height };
}

async function dimensionsOfBase64(base64: string | undefined) {
  assert.ok(base64, "expected b64_json");
  return dimensionsOf(Buffer.from(base64, "base64"));
}

/** Requests to the simulator's generation or edit endpoint made since `from`. */
function upstreamCalls(from: number, endpoint: "generations" | "edits"): RecordedRequest[] {
  return sim.requests.slice(from).filter((request) => request.path === `/v1/images/${endpoint}`);
}

interface ImagesReply {
  data: Array<{ b64_json: string }>;
  usage?: { total_tokens: number };
}

/** What the simulator answered a request with. */
function replyOf<T = ImagesReply>(request: RecordedRequest | undefined): T {
  assert.ok(request?.reply, "the simulator answered");
  return request.reply.body as T;
}

/** Fetches a hosted URL without any key, as a browser would, and checks what comes back. */
async function fetchHosted(url: string | undefined, expected: { width: number; height: number }) {
  assert.ok(url, "expected a url");
  assert.ok(url.startsWith(`${hub.url}/`), `the hub hosts the image itself: ${url}`);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "image/png");
  const maxAge = /max-age=(\d+)/.exec(response.headers.get("cache-control") ?? "");
  assert.ok(maxAge, `cache-control: ${response.headers.get("cache-control")}`);
  assert.ok(Number(maxAge[1]) <= 3600 && Number(maxAge[1]) > 0, `max-age ${maxAge[1]}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.deepEqual(await dimensionsOf(bytes), expected);
  return bytes;
}

/** Runs `action` and returns the SDK error it must throw. */
async function sdkError(
  action: () => Promise<unknown>,
): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await action();
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `expected an APIError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the SDK to throw");
}

before(async () => {
  sim = await startOpenAISimulator();
  gsim = await startGoogleSimulator();
  images = await startImageServer();
  inputPng = images.png;
  imageServerUrl = images.url;
  hub = await startTestHub({
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    GEMINI_API_KEY: gsim.apiKey,
    GEMINI_BASE_URL: gsim.baseURL,
    IMAGE_FETCH_ALLOW_CIDRS: "127.0.0.1/32",
  });
  client = new OpenAI({ apiKey: hub.key, baseURL: `${hub.url}/v1`, maxRetries: 0 });
});

after(async () => {
  await hub?.close();
  await sim?.close();
  await gsim?.close();
  await images?.close();
});

describe("base URLs", () => {
  for (const suffix of ["/v1", "/api"]) {
    it(`works with baseURL ending in ${suffix}`, async () => {
      const sdk = new OpenAI({ apiKey: hub.key, baseURL: `${hub.url}${suffix}`, maxRetries: 0 });
      const result = await sdk.images.generate({
        model: "local/placeholder",
        prompt: `a test pattern through ${suffix}`,
        size: "320x200",
        response_format: "b64_json",
      });
      assert.equal(result.data?.length, 1);
      assert.deepEqual(await dimensionsOfBase64(result.data?.[0]?.b64_json), {
        width: 320,
        height: 200,
      });
    });
  }
});

describe("models", () => {
  it("lists the hub's models through client.models.list()", async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    for (const id of ["local/placeholder", "dall-e-3", "gpt-image-1", "gemini-2.5-flash-image"]) {
      assert.ok(ids.includes(id), `${id} listed`);
    }
  });
});

describe("response_format url", () => {
  it("hosts a local/placeholder image at the default size behind a URL that needs no key", async () => {
    const result = await client.images.generate({
      model: "local/placeholder",
      prompt: "a lighthouse",
    });
    assert.equal(typeof result.created, "number");
    assert.equal(result.data?.length, 1);
    assert.equal(result.data?.[0]?.b64_json, undefined);
    await fetchHosted(result.data?.[0]?.url, { width: 1024, height: 1024 });
  });

  it("hosts a local/placeholder image at the asked size", async () => {
    const result = await client.images.generate({
      model: "local/placeholder",
      prompt: "a lighthouse, wide",
      size: "640x480",
      response_format: "url",
    });
    await fetchHosted(result.data?.[0]?.url, { width: 640, height: 480 });
  });

  it("hosts a dall-e-3 image from the OpenAI simulator", async () => {
    const from = sim.requests.length;
    const result = await client.images.generate({ model: "dall-e-3", prompt: "a red bicycle" });
    assert.equal(result.data?.length, 1);
    assert.match(result.data?.[0]?.revised_prompt ?? "", /a red bicycle/);
    const bytes = await fetchHosted(result.data?.[0]?.url, { width: 1024, height: 1024 });
    const [call] = upstreamCalls(from, "generations");
    const reply = replyOf(call);
    // The hub asked for base64 upstream and hosts exactly those bytes.
    assert.equal(call?.json?.response_format, "b64_json");
    assert.ok(bytes.equals(Buffer.from(reply.data[0]?.b64_json ?? "", "base64")));
  });

  it("re-hosts an image the upstream answers with as a URL", async () => {
    sim.replyWithUrl = true;
    try {
      const result = await client.images.generate({
        model: "dall-e-3",
        prompt: "a blue bicycle",
        size: "1024x1792",
      });
      assert.ok(!result.data?.[0]?.url?.includes("/sim-images/"), "not the upstream's URL");
      await fetchHosted(result.data?.[0]?.url, { width: 1024, height: 1792 });
    } finally {
      sim.replyWithUrl = false;
    }
  });
});

describe("response_format b64_json", () => {
  it("serves the spec's DALL·E 3 example and passes the base64 through byte for byte", async () => {
    const from = sim.requests.length;
    const result = await client.images.generate({
      model: "dall-e-3",
      prompt: "An oil painting of a futuristic city skyline at sunset, with flying cars",
      n: 1,
      size: "1792x1024",
      quality: "hd",
      style: "vivid",
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 1);
    const b64 = result.data?.[0]?.b64_json;
    assert.deepEqual(await dimensionsOfBase64(b64), { width: 1792, height: 1024 });
    assert.equal(result.data?.[0]?.url, undefined);

    const calls = upstreamCalls(from, "generations");
    assert.equal(calls.length, 1);
    const sent = calls[0]?.json;
    assert.equal(sent?.model, "dall-e-3");
    assert.equal(sent?.response_format, "b64_json");
    assert.equal(sent?.quality, "hd");
    assert.equal(sent?.style, "vivid");
    assert.equal(sent?.size, "1792x1024");
    assert.equal(sent?.n, 1);
    const reply = replyOf(calls[0]);
    assert.equal(b64, reply.data[0]?.b64_json);
  });

  it("fans n=3 for dall-e-3 out to three upstream calls of one image each", async () => {
    const from = sim.requests.length;
    const result = await client.images.generate({
      model: "dall-e-3",
      prompt: "three pears",
      n: 3,
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 3);
    for (const image of result.data ?? []) {
      assert.deepEqual(await dimensionsOfBase64(image.b64_json), { width: 1024, height: 1024 });
    }
    const calls = upstreamCalls(from, "generations");
    assert.equal(calls.length, 3);
    for (const call of calls) assert.equal(call.json?.n, 1);
    const sentImages = new Set(calls.map((call) => replyOf(call).data[0]?.b64_json));
    for (const image of result.data ?? []) assert.ok(sentImages.has(image.b64_json));
  });

  it("does not send response_format to gpt-image-1 and reports its usage", async () => {
    const from = sim.requests.length;
    const result = await client.images.generate({
      model: "gpt-image-1",
      prompt: "a paper crane",
      size: "1536x1024",
      quality: "low",
      response_format: "b64_json",
    });
    assert.deepEqual(await dimensionsOfBase64(result.data?.[0]?.b64_json), {
      width: 1536,
      height: 1024,
    });
    const [call] = upstreamCalls(from, "generations");
    assert.equal(call?.reply?.status, 200);
    assert.equal(call?.json?.model, "gpt-image-1");
    assert.equal("response_format" in (call?.json ?? {}), false);
    assert.equal(call?.json?.quality, "low");
    assert.ok(result.usage, "usage in the reply");
    assert.ok(result.usage.total_tokens > 0);
    assert.equal(result.usage.total_tokens, replyOf(call).usage?.total_tokens);
  });

  it("generates with Gemini 2.5 Flash Image through the Google simulator", async () => {
    const from = gsim.requests.length;
    const result = await client.images.generate({
      model: "google/gemini-2.5-flash-image",
      prompt: "a wide mountain valley",
      size: "1344x768",
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 1);
    assert.deepEqual(await dimensionsOfBase64(result.data?.[0]?.b64_json), {
      width: 1344,
      height: 768,
    });
    const calls = gsim.requests.slice(from);
    assert.equal(calls.length, 1);
    assert.match(calls[0]?.path ?? "", /gemini-2\.5-flash-image:generateContent/);
    assert.equal(result.data?.[0]?.b64_json, calls[0]?.images[0]);
  });

  it("generates two images with Imagen 4 in one upstream call", async () => {
    const from = gsim.requests.length;
    const result = await client.images.generate({
      model: "imagen-4.0-generate-001",
      prompt: "two sailing boats",
      n: 2,
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 2);
    for (const image of result.data ?? []) {
      assert.deepEqual(await dimensionsOfBase64(image.b64_json), { width: 1024, height: 1024 });
    }
    const calls = gsim.requests.slice(from);
    assert.equal(calls.length, 1);
    assert.match(calls[0]?.path ?? "", /imagen-4\.0-generate-001:predict/);
  });

  it("turns an image the upstream answers with as a URL into base64", async () => {
    sim.replyWithUrl = true;
    try {
      const from = sim.requests.length;
      const result = await client.images.generate({
        model: "dall-e-3",
        prompt: "a green bicycle",
        response_format: "b64_json",
      });
      assert.equal(result.data?.[0]?.url, undefined);
      const b64 = result.data?.[0]?.b64_json;
      assert.deepEqual(await dimensionsOfBase64(b64), { width: 1024, height: 1024 });
      const fetched = sim.requests.slice(from).find((r) => r.path.startsWith("/sim-images/"));
      assert.ok(fetched, "the hub fetched the upstream's image");
      assert.equal(b64, replyOf<Buffer>(fetched).toString("base64"));
    } finally {
      sim.replyWithUrl = false;
    }
  });

  it("hosts a gpt-image-1 WebP under its own type", async () => {
    const result = await client.images.generate({
      model: "gpt-image-1",
      prompt: "a webp kite",
      output_format: "webp",
      response_format: "url",
    });
    const url = result.data?.[0]?.url;
    assert.ok(url);
    assert.match(new URL(url).pathname, /\.webp$/);
    const response = await fetch(url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "image/webp");
    const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.equal(metadata.format, "webp");
  });

  it("splits Imagen n=5 into upstream calls of 4 and 1", async () => {
    const from = gsim.requests.length;
    const result = await client.images.generate({
      model: "imagen-4",
      prompt: "five kites",
      n: 5,
      size: "1408x768",
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 5);
    assert.deepEqual(await dimensionsOfBase64(result.data?.[4]?.b64_json), {
      width: 1408,
      height: 768,
    });
    const samples = gsim.requests
      .slice(from)
      .map((request) => (request.body as { parameters: { sampleCount: number } }).parameters)
      .map((parameters) => parameters.sampleCount)
      .sort();
    assert.deepEqual(samples, [1, 4]);
  });

  it("answers with fewer images and says so when Imagen's filter drops some", async () => {
    gsim.filterNext(1);
    const { data: result, response } = await client.images
      .generate({
        model: "imagen-4.0-generate-001",
        prompt: "three lanterns",
        n: 3,
        response_format: "b64_json",
      })
      .withResponse();
    assert.equal(response.status, 200);
    assert.equal(result.data?.length, 2);
    const partial = response.headers.get("x-image-hub-partial") ?? "";
    assert.match(partial, /requested=3; delivered=2/);
    assert.match(response.headers.get("x-image-hub-warnings") ?? "", /filter/);
  });

  it("a Gemini safety block is a content_policy_violation", async () => {
    gsim.blockNext("prompt");
    const error = await sdkError(() =>
      client.images.generate({ model: "nano-banana", prompt: "something blocked" }),
    );
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.code, "content_policy_violation");
  });

  it("hosts Gemini images as URLs too", async () => {
    const result = await client.images.generate({
      model: "gemini-2.5-flash-image",
      prompt: "a tall tower",
      size: "768x1344",
    });
    await fetchHosted(result.data?.[0]?.url, { width: 768, height: 1344 });
  });
});

describe("edits", () => {
  it("passes a multipart edit of gpt-image-1 upstream with the image bytes unchanged", async () => {
    const from = sim.requests.length;
    const result = await client.images.edit({
      model: "gpt-image-1",
      image: await toFile(inputPng, "in.png", { type: "image/png" }),
      prompt: "make it blue",
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 1);
    assert.ok(result.data?.[0]?.b64_json);
    const calls = upstreamCalls(from, "edits");
    assert.equal(calls.length, 1);
    const form = calls[0]?.form;
    assert.equal(form?.fields.prompt, "make it blue");
    assert.equal(form?.fields.model, "gpt-image-1");
    const files = form?.files.filter((file) => file.field === "image[]") ?? [];
    assert.equal(files.length, 1);
    assert.equal(files[0]?.contentType, "image/png");
    assert.ok(files[0]?.bytes.equals(inputPng), "the input image reached the upstream intact");
  });

  it("passes several images, a mask and n of a multipart edit upstream in order", async () => {
    const second = await sharp(inputPng).flop().webp().toBuffer();
    const mask = await sharp({
      create: { width: 64, height: 48, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const from = sim.requests.length;
    const result = await client.images.edit({
      model: "gpt-image-1",
      image: [
        await toFile(inputPng, "first.png", { type: "image/png" }),
        await toFile(second, "second.webp", { type: "image/webp" }),
      ],
      mask: await toFile(mask, "mask.png", { type: "image/png" }),
      prompt: "merge them",
      n: 2,
      size: "1024x1536",
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 2);
    for (const image of result.data ?? []) {
      assert.deepEqual(await dimensionsOfBase64(image.b64_json), { width: 1024, height: 1536 });
    }
    const [call] = upstreamCalls(from, "edits");
    assert.equal(call?.reply?.status, 200);
    assert.equal(call?.form?.fields.n, "2");
    const images = call?.form?.files.filter((file) => file.field === "image[]") ?? [];
    assert.deepEqual(
      images.map((file) => file.contentType),
      ["image/png", "image/webp"],
    );
    assert.ok(images[0]?.bytes.equals(inputPng));
    assert.ok(images[1]?.bytes.equals(second));
    const sentMask = call?.form?.files.find((file) => file.field === "mask");
    assert.ok(sentMask?.bytes.equals(mask));
  });

  it("sends a dall-e-2 edit upstream with its single image as 'image'", async () => {
    const square = await sharp(inputPng).resize(64, 64).png().toBuffer();
    const from = sim.requests.length;
    const result = await client.images.edit({
      model: "dall-e-2",
      image: await toFile(square, "square.png", { type: "image/png" }),
      prompt: "a moustache",
      size: "256x256",
    });
    await fetchHosted(result.data?.[0]?.url, { width: 256, height: 256 });
    const [call] = upstreamCalls(from, "edits");
    assert.equal(call?.reply?.status, 200);
    assert.deepEqual(
      call?.form?.files.map((file) => file.field),
      ["image"],
    );
    assert.ok(call?.form?.files[0]?.bytes.equals(square));
  });

  it("recognises an edit file sent without a type by its bytes", async () => {
    const from = sim.requests.length;
    const result = await client.images.edit({
      model: "gpt-image-1",
      image: await toFile(inputPng, "upload.bin"),
      prompt: "make it green",
      response_format: "b64_json",
    });
    assert.equal(result.data?.length, 1);
    const [call] = upstreamCalls(from, "edits");
    const file = call?.form?.files.find((item) => item.field === "image[]");
    assert.equal(file?.contentType, "image/png");
    assert.ok(file?.bytes.equals(inputPng));
  });

  it("edits with the local placeholder through multipart and answers with a URL", async () => {
    const result = await client.images.edit({
      model: "local/placeholder",
      image: await toFile(inputPng, "in.png", { type: "image/png" }),
      prompt: "a frame around it",
      size: "256x256",
    });
    await fetchHosted(result.data?.[0]?.url, { width: 256, height: 256 });
  });

  it("edits through JSON on /v1/images/generations with a data URL", async () => {
    const from = sim.requests.length;
    const body: ImageGenerateParamsNonStreaming & { image: string } = {
      model: "gpt-image-1",
      prompt: "add a hat",
      image: `data:image/png;base64,${inputPng.toString("base64")}`,
      response_format: "b64_json",
    };
    const result = await client.images.generate(body);
    assert.equal(result.data?.length, 1);
    assert.equal(upstreamCalls(from, "generations").length, 0);
    const [call] = upstreamCalls(from, "edits");
    const file = call?.form?.files.find((item) => item.field === "image[]");
    assert.ok(file?.bytes.equals(inputPng));
  });

  it("edits through JSON with an http URL the hub fetches", async () => {
    const from = sim.requests.length;
    const hits = images.hits();
    const body: ImageGenerateParamsNonStreaming & { image: string } = {
      model: "gpt-image-1",
      prompt: "add a scarf",
      image: `${imageServerUrl}/input.png`,
      response_format: "b64_json",
    };
    const result = await client.images.generate(body);
    assert.equal(result.data?.length, 1);
    assert.equal(images.hits(), hits + 1);
    const [call] = upstreamCalls(from, "edits");
    const file = call?.form?.files.find((item) => item.field === "image[]");
    assert.ok(file?.bytes.equals(inputPng));
  });

  it("edits with Gemini from a data URL, sending the image inline", async () => {
    const from = gsim.requests.length;
    const body: ImageGenerateParamsNonStreaming & { image: string } = {
      model: "gemini-2.5-flash-image",
      prompt: "put it on a beach",
      image: `data:image/png;base64,${inputPng.toString("base64")}`,
      response_format: "b64_json",
    };
    const result = await client.images.generate(body);
    assert.equal(result.data?.length, 1);
    const [request] = gsim.requests.slice(from);
    assert.ok(request);
    const sent = request.body as {
      contents: Array<{ parts: Array<{ inlineData?: { mimeType: string; data: string } }> }>;
    };
    const parts = sent.contents[0]?.parts;
    const inline = parts?.find((part) => part.inlineData)?.inlineData;
    assert.equal(inline?.mimeType, "image/png");
    assert.equal(inline?.data, inputPng.toString("base64"));
  });

  it("edits with local/placeholder from an http URL", async () => {
    const body: ImageGenerateParamsNonStreaming & { image: string[] } = {
      model: "local/placeholder",
      prompt: "a border",
      image: [`${imageServerUrl}/input.png`],
      size: "128x96",
      response_format: "b64_json",
    };
    const result = await client.images.generate(body);
    assert.deepEqual(await dimensionsOfBase64(result.data?.[0]?.b64_json), {
      width: 128,
      height: 96,
    });
  });

  it("refuses an image URL the local server does not have, naming 'image'", async () => {
    const body: ImageGenerateParamsNonStreaming & { image: string } = {
      model: "local/placeholder",
      prompt: "a border",
      image: `${imageServerUrl}/missing.png`,
    };
    const error = await sdkError(() => client.images.generate(body));
    assert.equal(error.status, 400);
    assert.equal(error.param, "image");
  });
});

describe("errors through the SDK's error classes", () => {
  it("n above 10 is a BadRequestError naming n", async () => {
    const error = await sdkError(() =>
      client.images.generate({ model: "local/placeholder", prompt: "x", n: 11 }),
    );
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.status, 400);
    assert.equal(error.param, "n");
    assert.equal(error.type, "invalid_request_error");
  });

  it("a size dall-e-3 does not make is a BadRequestError naming size, with no upstream call", async () => {
    const from = sim.requests.length;
    const error = await sdkError(() =>
      client.images.generate({ model: "dall-e-3", prompt: "x", size: "999x999" }),
    );
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.param, "size");
    assert.equal(error.code, "invalid_size");
    assert.match(error.message, /1792x1024/);
    assert.equal(sim.requests.length, from);
  });

  it("a wrong key is an AuthenticationError", async () => {
    const sdk = new OpenAI({ apiKey: "not-a-key", baseURL: `${hub.url}/v1`, maxRetries: 0 });
    const error = await sdkError(() =>
      sdk.images.generate({ model: "local/placeholder", prompt: "x" }),
    );
    assert.ok(error instanceof OpenAI.AuthenticationError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "invalid_api_key");
    assert.equal(error.type, "authentication_error");
  });

  it("an unknown model is a NotFoundError naming model", async () => {
    const error = await sdkError(() =>
      client.images.generate({ model: "no-such-model", prompt: "x" }),
    );
    assert.ok(error instanceof OpenAI.NotFoundError);
    assert.equal(error.status, 404);
    assert.equal(error.code, "model_not_found");
    assert.equal(error.param, "model");
  });

  it("an edit with dall-e-3 is a BadRequestError naming image, with no upstream call", async () => {
    const from = sim.requests.length;
    const error = await sdkError(async () =>
      client.images.edit({
        model: "dall-e-3",
        image: await toFile(inputPng, "in.png", { type: "image/png" }),
        prompt: "x",
      }),
    );
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.param, "image");
    assert.equal(error.code, "edits_not_supported");
    assert.equal(sim.requests.length, from);
  });

  it("a prompt the upstream refuses is a content_policy_violation", async () => {
    const from = sim.requests.length;
    const error = await sdkError(() =>
      client.images.generate({ model: "dall-e-3", prompt: "a forbidden-content scene" }),
    );
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.status, 400);
    assert.equal(error.code, "content_policy_violation");
    assert.equal(upstreamCalls(from, "generations")[0]?.reply?.status, 400);
  });

  it("a GPT image model's moderation_blocked is a content_policy_violation too", async () => {
    const error = await sdkError(() =>
      client.images.generate({ model: "gpt-image-1", prompt: "forbidden-content" }),
    );
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.code, "content_policy_violation");
  });

  it("an upstream 500 is a 502 in the InternalServerError family", async () => {
    sim.failNext({
      status: 500,
      body: { error: { message: "boom", type: "server_error", param: null, code: null } },
    });
    const error = await sdkError(() => client.images.generate({ model: "dall-e-2", prompt: "x" }));
    assert.ok(error instanceof OpenAI.InternalServerError);
    assert.equal(error.status, 502);
    assert.equal(error.type, "server_error");
  });

  it("an upstream 401 is a 502 that does not show the hub's provider key", async () => {
    sim.failNext({
      status: 401,
      body: {
        error: {
          message: `Incorrect API key provided: ${sim.apiKey}.`,
          type: "invalid_request_error",
          param: null,
          code: "invalid_api_key",
        },
      },
    });
    const error = await sdkError(() => client.images.generate({ model: "dall-e-2", prompt: "x" }));
    assert.ok(error instanceof OpenAI.InternalServerError);
    assert.equal(error.status, 502);
    assert.equal(error.code, "upstream_auth_failed");
    // The hub disabled its credential on that 401; the admin enables it again.
    const enabled = await fetch(`${hub.url}/api/admin/credentials/env:openai`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${hub.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ disabled: false }),
    });
    assert.equal(enabled.status, 200);
    assert.equal(((await enabled.json()) as { status: string }).status, "active");
    assert.ok(!error.message.includes(sim.apiKey));
    assert.ok(!JSON.stringify(error.error).includes(sim.apiKey));
  });

  it("an upstream 429 is a RateLimitError with the upstream's Retry-After", async () => {
    // A wait longer than the model's time budget: the hub passes it on instead of retrying.
    sim.failNext({
      status: 429,
      headers: { "retry-after": "600" },
      body: { error: { message: "Slow down", type: "requests", param: null, code: null } },
    });
    const error = await sdkError(() => client.images.generate({ model: "dall-e-2", prompt: "x" }));
    assert.ok(error instanceof OpenAI.RateLimitError, `${error.status} ${error.message}`);
    assert.equal(error.headers?.get("retry-after"), "600");
  });
});

describe("upstream timeouts", () => {
  let slowSim: OpenAISimulator;
  let slowHub: TestHub;

  before(async () => {
    slowSim = await startOpenAISimulator();
    slowHub = await startTestHub({
      OPENAI_API_KEY: slowSim.apiKey,
      OPENAI_BASE_URL: slowSim.baseURL,
      UPSTREAM_TIMEOUT_MS: "200",
    });
  });

  after(async () => {
    await slowHub?.close();
    await slowSim?.close();
  });

  it("an upstream slower than UPSTREAM_TIMEOUT_MS is a 504 upstream_timeout", async () => {
    slowSim.delayMs = 2000;
    const sdk = new OpenAI({ apiKey: slowHub.key, baseURL: `${slowHub.url}/v1`, maxRetries: 0 });
    const started = Date.now();
    const error = await sdkError(() => sdk.images.generate({ model: "dall-e-2", prompt: "x" }));
    assert.ok(error instanceof OpenAI.InternalServerError);
    assert.equal(error.status, 504);
    assert.equal(error.code, "upstream_timeout");
    assert.ok(Date.now() - started < 1500, "the hub gave up at its own budget");
  });
});
