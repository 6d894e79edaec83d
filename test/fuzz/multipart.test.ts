/**
 * Property tests of the multipart edit endpoints (fast-check): whatever form a client sends to
 * /v1/images/edits or /api/images/edits, well-formed or not, the hub answers in time, never
 * with a 5xx, every 4xx in the OpenAI error shape, and a 200 (with images) exactly when a
 * well-formed form is valid.
 *
 * Forms mix valid and invalid parts (unknown, duplicate and prototype-named fields, files in text
 * fields, bad values, damaged or bomb images, oversized fields); malformed bodies are forms cut
 * short, without their closing delimiter or boundary, with a boundary that does not match, with
 * random header lines, a huge header, garbage spliced in, a Content-Length shorter than the body,
 * or no form at all. Valid forms name the offline model `local/placeholder` at small sizes.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import sharp from "sharp";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { pngBomb } from "../helpers/png-bomb.ts";
import { assertErrorShape, hasXmlForbidden, injectInTime, REPLY_TIMEOUT_MS } from "./helpers.ts";

const MAX_BODY_BYTES = 300_000;
const MAX_INPUT_IMAGE_BYTES = 60_000;
/** The field limit that follows from the settings above (src/http/multipart.ts). */
const FIELD_BYTES = 128_000;
const PATHS = ["/v1/images/edits", "/api/images/edits"];

const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#408040" } })
  .png()
  .toBuffer();

let hub: TestHub;
let prototypeNames: string[];

before(async () => {
  hub = await startTestHub({
    MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    MAX_INPUT_IMAGE_BYTES: String(MAX_INPUT_IMAGE_BYTES),
  });
  prototypeNames = Object.getOwnPropertyNames(Object.prototype);
});

after(async () => {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype), prototypeNames);
  await hub?.close();
});

interface FormPart {
  /** Undefined: a part without a Content-Disposition. */
  name: string | undefined;
  /** Set: a file part. */
  filename?: string;
  contentType?: string;
  value: Buffer;
  /** Whether the hub must accept this part in a form for local/placeholder. */
  ok: boolean;
}

const text = (name: string, value: string, ok: boolean): FormPart => ({
  name,
  value: Buffer.from(value),
  ok,
});
const file = (name: string, value: Buffer, ok: boolean, contentType = "image/png"): FormPart => ({
  name,
  filename: "in.png",
  contentType,
  value,
  ok,
});

/** Prompt text a client would send; characters XML forbids have a JSON fuzz test of their own. */
const promptText = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 40 })
  .filter((value) => value.trim().length > 0 && !hasXmlForbidden(value));
const anyText = fc.string({ unit: "binary", maxLength: 30 });
const FIELD_NAMES = [
  "prompt",
  "model",
  "n",
  "size",
  "response_format",
  "quality",
  "style",
  "user",
  "stream",
];

const validPart = fc.oneof(
  promptText.map((value) => text("prompt", value, true)),
  fc.constant(text("model", "local/placeholder", true)),
  fc.constantFrom("1", "2", " 2 ").map((value) => text("n", value, true)),
  fc.constantFrom("16x16", "24x16").map((value) => text("size", value, true)),
  fc.constantFrom("url", "b64_json").map((value) => text("response_format", value, true)),
  fc
    .constantFrom("standard", "hd", "low", "high", "auto")
    .map((value) => text("quality", value, true)),
  fc.constantFrom("vivid", "natural").map((value) => text("style", value, true)),
  anyText.map((value) => text("user", value, true)),
  fc.constant(text("stream", "false", true)),
  fc.constantFrom("image", "image[]").map((name) => file(name, png, true)),
  fc
    .constantFrom("application/octet-stream", "image/jpeg", "")
    .map((type) => file("image", png, true, type)),
  fc.constant(text("image", png.toString("base64"), true)),
  fc.constant(text("image[]", `data:image/png;base64,${png.toString("base64")}`, true)),
  fc.constant(file("mask", png, true)),
);

const invalidPart = fc.oneof(
  fc.constantFrom(...FIELD_NAMES).map((name) => file(name, png, false)),
  fc
    .constantFrom("__proto__", "constructor", "hasOwnProperty", "toString")
    .map((name) => text(name, "x", false)),
  anyText
    .filter((name) => !FIELD_NAMES.includes(name) && !["image", "image[]", "mask"].includes(name))
    .map((name) => text(name, "x", false)),
  fc.constantFrom("0", "11", "-1", "1.5", "1e1", "two", "").map((value) => text("n", value, false)),
  fc
    .constantFrom("16", "0x0", "99999x99999", "auto16", "")
    .map((value) => text("size", value, false)),
  fc.constantFrom("true", "no", "1").map((value) => text("stream", value, false)),
  fc.constantFrom("   ", "").map((value) => text("prompt", value, false)),
  fc.constant(text("prompt", "p".repeat(32_001), false)),
  fc.constant(text("model", "dall-e-2", false)),
  fc.constant(text("user", "u".repeat(FIELD_BYTES + 1), false)),
  fc.constant(file("image", Buffer.alloc(MAX_INPUT_IMAGE_BYTES + 1, 7), false)),
  fc.constant(file("image", Buffer.alloc(0), false)),
  fc.constant(file("image", png.subarray(0, 40), false)),
  fc.constant(file("image", pngBomb(50_000, 50_000), false)),
  fc.constant(file("image", Buffer.from("R0lGODlhAQABAAAAACw=", "base64"), false)),
  fc
    .uint8Array({ minLength: 1, maxLength: 64 })
    .map((bytes) => file("mask", Buffer.from(bytes), false)),
  fc
    .constantFrom("abc", "http://127.0.0.1:1/x.png", "file:///etc/passwd")
    .map((value) => text("image", value, false)),
  fc.constant({ ...text("n", "{", false), contentType: "application/json" }),
);

const formParts = fc.array(
  fc.oneof({ weight: 8, arbitrary: validPart }, { weight: 1, arbitrary: invalidPart }),
  { maxLength: 8 },
);

/** Parts that make the form valid when there is no invalid part among the others. */
const required = [
  text("prompt", "a cat", true),
  text("model", "local/placeholder", true),
  file("image", png, true),
];

const structuredForm = fc
  .tuple(formParts, fc.subarray(required), fc.infiniteStream(fc.nat()))
  .map(([parts, present, positions]) => {
    // Required parts go in at random places, so that a later duplicate can override them.
    const all = [...parts];
    const order = positions[Symbol.iterator]();
    for (const part of present)
      all.splice((order.next().value as number) % (all.length + 1), 0, part);
    return all;
  });

/** Whether local/placeholder must make images for this (well-formed) form. */
function isValid(parts: FormPart[]): boolean {
  const names = parts.map((part) => part.name);
  const single = names.filter((name) => name !== "image" && name !== "image[]");
  return (
    parts.every((part) => part.ok) &&
    names.includes("prompt") &&
    names.includes("model") &&
    (names.includes("image") || names.includes("image[]")) &&
    // Only images repeat; any other field sent twice is refused.
    new Set(single).size === single.length
  );
}

function serialize(parts: FormPart[], boundary: string): Buffer {
  const pieces: Buffer[] = [];
  for (const part of parts) {
    let headers = "";
    if (part.name !== undefined) {
      headers += `Content-Disposition: form-data; name="${part.name}"`;
      if (part.filename !== undefined) headers += `; filename="${part.filename}"`;
      headers += "\r\n";
    }
    if (part.contentType) headers += `Content-Type: ${part.contentType}\r\n`;
    pieces.push(Buffer.from(`--${boundary}\r\n${headers}\r\n`), part.value, Buffer.from("\r\n"));
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(pieces);
}

/** Boundaries unlikely to occur in the parts' bytes, with RFC 2046's characters. */
const safeBoundary = fc
  .stringMatching(/^[0-9A-Za-z'()+_,./:=?-]{8,40}$/)
  .map((random) => `--fuzz${random}`);

function postForm(path: string, payload: Buffer, contentType: string, headers = {}) {
  return injectInTime(hub.app, {
    method: "POST",
    url: path,
    headers: { authorization: `Bearer ${hub.key}`, "content-type": contentType, ...headers },
    payload,
  });
}

/** The answer to anything: no 5xx; a 4xx in the OpenAI shape, or a 200 with images. */
function assertAnswered(response: Awaited<ReturnType<typeof postForm>>): void {
  assert.ok(response.statusCode < 500, `${response.statusCode} ${response.body}`);
  if (response.statusCode === 200) {
    const data = (response.json() as { data?: unknown[] }).data;
    assert.ok(Array.isArray(data) && data.length > 0, response.body);
  } else {
    assertErrorShape(response);
  }
}

/** Ways to break a well-formed body. */
type Mutation =
  | { kind: "truncate"; at: number }
  | { kind: "no closing delimiter" }
  | { kind: "other boundary"; boundary: string }
  | { kind: "no boundary" }
  | { kind: "splice"; at: number; bytes: Uint8Array }
  | { kind: "header line"; line: string }
  | { kind: "huge header" }
  | { kind: "short content-length"; by: number }
  | { kind: "garbage"; bytes: Uint8Array }
  | { kind: "content type"; value: string };

const headerLine = fc.oneof(
  fc.constantFrom(
    "Content-Type: application/json",
    "Content-Type: text/plain; charset=utf-16le",
    "Content-Transfer-Encoding: base64",
    "Content-Disposition: attachment",
    // A second disposition renames a file part into a text field, binary bytes and all.
    'Content-Disposition: form-data; name="prompt"',
    "Content-Disposition: form-data; name*=UTF-8''%E2%82%AC",
    "no colon at all",
    ": empty name",
    " folded continuation",
  ),
  fc.string({ unit: "binary-ascii", maxLength: 60 }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((at): Mutation => ({ kind: "truncate", at })),
  fc.constant<Mutation>({ kind: "no closing delimiter" }),
  fc
    .string({ minLength: 1, maxLength: 70 })
    .map((boundary): Mutation => ({ kind: "other boundary", boundary })),
  fc.constant<Mutation>({ kind: "no boundary" }),
  fc
    .tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 200 }))
    .map(([at, bytes]): Mutation => ({ kind: "splice", at, bytes })),
  headerLine.map((line): Mutation => ({ kind: "header line", line })),
  fc.constant<Mutation>({ kind: "huge header" }),
  fc.integer({ min: 1, max: 500 }).map((by): Mutation => ({ kind: "short content-length", by })),
  fc.uint8Array({ maxLength: 3000 }).map((bytes): Mutation => ({ kind: "garbage", bytes })),
  fc
    .constantFrom(
      "multipart/form-data",
      "multipart/form-data; boundary=",
      'multipart/form-data; boundary=""',
      "multipart/form-data; boundary=a; boundary=b",
      "Multipart/Form-Data; BOUNDARY=x",
      "multipart/mixed; boundary=x",
      "multipart/form-data; charset=utf-16; boundary=x",
    )
    .map((value): Mutation => ({ kind: "content type", value })),
);

interface Sent {
  body: Buffer;
  contentType: string;
  headers: Record<string, string>;
}

function mutate(parts: FormPart[], boundary: string, change: Mutation): Sent {
  const body = serialize(parts, boundary);
  const contentType = `multipart/form-data; boundary="${boundary}"`;
  const sent: Sent = { body, contentType, headers: {} };
  switch (change.kind) {
    case "truncate":
      return { ...sent, body: body.subarray(0, change.at % (body.length + 1)) };
    case "no closing delimiter":
      return { ...sent, body: body.subarray(0, body.length - boundary.length - 6) };
    case "other boundary":
      return {
        ...sent,
        contentType: `multipart/form-data; boundary="${change.boundary.replace(/"/g, "")}"`,
      };
    case "no boundary":
      return { ...sent, contentType: "multipart/form-data" };
    case "splice": {
      const at = change.at % (body.length + 1);
      return {
        ...sent,
        body: Buffer.concat([body.subarray(0, at), change.bytes, body.subarray(at)]),
      };
    }
    case "header line": {
      const marker = Buffer.from(`--${boundary}\r\n`);
      const at = body.indexOf(marker);
      if (at === -1) return sent;
      const insertAt = at + marker.length;
      const line = Buffer.from(`${change.line}\r\n`);
      return {
        ...sent,
        body: Buffer.concat([body.subarray(0, insertAt), line, body.subarray(insertAt)]),
      };
    }
    case "huge header": {
      const line = Buffer.from(`X-Huge: ${"h".repeat(90 * 1024)}\r\n`);
      const insertAt = `--${boundary}\r\n`.length;
      return {
        ...sent,
        body: Buffer.concat([body.subarray(0, insertAt), line, body.subarray(insertAt)]),
      };
    }
    case "short content-length":
      return {
        ...sent,
        headers: { "content-length": String(Math.max(0, body.length - change.by)) },
      };
    case "garbage":
      return { ...sent, body: Buffer.from(change.bytes) };
    case "content type":
      return { ...sent, contentType: change.value };
  }
}

describe("multipart edits, fuzzed", () => {
  it("answers every well-formed form with a 200 exactly when it is valid", {
    timeout: 120_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        structuredForm,
        safeBoundary,
        async (path, parts, boundary) => {
          const response = await postForm(
            path,
            serialize(parts, boundary),
            `multipart/form-data; boundary="${boundary}"`,
          );
          assert.ok(response.statusCode < 500, `${response.statusCode} ${response.body}`);
          if (isValid(parts)) {
            assert.equal(response.statusCode, 200, response.body);
            assert.ok((response.json() as { data: unknown[] }).data.length > 0);
          } else {
            assertErrorShape(response);
          }
        },
      ),
      { numRuns: 250 },
    );
  });

  it("answers malformed forms with a 4xx in the OpenAI shape (or a 200 if still a valid form)", {
    timeout: 120_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        structuredForm,
        safeBoundary,
        mutation,
        async (path, parts, boundary, change) => {
          const sent = mutate(parts, boundary, change);
          assertAnswered(await postForm(path, sent.body, sent.contentType, sent.headers));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("answers random boundaries and bytes with a 4xx in the OpenAI shape", {
    timeout: 60_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        fc.string({ unit: "binary", maxLength: 80 }),
        fc.oneof(
          fc.uint8Array({ maxLength: 2000 }).map((bytes) => Buffer.from(bytes)),
          fc.string({ unit: "binary", maxLength: 400 }).map((value) => Buffer.from(value)),
        ),
        async (path, boundary, body) => {
          const contentType = `multipart/form-data; boundary=${boundary.replace(/[\r\n]/g, "")}`;
          assertAnswered(await postForm(path, body, contentType));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("still serves after the fuzzing", async () => {
    const boundary = "----fuzz-done";
    const response = await postForm(
      "/v1/images/edits",
      serialize(required, boundary),
      `multipart/form-data; boundary=${boundary}`,
    );
    assert.equal(response.statusCode, 200, response.body);
  });

  // Over a real socket: the hub reads as many bytes as Content-Length says; the bytes after
  // them are not a request, and Node answers them as a client error.
  it("answers a Content-Length shorter than the body on a real connection, in time, without a 5xx", {
    timeout: 60_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        structuredForm,
        safeBoundary,
        fc.integer({ min: 1, max: 400 }),
        async (parts, boundary, by) => {
          const { status } = await sendShortContentLength(parts, boundary, by);
          assert.ok(status >= 200 && status < 500, `status ${status}`);
        },
      ),
      { numRuns: 25 },
    );
  });

  it("answers a Content-Length shorter than the body in the OpenAI shape", {
    timeout: 60_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        structuredForm,
        safeBoundary,
        fc.integer({ min: 1, max: 400 }),
        async (parts, boundary, by) => {
          const { status, body } = await sendShortContentLength(parts, boundary, by);
          if (status === 200) return;
          const error = (JSON.parse(body) as { error?: unknown }).error;
          assert.ok(error !== null && typeof error === "object", body);
          assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"]);
        },
      ),
      { numRuns: 25 },
    );
  });
});

async function sendShortContentLength(
  parts: FormPart[],
  boundary: string,
  by: number,
): Promise<{ status: number; body: string }> {
  const body = serialize(parts, boundary);
  const reply = await rawExchange(
    Buffer.concat([
      Buffer.from(
        "POST /v1/images/edits HTTP/1.1\r\n" +
          `Host: 127.0.0.1\r\nAuthorization: Bearer ${hub.key}\r\n` +
          `Content-Type: multipart/form-data; boundary="${boundary}"\r\n` +
          `Content-Length: ${Math.max(0, body.length - by)}\r\nConnection: close\r\n\r\n`,
      ),
      body,
    ]),
  );
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1]);
  return { status, body: reply.slice(reply.indexOf("\r\n\r\n") + 4) };
}

/** Sends raw bytes to the hub and reads its first reply (a `Connection: close` exchange). */
function rawExchange(bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const { port } = new URL(hub.url);
    const socket = connect(Number(port), "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.setTimeout(REPLY_TIMEOUT_MS, () => socket.destroy(new Error("no reply in time: hung")));
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", (error) =>
      chunks.length > 0 ? resolve(firstReply(chunks)) : reject(error),
    );
    socket.on("close", () => resolve(firstReply(chunks)));
    // Not end(): Node takes a half-closed connection for a client gone and cancels its request.
    socket.write(bytes);
  });
}

/** The first HTTP reply in what the socket received (the hub may add a 400 for leftover bytes). */
function firstReply(chunks: Buffer[]): string {
  const received = Buffer.concat(chunks).toString("latin1");
  const next = received.indexOf("HTTP/1.1 ", 1);
  return next === -1 ? received : received.slice(0, next);
}
