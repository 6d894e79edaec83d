/**
 * Property tests of the JSON request (fast-check): whatever a client sends to the image
 * endpoints, the hub answers in time, never with a 5xx, every 4xx in the OpenAI error shape,
 * and a 200 (with the images asked for) exactly when the request is valid.
 *
 * Requests mix valid and invalid values of every field (wrong types, huge and fractional
 * numbers, NaN-like strings, any Unicode), unknown and prototype-polluting keys, arbitrary JSON
 * values, raw bytes and wrong content types. Valid requests name the offline model
 * `local/placeholder` at small sizes, so a 200 is cheap.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import sharp from "sharp";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { assertErrorShape, hasXmlForbidden, injectInTime } from "./helpers.ts";

const MAX_BODY_BYTES = 200_000;
const MAX_PROMPT_LENGTH = 32_000;
const KNOWN_FIELDS = [
  "prompt",
  "model",
  "image",
  "mask",
  "n",
  "size",
  "response_format",
  "quality",
  "style",
  "background",
  "output_format",
  "output_compression",
  "moderation",
  "user",
  "stream",
] as const;
const PATHS = [
  "/v1/images/generations",
  "/api/images/generations",
  "/v1/images/edits",
  "/api/images/edits",
];

/** An 8x8 PNG: the valid input image. */
const pngBase64 = (
  await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } })
    .png()
    .toBuffer()
).toString("base64");

let hub: TestHub;
let prototypeNames: string[];

before(async () => {
  hub = await startTestHub({ MAX_BODY_BYTES: String(MAX_BODY_BYTES) });
  prototypeNames = Object.getOwnPropertyNames(Object.prototype);
});

after(async () => {
  // Nothing a request carried (`__proto__`, `constructor.prototype`) reached Object.prototype.
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype), prototypeNames);
  await hub?.close();
});

/** A field's value and whether the hub must accept it (for local/placeholder). */
interface Tagged {
  value: unknown;
  ok: boolean;
}

const accepted = (arbitrary: fc.Arbitrary<unknown>) =>
  arbitrary.map((value): Tagged => ({ value, ok: true }));
const refused = (arbitrary: fc.Arbitrary<unknown>) =>
  arbitrary.map((value): Tagged => ({ value, ok: false }));
/** Mostly valid values, so that whole requests are valid often enough to reach a 200. */
const fieldOf = (valid: fc.Arbitrary<unknown>, invalid: fc.Arbitrary<unknown>) =>
  fc.oneof({ weight: 6, arbitrary: accepted(valid) }, { weight: 1, arbitrary: refused(invalid) });

/** Strings a number field might be sent as by a careless client. */
const nanLike = fc.constantFrom(
  "NaN",
  "Infinity",
  "-Infinity",
  "1e309",
  "-0",
  "0x10",
  "",
  " 1",
  "1",
);
/** Values of the wrong JSON type for any field. */
const wrongType = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
);
const anyString = fc.string({ unit: "binary", maxLength: 40 });
/** Strings other than `allowed` (an enum field's values). */
const stringOtherThan = (allowed: readonly string[]) =>
  anyString.filter((text) => !allowed.includes(text));
const enumField = (allowed: readonly string[]) =>
  fieldOf(fc.constantFrom(...allowed), fc.oneof(stringOtherThan(allowed), wrongType, fc.integer()));
const hugeOrFractional = fc.oneof(
  fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 53, 0.5, 1.000001, -0.1),
  fc.double({ noNaN: true, noInteger: true }),
);

const promptText = fc.string({ unit: "grapheme", minLength: 1, maxLength: 60 });
const prompt = fieldOf(
  promptText.filter((text) => text.trim().length > 0 && !hasXmlForbidden(text)),
  fc.oneof(
    fc.constantFrom("", " ", "\t\n", "\u3000"),
    fc.constant("a".repeat(MAX_PROMPT_LENGTH + 1)),
    fc.constant("😀".repeat(MAX_PROMPT_LENGTH + 1)),
    wrongType,
    fc.integer(),
  ),
);
const LOCAL_MODELS = ["local/placeholder", "placeholder"];
const model = fieldOf(
  fc.constantFrom(...LOCAL_MODELS),
  fc.oneof(
    fc.constantFrom("", "dall-e-2", "gpt-image-1", "local/", "x".repeat(201), "../etc/passwd"),
    anyString.filter((text) => !LOCAL_MODELS.includes(text.trim())),
    wrongType,
    fc.integer(),
  ),
);
const n = fieldOf(
  fc.constantFrom(1, 2),
  fc.oneof(fc.constantFrom(0, -1, 11, 1000), hugeOrFractional, nanLike, wrongType),
);
const size = fieldOf(
  fc.constantFrom("16x16", "32x16", "24x24"),
  fc.oneof(
    fc.constantFrom("0x0", "16", "16x16x16", "4097x16", "99999x99999", "1x16", "16X16", "1e3x16"),
    anyString.filter((text) => !/^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$|^auto$/.test(text)),
    wrongType,
    fc.integer(),
  ),
);
const imageSource = (valid: boolean) =>
  valid
    ? fc
        .constantFrom("base64", "dataUrl")
        .map((kind) => (kind === "base64" ? pngBase64 : `data:image/png;base64,${pngBase64}`))
    : fc.oneof(
        fc.constantFrom(
          "",
          "abc",
          "not base64!!",
          "AAAA",
          "R0lGODlhAQABAAAAACw=",
          "data:text/plain;base64,AAAA",
          "data:image/png,raw",
          "data:image/png;base64,",
          "http://127.0.0.1:1/x.png",
          "http://169.254.169.254/latest/meta-data/",
          "file:///etc/passwd",
          "ftp://example.com/x.png",
        ),
        fc.constant(pngBase64.slice(0, 40)),
        anyString,
      );
const image = fieldOf(
  fc.oneof(imageSource(true), fc.array(imageSource(true), { minLength: 1, maxLength: 2 })),
  fc.oneof(
    imageSource(false),
    fc.constant([]),
    fc.array(imageSource(true), { minLength: 17, maxLength: 20 }),
    fc.tuple(imageSource(true), imageSource(false)),
    fc.array(fc.integer(), { minLength: 1, maxLength: 3 }),
    fc.integer(),
    wrongType,
  ),
);
const mask = fieldOf(imageSource(true), fc.oneof(imageSource(false), wrongType, fc.integer()));
const outputCompression = fieldOf(
  fc.integer({ min: 0, max: 100 }),
  fc.oneof(fc.constantFrom(-1, 101), hugeOrFractional, nanLike, wrongType),
);
const user = fieldOf(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.oneof(fc.constant("u".repeat(257)), fc.integer(), wrongType),
);
const stream = fieldOf(fc.constant(false), fc.oneof(fc.constant(true), nanLike, fc.integer()));

/** Keys the hub does not know, prototype-polluting ones among them. */
const unknownKey = fc.oneof(
  fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "hasOwnProperty",
    "Prompt",
    "image[]",
  ),
  anyString.filter((key) => !(KNOWN_FIELDS as readonly string[]).includes(key)),
);
const pollution = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constant({ polluted: true }),
  fc.constant({ prototype: { polluted: true } }),
);

const taggedRequest = fc.record(
  {
    prompt,
    model,
    image,
    mask,
    n,
    size,
    response_format: enumField(["url", "b64_json"]),
    quality: enumField(["standard", "hd", "low", "medium", "high", "auto"]),
    style: enumField(["vivid", "natural"]),
    background: enumField(["transparent", "opaque", "auto"]),
    output_format: enumField(["png", "jpeg", "webp"]),
    output_compression: outputCompression,
    moderation: enumField(["low", "auto"]),
    user,
    stream,
  },
  { requiredKeys: ["prompt", "model"] },
);

interface Case {
  path: string;
  fields: Partial<Record<(typeof KNOWN_FIELDS)[number], Tagged>>;
  extra: [string, unknown][];
}

/** The required fields are there but now and then. */
const fieldsWithGaps = fc
  .tuple(
    taggedRequest,
    fc.oneof(
      { weight: 9, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom("prompt", "model") },
    ),
  )
  .map(([fields, missing]): Case["fields"] => {
    const kept: Case["fields"] = { ...fields };
    if (missing) delete kept[missing];
    return kept;
  });

const requestCase: fc.Arbitrary<Case> = fc.record({
  path: fc.constantFrom(...PATHS),
  fields: fieldsWithGaps,
  extra: fc.oneof(
    { weight: 4, arbitrary: fc.constant([] as [string, unknown][]) },
    {
      weight: 1,
      arbitrary: fc.array(fc.tuple(unknownKey, pollution), { minLength: 1, maxLength: 3 }),
    },
  ),
});

function bodyOf(request: Case): Record<string, unknown> {
  const entries = Object.entries(request.fields).map(([name, tagged]) => [name, tagged?.value]);
  // fromEntries makes own properties, `__proto__` included, as JSON.parse would.
  return Object.fromEntries([...entries, ...request.extra]);
}

/** Whether local/placeholder must make images for this request. */
function isValid(request: Case): boolean {
  const { fields } = request;
  const value = (name: keyof Case["fields"]) => fields[name]?.value;
  return (
    Object.values(fields).every((tagged) => tagged?.ok) &&
    request.extra.length === 0 &&
    fields.prompt !== undefined &&
    fields.model !== undefined &&
    // Edits need an image; a mask needs one everywhere.
    (!request.path.endsWith("/edits") || fields.image !== undefined) &&
    (fields.mask === undefined || fields.image !== undefined) &&
    !(value("background") === "transparent" && value("output_format") === "jpeg")
  );
}

function postJson(path: string, payload: string | Buffer, contentType = "application/json") {
  return injectInTime(hub.app, {
    method: "POST",
    url: path,
    headers: { authorization: `Bearer ${hub.key}`, "content-type": contentType },
    payload,
  });
}

describe("the JSON request schema, fuzzed", () => {
  it("answers every mix of valid and invalid fields with a 200 exactly when it is valid", {
    timeout: 120_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(requestCase, async (request) => {
        const body = bodyOf(request);
        const response = await postJson(request.path, JSON.stringify(body));
        assert.ok(response.statusCode < 500, `${response.statusCode} ${response.body}`);
        if (isValid(request)) {
          assert.equal(response.statusCode, 200, response.body);
          const data = (response.json() as { data: unknown[] }).data;
          assert.equal(data.length, (body.n as number | undefined) ?? 1);
        } else {
          assertErrorShape(response);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("answers any JSON value as the body with a 4xx in the OpenAI shape", {
    timeout: 60_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        fc.jsonValue({ maxDepth: 6 }),
        async (path, value) => {
          assertErrorShape(await postJson(path, JSON.stringify(value) ?? "null"));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("answers raw bytes and text under any content type with a 4xx in the OpenAI shape", {
    timeout: 60_000,
  }, async () => {
    const contentType = fc.oneof(
      fc.constantFrom(
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "APPLICATION/JSON",
        "text/plain",
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "application/octet-stream",
        "image/png",
        "*/*",
        ";;;",
      ),
      fc.string({ unit: "grapheme-ascii", maxLength: 30 }),
    );
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }).map((bytes) => Buffer.from(bytes)),
      fc.string({ unit: "binary", maxLength: 500 }),
      fc.constantFrom(
        "{",
        '{"prompt":',
        '{"prompt":"x",}',
        "\ufeff{}",
        '{"prompt":"\\ud800"}',
        `{"a":${"[".repeat(5000)}${"]".repeat(5000)}}`,
        `{"constructor":${"[".repeat(5000)}${"]".repeat(5000)}}`,
        '{"__proto__":{"polluted":true},"prompt":"x"}',
        '{"constructor":{"prototype":{"polluted":true}},"prompt":"x"}',
      ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        payload,
        contentType,
        async (path, body, type) => {
          assertErrorShape(await postJson(path, body, type));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses a body over MAX_BODY_BYTES with 413, whatever it holds", {
    timeout: 60_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        fc.integer({ min: MAX_BODY_BYTES + 1, max: MAX_BODY_BYTES * 2 }),
        fc.constantFrom("A", "[", "😀"),
        async (path, length, filler) => {
          const payload = Buffer.from(filler.repeat(length)).subarray(0, length);
          const response = await postJson(path, payload);
          assertErrorShape(response);
          assert.equal(response.statusCode, 413);
        },
      ),
      { numRuns: 20 },
    );
  });

  it("still serves after the fuzzing", async () => {
    const body = { model: "local/placeholder", prompt: "still here", size: "16x16" };
    const response = await postJson("/v1/images/generations", JSON.stringify(body));
    assert.equal(response.statusCode, 200, response.body);
  });

  it("answers prompts with control characters without a 5xx", {
    timeout: 60_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "binary", minLength: 1, maxLength: 20 }).filter(hasXmlForbidden),
        async (text) => {
          const body = { model: "local/placeholder", prompt: `a ${text} b`, size: "16x16" };
          const response = await postJson("/v1/images/generations", JSON.stringify(body));
          assert.ok(
            response.statusCode < 500,
            `${response.statusCode} for ${JSON.stringify(text)}`,
          );
        },
      ),
      { numRuns: 30 },
    );
  });
});
