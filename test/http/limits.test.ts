/**
 * Every bound on what a client may send, against a real hub on loopback with small limits: the
 * body (JSON and multipart, with and without Content-Length), the prompt, the number, bytes and
 * pixels of input images (decompression bombs refused by their header), the parts, fields and
 * files of a form, the length of a field, huge and deep JSON, n, unknown fields.
 *
 * Each refusal is a 400 or 413 in the OpenAI error shape whose message names the limit and whose
 * `param` names the field where there is one. The refused requests name an OpenAI model served by
 * the simulator, and none of them reaches it; the last tests show the hub still serves.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify, { type FastifyInstance } from "fastify";
import sharp from "sharp";
import { handleClientError } from "../../src/http/errors.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { pngBomb } from "../helpers/png-bomb.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

const MAX_BODY_BYTES = 300_000;
const MAX_INPUT_IMAGE_BYTES = 60_000;
const MAX_INPUT_PIXELS = 1_000_000;
/** The form limits that follow from the settings above (src/http/multipart.ts). */
const FORM = { files: 17, fields: 30, parts: 40, fieldBytes: 128_000 };
/** A model that edits, reached through the simulator: a request that got through would show. */
const MODEL = "gpt-image-1";
/** A client gives up on a reply after this long, so a hang fails the test instead of CI. */
const REPLY_TIMEOUT_MS = 10_000;

let sim: OpenAISimulator;
let hub: TestHub;
let smallPng: Buffer;
/** Random pixels do not compress: a PNG over MAX_INPUT_IMAGE_BYTES, under MAX_BODY_BYTES. */
let noisyPng: Buffer;

before(async () => {
  sim = await startOpenAISimulator();
  hub = await startTestHub({
    MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    MAX_INPUT_IMAGE_BYTES: String(MAX_INPUT_IMAGE_BYTES),
    MAX_INPUT_PIXELS: String(MAX_INPUT_PIXELS),
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
  });
  smallPng = await solidPng(16, 16);
  noisyPng = await sharp(randomBytes(150 * 150 * 3), {
    raw: { width: 150, height: 150, channels: 3 },
  })
    .png()
    .toBuffer();
  assert.ok(noisyPng.length > MAX_INPUT_IMAGE_BYTES && noisyPng.length < MAX_BODY_BYTES / 2);
});

after(async () => {
  await hub?.close();
  await sim?.close();
});

/** Upstream calls before the current test: a refusal must add none. */
let upstreamCallsBefore = 0;
beforeEach(() => {
  upstreamCallsBefore = sim.requests.length;
});

interface Reply {
  status: number;
  body: unknown;
}

interface Expected {
  status: 400 | 413;
  code: string;
  param: string | null;
  /** What the message must say: the limit it names. */
  message: RegExp;
}

/** Checks a refusal: status, exactly the OpenAI error shape, code, param, message; no upstream call. */
function assertRefused(reply: Reply, expected: Expected): void {
  assert.equal(reply.status, expected.status, JSON.stringify(reply.body));
  const body = reply.body as { error?: Record<string, unknown> };
  assert.deepEqual(Object.keys(body), ["error"]);
  const error = body.error as Record<string, unknown>;
  assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"]);
  assert.equal(error.type, "invalid_request_error");
  assert.equal(error.code, expected.code);
  assert.equal(error.param, expected.param);
  assert.equal(typeof error.message, "string");
  assert.match(error.message as string, expected.message);
  assert.equal(sim.requests.length, upstreamCallsBefore, "the request reached no upstream");
}

async function send(path: string, body: string | Buffer, contentType: string): Promise<Reply> {
  const response = await fetch(`${hub.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${hub.key}`, "content-type": contentType },
    body,
    signal: AbortSignal.timeout(REPLY_TIMEOUT_MS),
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) };
}

function sendJson(body: unknown, path = "/v1/images/generations"): Promise<Reply> {
  return send(path, typeof body === "string" ? body : JSON.stringify(body), "application/json");
}

interface Part {
  /** Omitted: a part with no Content-Disposition at all. */
  name?: string;
  filename?: string;
  value: string | Buffer;
}

const BOUNDARY = "----image-hub-limits";
const FORM_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

function formBody(parts: Part[]): Buffer {
  const pieces = parts.flatMap((part) => {
    const headers =
      part.name === undefined
        ? "Content-Type: text/plain\r\n"
        : part.filename === undefined
          ? `Content-Disposition: form-data; name="${part.name}"\r\n`
          : `Content-Disposition: form-data; name="${part.name}"; filename="${part.filename}"\r\n` +
            "Content-Type: image/png\r\n";
    return [Buffer.from(`--${BOUNDARY}\r\n${headers}\r\n`), Buffer.from(part.value), "\r\n"];
  });
  return Buffer.concat([
    ...pieces.map((piece) => Buffer.from(piece)),
    Buffer.from(`--${BOUNDARY}--\r\n`),
  ]);
}

function sendForm(parts: Part[], path = "/v1/images/edits"): Promise<Reply> {
  return send(path, formBody(parts), FORM_TYPE);
}

const editFields = (prompt = "a hat"): Part[] => [
  { name: "model", value: MODEL },
  { name: "prompt", value: prompt },
];
const imageFile = (bytes: Buffer, name = "image"): Part => ({
  name,
  filename: "in.png",
  value: bytes,
});

interface RawReply extends Reply {
  headers: Record<string, string>;
}

/**
 * Writes raw bytes on one connection and returns every reply the server wrote on it before
 * closing it. The client never closes first: Node takes that for a client gone.
 */
async function exchange(port: number, bytes: Buffer): Promise<RawReply[]> {
  const received = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.setTimeout(REPLY_TIMEOUT_MS, () => socket.destroy(new Error("no reply in time")));
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", (error) => (chunks.length > 0 ? undefined : reject(error)));
    socket.on("close", () => resolve(Buffer.concat(chunks).toString()));
    socket.write(bytes);
  });
  return received
    .split(/(?=HTTP\/1\.1 \d{3})/)
    .filter(Boolean)
    .map((reply) => {
      const [head = "", body = ""] = reply.split("\r\n\r\n");
      const headers = Object.fromEntries(
        head
          .split("\r\n")
          .slice(1)
          .map((line) => [
            line.slice(0, line.indexOf(":")).toLowerCase(),
            line.slice(line.indexOf(":") + 1).trim(),
          ]),
      );
      return { status: Number(reply.slice(9, 12)), headers, body: JSON.parse(body) };
    });
}

/** The head of a multipart edit request to the hub, and its first (text) part. */
function formHead(contentLength: number, firstPart: string): Buffer {
  return Buffer.from(
    `POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${hub.key}\r\n` +
      `Content-Type: ${FORM_TYPE}\r\nContent-Length: ${contentLength}\r\n\r\n` +
      `--${BOUNDARY}\r\n${firstPart}`,
  );
}

const hubPort = () => Number(new URL(hub.url).port);

interface StreamedReply extends Reply {
  /** Bytes the client had written when the reply arrived. */
  sentWhenAnswered: number;
  /** Whether the client had written (and ended) its whole body by then. */
  finishedSending: boolean;
}

/**
 * Sends a chunked body (no Content-Length) of up to `totalBytes`, a chunk at a time, stopping as
 * soon as the hub answers: a hub that reads without bound answers only after the end.
 */
function sendChunked(
  path: string,
  contentType: string,
  head: Buffer,
  chunk: Buffer,
  totalBytes: number,
): Promise<StreamedReply> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let finished = false;
    let answered = false;
    const request = httpRequest(`${hub.url}${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${hub.key}`,
        "content-type": contentType,
        "transfer-encoding": "chunked",
      },
      timeout: REPLY_TIMEOUT_MS,
    });
    request.on("timeout", () => request.destroy(new Error("no reply in time")));
    request.on("response", (response) => {
      answered = true;
      const sentWhenAnswered = sent;
      const finishedSending = finished;
      const chunks: Buffer[] = [];
      response.on("data", (data: Buffer) => chunks.push(data));
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        resolve({
          status: response.statusCode ?? 0,
          body: JSON.parse(text),
          sentWhenAnswered,
          finishedSending,
        });
        request.destroy();
      });
    });
    // Once answered, the hub closes the connection: writes after that may fail, which is fine.
    request.on("error", (error) => {
      if (!answered) reject(error);
    });
    const write = () => {
      while (!answered && sent < totalBytes) {
        const piece = sent === 0 ? head : chunk;
        sent += piece.length;
        if (!request.write(piece)) {
          request.once("drain", write);
          return;
        }
      }
      if (!answered && !finished) {
        finished = true;
        request.end();
      }
    };
    write();
  });
}

/** A PNG of one colour. */
function solidPng(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: "#3366aa" } })
    .png()
    .toBuffer();
}

const base64 = (bytes: Buffer) => bytes.toString("base64");
const dataUrl = (bytes: Buffer) => `data:image/png;base64,${base64(bytes)}`;

describe("the request body (MAX_BODY_BYTES)", () => {
  const bodyLimit = { status: 413, code: "payload_too_large", param: null } as const;
  const names = new RegExp(`${MAX_BODY_BYTES} bytes`);

  it("refuses a JSON body over it, sent with Content-Length", async () => {
    const reply = await sendJson({ model: MODEL, prompt: "x", image: "A".repeat(MAX_BODY_BYTES) });
    assertRefused(reply, { ...bodyLimit, message: names });
  });

  it("refuses a chunked JSON body over it while the client is still sending", async () => {
    const reply = await sendChunked(
      "/v1/images/generations",
      "application/json",
      Buffer.from(`{"model":"${MODEL}","prompt":"x","image":"`),
      Buffer.alloc(16 * 1024, "A"),
      MAX_BODY_BYTES * 20,
    );
    assertRefused(reply, { ...bodyLimit, message: names });
    assert.equal(reply.finishedSending, false, "answered before the whole body was sent");
  });

  // Only the head and a few bytes are sent: the answer comes from the Content-Length alone.
  it("refuses a multipart body over it by its Content-Length, before reading it", async () => {
    const replies = await exchange(
      hubPort(),
      formHead(MAX_BODY_BYTES + 1, 'Content-Disposition: form-data; name="prompt"\r\n\r\nx'),
    );
    assert.equal(replies.length, 1);
    assertRefused(replies[0] as RawReply, { ...bodyLimit, message: names });
  });

  // The rest of the body is never read, so the connection cannot carry another request.
  it("closes the connection after refusing a form midway", async () => {
    const replies = await exchange(
      hubPort(),
      formHead(
        200_000,
        'Content-Disposition: form-data; name="prompt"; filename="a.png"\r\n\r\nnot a field\r\n' +
          `--${BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="b.png"\r\n\r\n`,
      ),
    );
    const [reply] = replies;
    assert.ok(reply && replies.length === 1, JSON.stringify(replies));
    assertRefused(reply, {
      status: 400,
      code: "unexpected_file",
      param: "prompt",
      message: /'prompt'/,
    });
    assert.equal(reply.headers.connection, "close");
  });

  // No Content-Length: only counting the bytes as they arrive stops it. The file part alone is
  // over the per-file limit too, which the multipart parser notices only at the end of the part.
  it("refuses a chunked multipart body over it while the client is still sending", async () => {
    const reply = await sendChunked(
      "/v1/images/edits",
      FORM_TYPE,
      Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n` +
          `--${BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n` +
          "Content-Type: image/png\r\n\r\n",
      ),
      randomBytes(16 * 1024),
      MAX_BODY_BYTES * 20,
    );
    assertRefused(reply, { ...bodyLimit, message: names });
    assert.equal(reply.finishedSending, false, "answered before the whole body was sent");
  });

  // Bytes before the first boundary are read and dropped by the parser, never handed over.
  it("refuses a chunked multipart body that never reaches its boundary", async () => {
    const reply = await sendChunked(
      "/v1/images/edits",
      FORM_TYPE,
      Buffer.from("preamble "),
      Buffer.alloc(16 * 1024, "x"),
      MAX_BODY_BYTES * 20,
    );
    assertRefused(reply, { ...bodyLimit, message: names });
    assert.equal(reply.finishedSending, false, "answered before the whole body was sent");
  });

  it("still serves on new connections after refusing bodies midway", async () => {
    const reply = await sendJson({ model: "local/placeholder", prompt: "x", size: "16x16" });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
  });
});

describe("the prompt, counted in characters", () => {
  // 中 is 3 bytes in UTF-8; 😀 is 4 bytes and 2 UTF-16 units: neither counts as more than one.
  it("refuses a prompt over the model's own limit (dall-e-2: 1000) with the count", async () => {
    const reply = await sendJson({ model: "dall-e-2", prompt: "中".repeat(1001) });
    assertRefused(reply, {
      status: 400,
      code: "string_above_max_length",
      param: "prompt",
      message: /at most 1000 characters, but got 1001/,
    });
  });

  it("refuses a prompt over the longest any model takes (32000)", async () => {
    const reply = await sendJson({ model: MODEL, prompt: "😀".repeat(32_001) });
    assertRefused(reply, {
      status: 400,
      code: "string_above_max_length",
      param: "prompt",
      message: /at most 32000 characters/,
    });
  });

  it("refuses it in a multipart edit too", async () => {
    const reply = await sendForm([...editFields("x".repeat(32_001)), imageFile(smallPng)]);
    assertRefused(reply, {
      status: 400,
      code: "string_above_max_length",
      param: "prompt",
      message: /at most 32000 characters/,
    });
  });

  it("accepts 32000 characters of 4 bytes each (128000 bytes, 64000 UTF-16 units)", async () => {
    const reply = await sendJson({
      model: "local/placeholder",
      prompt: "😀".repeat(32_000),
      size: "16x16",
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
  });
});

describe("the number of input images (16)", () => {
  it("refuses 17 in a JSON array", async () => {
    const reply = await sendJson({
      model: MODEL,
      prompt: "x",
      image: Array(17).fill(base64(smallPng)),
    });
    assertRefused(reply, {
      status: 400,
      code: "too_many_images",
      param: "image",
      message: /at most 16 input images/,
    });
  });

  it("refuses an array of 100000 elements by its length", async () => {
    const reply = await sendJson(
      `{"model":"${MODEL}","prompt":"x","image":[${Array(100_000).fill("1").join(",")}]}`,
    );
    assertRefused(reply, {
      status: 400,
      code: "too_many_images",
      param: "image",
      message: /at most 16 input images/,
    });
  });

  it("refuses 17 image[] files in a multipart edit", async () => {
    const files = Array.from({ length: 17 }, () => imageFile(smallPng, "image[]"));
    const reply = await sendForm([...editFields(), ...files]);
    assertRefused(reply, {
      status: 400,
      code: "too_many_images",
      param: "image",
      message: /at most 16 input image\(s\), but got 17/,
    });
  });

  it("refuses a form of more than 17 files (16 images and a mask) while parsing it", async () => {
    const files = Array.from({ length: 18 }, () => imageFile(smallPng, "image[]"));
    const reply = await sendForm([...editFields(), ...files]);
    assertRefused(reply, {
      status: 413,
      code: "payload_too_large",
      param: "image",
      message: /more than 17 files/,
    });
  });
});

describe("the bytes of one input image (MAX_INPUT_IMAGE_BYTES)", () => {
  const tooLarge = { status: 413, code: "payload_too_large" } as const;
  const names = new RegExp(`${MAX_INPUT_IMAGE_BYTES} bytes`);

  it("refuses bare base64 over it, before decoding it", async () => {
    const reply = await sendJson({ model: MODEL, prompt: "x", image: base64(noisyPng) });
    assertRefused(reply, { ...tooLarge, param: "image", message: names });
  });

  it("refuses a data URL over it, naming its place in an array", async () => {
    const image = [base64(smallPng), dataUrl(noisyPng)];
    const reply = await sendJson({ model: MODEL, prompt: "x", image });
    assertRefused(reply, { ...tooLarge, param: "image[1]", message: names });
  });

  it("refuses a multipart file over it", async () => {
    const reply = await sendForm([...editFields(), imageFile(noisyPng)]);
    assertRefused(reply, { ...tooLarge, param: "image", message: names });
  });

  it("refuses a mask over it", async () => {
    const reply = await sendForm([
      ...editFields(),
      imageFile(smallPng),
      imageFile(noisyPng, "mask"),
    ]);
    assertRefused(reply, { ...tooLarge, param: "mask", message: names });
  });
});

describe("the pixels of one input image (MAX_INPUT_PIXELS)", () => {
  const bomb = pngBomb(50_000, 50_000);
  const refusedBomb = {
    status: 413,
    code: "payload_too_large",
    message: /50000x50000 pixels; at most 1000000/,
  } as const;

  // A decode would fail (the pixel data is missing) with another error: this one comes from
  // the header alone.
  it("refuses a 100-byte PNG declaring 50000x50000 by its header (base64)", async () => {
    assert.ok(bomb.length < 200);
    const reply = await sendJson({ model: MODEL, prompt: "x", image: base64(bomb) });
    assertRefused(reply, { ...refusedBomb, param: "image" });
  });

  it("refuses it as a multipart file and as a mask", async () => {
    const asImage = await sendForm([...editFields(), imageFile(bomb)]);
    assertRefused(asImage, { ...refusedBomb, param: "image" });
    const asMask = await sendForm([...editFields(), imageFile(smallPng), imageFile(bomb, "mask")]);
    assertRefused(asMask, { ...refusedBomb, param: "mask" });
  });

  it("refuses a real image of 1001x1000, one pixel row over the limit", async () => {
    const image = await solidPng(1001, 1000);
    assert.ok(image.length < MAX_INPUT_IMAGE_BYTES, "small in bytes, large in pixels");
    const reply = await sendJson({ model: MODEL, prompt: "x", image: dataUrl(image) });
    assertRefused(reply, {
      status: 413,
      code: "payload_too_large",
      param: "image",
      message: /1001x1000 pixels; at most 1000000/,
    });
  });
});

describe("the parts of a form", () => {
  it(`refuses more than ${FORM.fields} text fields`, async () => {
    const fields = Array.from({ length: FORM.fields + 1 }, (_, index) => ({
      name: `field${index}`,
      value: "x",
    }));
    const reply = await sendForm([...fields, imageFile(smallPng)]);
    assertRefused(reply, {
      status: 413,
      code: "payload_too_large",
      param: null,
      message: /more than 30 text fields/,
    });
  });

  // Parts without a name are neither fields nor files: only the parts limit counts them.
  it(`refuses more than ${FORM.parts} parts, nameless ones included`, async () => {
    const nameless = Array.from({ length: FORM.parts }, () => ({ value: "x" }));
    const reply = await sendForm([...editFields(), imageFile(smallPng), ...nameless]);
    assertRefused(reply, {
      status: 413,
      code: "payload_too_large",
      param: null,
      message: /more than 40 parts/,
    });
  });

  // The parser cuts a long field short silently; a cut field must not pass as a shorter one.
  it("refuses a text field longer than the field limit, naming it", async () => {
    const reply = await sendForm([
      ...editFields(),
      { name: "user", value: "u".repeat(FORM.fieldBytes + 1) },
      imageFile(smallPng),
    ]);
    assertRefused(reply, {
      status: 413,
      code: "payload_too_large",
      param: "user",
      message: /'user' is longer than this hub accepts \(128000 bytes\)/,
    });
  });

  // busboy 3.2.6 never finished a form whose skipped part (no form-data disposition) filled its
  // buffer in one write: the request hung for ever. A socket hands over at most 64 KiB at a time,
  // which never filled it; inject delivers the body in one piece, as a larger read would.
  it("reads past a 100 KB part without a Content-Disposition instead of hanging", async () => {
    const response = await Promise.race([
      hub.app.inject({
        method: "POST",
        url: "/v1/images/edits",
        headers: { authorization: `Bearer ${hub.key}`, "content-type": FORM_TYPE },
        payload: formBody([...editFields(), { value: "s".repeat(100_000) }]),
      }),
      sleep(REPLY_TIMEOUT_MS, undefined, { ref: false }).then(() =>
        assert.fail("no reply: the form was never read to its end"),
      ),
    ]);
    assertRefused(
      { status: response.statusCode, body: response.json() },
      { status: 400, code: "missing_required_parameter", param: "image", message: /'image'/ },
    );
  });

  it("refuses a field sent twice, which a proxy may have read the other way", async () => {
    const reply = await sendForm([
      ...editFields(),
      { name: "model", value: "dall-e-2" },
      imageFile(smallPng),
    ]);
    assertRefused(reply, {
      status: 400,
      code: "duplicate_parameter",
      param: "model",
      message: /'model' is sent more than once/,
    });
  });

  it("refuses a form that cannot be parsed with 400, not 500", async () => {
    const whole = formBody([...editFields(), imageFile(smallPng)]);
    for (const [body, contentType, reason] of [
      [whole.subarray(0, whole.length - 20), FORM_TYPE, /unexpected end of multipart data/i],
      [whole, "multipart/form-data", /Boundary not found/],
      [Buffer.from("no form at all"), FORM_TYPE, /Unexpected end/],
    ] as const) {
      const reply = await send("/v1/images/edits", body, contentType);
      assertRefused(reply, {
        status: 400,
        code: "invalid_multipart",
        param: null,
        message: reason,
      });
    }
  });

  it("refuses a field named like an object property (__proto__)", async () => {
    const reply = await sendForm([
      ...editFields(),
      { name: "__proto__", value: "x" },
      imageFile(smallPng),
    ]);
    assertRefused(reply, {
      status: 400,
      code: "invalid_field_name",
      param: null,
      message: /__proto__/,
    });
  });
});

describe("the shape of the JSON", () => {
  it("refuses 100000 levels of nesting in a field by the field's type", async () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const reply = await sendJson(`{"model":"${MODEL}","prompt":"x","n":${deep}}`);
    assertRefused(reply, { status: 400, code: "invalid_value", param: "n", message: /integer/ });
  });

  it("refuses n out of range, naming the bound", async () => {
    for (const [n, bound] of [
      [0, /1/],
      [11, /10/],
      [1e300, /10/],
    ] as const) {
      const reply = await sendJson({ model: MODEL, prompt: "x", n });
      assertRefused(reply, { status: 400, code: "invalid_value", param: "n", message: bound });
    }
  });

  it("refuses n out of range in a multipart edit", async () => {
    const reply = await sendForm([
      ...editFields(),
      { name: "n", value: "11" },
      imageFile(smallPng),
    ]);
    assertRefused(reply, { status: 400, code: "invalid_value", param: "n", message: /10/ });
  });

  it("refuses an unknown field by name, as OpenAI does, however large it is", async () => {
    const huge = `[${Array(50_000).fill('"x"').join(",")}]`;
    // `extras`, not `extra`: that one is the hub's (vendor options).
    const reply = await sendJson(`{"model":"${MODEL}","prompt":"x","extras":${huge}}`);
    assertRefused(reply, {
      status: 400,
      code: "unknown_parameter",
      param: "extras",
      message: /Unknown parameter: 'extras'/,
    });
  });

  it("names an unknown field of any length in a message of bounded length", async () => {
    const name = "k".repeat(100_000);
    const reply = await sendJson(`{"model":"${MODEL}","prompt":"x","${name}":1}`);
    assertRefused(reply, {
      status: 400,
      code: "unknown_parameter",
      param: `${"k".repeat(100)}…`,
      message: /Unknown parameter: 'k+…'/,
    });
    assert.ok((reply.body as { error: { message: string } }).error.message.length < 200);
  });

  it("refuses an unknown field of a multipart edit by name", async () => {
    const reply = await sendForm([
      ...editFields(),
      { name: "fidelity", value: "high" },
      imageFile(smallPng),
    ]);
    assertRefused(reply, {
      status: 400,
      code: "unknown_parameter",
      param: "fidelity",
      message: /Unknown parameter: 'fidelity'/,
    });
  });
});

describe("requests that are not HTTP (handleClientError, Fastify's clientErrorHandler)", () => {
  let bare: FastifyInstance;
  let port: number;

  before(async () => {
    bare = Fastify({ clientErrorHandler: handleClientError });
    bare.post("/", async () => ({ ok: true }));
    await bare.listen({ port: 0, host: "127.0.0.1" });
    port = (bare.server.address() as AddressInfo).port;
  });

  after(async () => {
    await bare?.close();
  });

  it("answers bytes after a body shorter than its Content-Length with 400 in the OpenAI shape", async () => {
    const replies = await exchange(
      port,
      Buffer.from(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n" +
          '{}"and more that is not a request"\r\n\r\n',
      ),
    );
    const refusal = replies.find((reply) => reply.status === 400);
    assert.ok(refusal, JSON.stringify(replies));
    assert.deepEqual(Object.keys((refusal.body as { error: object }).error).sort(), [
      "code",
      "message",
      "param",
      "type",
    ]);
    assert.equal((refusal.body as { error: { code: string } }).error.code, "invalid_http");
  });

  it("answers headers over Node's limit with 431 in the OpenAI shape", async () => {
    const replies = await exchange(
      port,
      Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20_000)}\r\n\r\n`),
    );
    const [reply] = replies;
    assert.ok(reply && replies.length === 1, JSON.stringify(replies));
    assert.equal(reply.status, 431);
    const error = (reply.body as { error: { code: string; message: string } }).error;
    assert.equal(error.code, "headers_too_large");
    assert.match(error.message, /headers are larger/);
  });
});

describe("after all the refusals", () => {
  it("reached the upstream with none of them, and still serves edits there", async () => {
    // The model list the hub reads at start is not an image request.
    const imageRequests = () =>
      sim.requests.filter((request) => request.path.startsWith("/v1/images")).length;
    assert.equal(imageRequests(), 0);
    const reply = await sendForm([...editFields(), imageFile(smallPng)]);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal((reply.body as { data: unknown[] }).data.length, 1);
    assert.equal(imageRequests(), 1, "the simulator is wired: a valid edit reaches it");
  });
});
