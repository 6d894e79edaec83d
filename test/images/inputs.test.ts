import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import type { HubError } from "../../src/errors.ts";
import { decodeImageBytes, loadInputImages } from "../../src/images/inputs.ts";
import { createSafeFetcher, type SafeFetcher } from "../../src/net/safe-fetch.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { pngBomb } from "../helpers/png-bomb.ts";

const MAX_BYTES = 1024 * 1024;
const MAX_PIXELS = 16_000_000;

let png: Buffer;
let jpeg: Buffer;
let webp: Buffer;
let gif: Buffer;
/** 20000x20000 of one colour: about a megabyte of PNG, 1.2 GB once decoded. */
let bomb: Buffer;
let server: http.Server;
let origin: string;
const served = new Map<string, { body: Buffer; type: string; delayMs?: number }>();
let fetcher: SafeFetcher;
/** URLs whose client went away before the answer was sent. */
const abandoned: string[] = [];

before(async () => {
  const image = () =>
    sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } });
  png = await image().png().toBuffer();
  jpeg = await image().jpeg().toBuffer();
  webp = await image().webp().toBuffer();
  gif = await image().gif().toBuffer();
  bomb = await sharp({
    create: { width: 20_000, height: 20_000, channels: 3, background: "#ffffff" },
    limitInputPixels: false,
  })
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();

  server = http.createServer((request, response) => {
    const entry = served.get(request.url ?? "");
    if (entry === undefined) {
      response.writeHead(404);
      response.end();
      return;
    }
    response.on("close", () => {
      if (!response.writableFinished) abandoned.push(request.url ?? "");
    });
    setTimeout(() => {
      response.writeHead(200, { "content-type": entry.type });
      response.end(entry.body);
    }, entry.delayMs ?? 0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fetcher = createSafeFetcher({ allowCidrs: ["127.0.0.1/32"] });
  served.set("/cat.png", { body: png, type: "image/png" });
  served.set("/cat.webp", { body: webp, type: "application/octet-stream" });
  served.set("/big.png", {
    body: Buffer.concat([png, Buffer.alloc(MAX_BYTES)]),
    type: "image/png",
  });
  served.set("/slow.png", { body: png, type: "image/png", delayMs: 2000 });
  served.set("/slow-too.png", { body: png, type: "image/png", delayMs: 2000 });
  served.set("/late.txt", { body: Buffer.from("not an image"), type: "image/png", delayMs: 100 });
  served.set("/notes.txt", { body: Buffer.from("just some text\n"), type: "image/png" });
});

after(async () => {
  await fetcher.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let tries = 0; !condition(); tries++) {
    assert.ok(tries < 100, "condition not met within a second");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function options(overrides: Partial<Parameters<typeof loadInputImages>[1]> = {}) {
  return { fetcher, maxBytes: MAX_BYTES, maxPixels: MAX_PIXELS, param: "image", ...overrides };
}

async function assertHubError(
  promise: Promise<unknown>,
  expected: { status: number; code: string; param?: string; message?: RegExp },
): Promise<HubError> {
  const caught = await hubErrorOf(promise);
  assert.equal(caught.status, expected.status, caught.message);
  assert.equal(caught.code, expected.code, caught.message);
  assert.equal(caught.param, expected.param ?? "image");
  if (expected.message) assert.match(caught.message, expected.message);
  return caught;
}

describe("accepted sources", () => {
  for (const [name, mimeType] of [
    ["png", "image/png"],
    ["jpeg", "image/jpeg"],
    ["webp", "image/webp"],
  ] as const) {
    test(`a ${name} data URL`, async () => {
      const bytes = { png, jpeg, webp }[name];
      const [image] = await loadInputImages(
        [`data:${mimeType};base64,${bytes.toString("base64")}`],
        options(),
      );
      assert.deepEqual(image, { bytes, mimeType, width: 64, height: 48 });
    });
  }

  test("bare base64, unpadded too", async () => {
    const base64 = jpeg.toString("base64");
    const [padded] = await loadInputImages([base64], options());
    assert.equal(padded?.mimeType, "image/jpeg");
    assert.deepEqual(padded?.bytes, jpeg);
    const [unpadded] = await loadInputImages([base64.replace(/=+$/, "")], options());
    assert.deepEqual(unpadded?.bytes, jpeg);
  });

  test("a URL, typed by its bytes and not by its Content-Type", async () => {
    const [fromPng, fromWebp] = await loadInputImages(
      [`${origin}/cat.png`, `${origin}/cat.webp`],
      options(),
    );
    assert.deepEqual(fromPng, { bytes: png, mimeType: "image/png", width: 64, height: 48 });
    assert.equal(fromWebp?.mimeType, "image/webp");
  });

  test("several sources keep their order", async () => {
    const images = await loadInputImages(
      [
        webp.toString("base64"),
        `${origin}/cat.png`,
        `data:image/jpeg;base64,${jpeg.toString("base64")}`,
      ],
      options(),
    );
    assert.deepEqual(
      images.map((image) => image.mimeType),
      ["image/webp", "image/png", "image/jpeg"],
    );
  });

  test("a data URL declaring another image type is typed by its bytes", async () => {
    const [image] = await loadInputImages(
      [`data:image/jpeg;base64,${png.toString("base64")}`],
      options(),
    );
    assert.equal(image?.mimeType, "image/png");
  });

  test("no sources, no images", async () => {
    assert.deepEqual(await loadInputImages([], options()), []);
  });
});

describe("refused sources", () => {
  for (const [label, source] of [
    ["garbage", "this is not base64!"],
    ["base64 with whitespace", "iVBORw0K Ggo="],
    ["base64 of impossible length", "iVBORw0KG"],
    ["misplaced padding", "iVBO=w0K"],
    ["the URL-safe alphabet", "iVBORw0K-_=="],
    ["an empty string", ""],
  ] as const) {
    test(`${label} is an invalid image`, async () => {
      await assertHubError(loadInputImages([source], options()), {
        status: 400,
        code: "invalid_image",
      });
    });
  }

  test("with several sources, the error names the one at fault", async () => {
    await assertHubError(loadInputImages([png.toString("base64"), "%%%"], options()), {
      status: 400,
      code: "invalid_image",
      param: "image[1]",
    });
  });

  test("a data URL that is not base64, or not an image type, is refused", async () => {
    await assertHubError(loadInputImages(["data:image/png,rawbytes"], options()), {
      status: 400,
      code: "invalid_image",
      message: /base64/,
    });
    await assertHubError(
      loadInputImages([`data:text/html;base64,${png.toString("base64")}`], options()),
      { status: 400, code: "invalid_image", message: /text\/html/ },
    );
  });

  test("a GIF is an unsupported format", async () => {
    await assertHubError(loadInputImages([gif.toString("base64")], options()), {
      status: 400,
      code: "unsupported_image_format",
      message: /GIF; PNG, JPEG and WebP are accepted/,
    });
  });

  test("a text file is an unsupported format, by base64 or by URL", async () => {
    await assertHubError(
      loadInputImages([Buffer.from("hello, world\n").toString("base64")], options()),
      { status: 400, code: "unsupported_image_format" },
    );
    await assertHubError(loadInputImages([`${origin}/notes.txt`], options()), {
      status: 400,
      code: "unsupported_image_format",
    });
  });

  test("a PNG signature followed by garbage is an invalid image", async () => {
    const fake = Buffer.concat([png.subarray(0, 8), Buffer.from("garbage ".repeat(20))]);
    await assertHubError(loadInputImages([fake.toString("base64")], options()), {
      status: 400,
      code: "invalid_image",
    });
  });

  test("a PNG with a sound header and a damaged body is an invalid image", async () => {
    const truncated = png.subarray(0, png.length - 30);
    await assertHubError(decodeImageBytes(truncated, { maxPixels: MAX_PIXELS, param: "image" }), {
      status: 400,
      code: "invalid_image",
      message: /damaged PNG/,
    });
  });

  test("a JPEG signature on a PNG body is an invalid image", async () => {
    const liar = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), png.subarray(3)]);
    await assertHubError(decodeImageBytes(liar, { maxPixels: MAX_PIXELS, param: "mask" }), {
      status: 400,
      code: "invalid_image",
      param: "mask",
    });
  });

  test("a decompression bomb is refused by its header, with its size", async () => {
    assert.ok(bomb.length < 2 * 1024 * 1024, `bomb is ${bomb.length} bytes`);
    await assertHubError(
      loadInputImages([bomb.toString("base64")], options({ maxBytes: 4 * 1024 * 1024 })),
      {
        status: 413,
        code: "payload_too_large",
        message: /20000x20000 pixels; at most 16000000 pixels are accepted/,
      },
    );
  });

  test("oversized base64 is refused before it is decoded or even scanned", async () => {
    // Over the cap by its length, and invalid: the size is judged first.
    const oversized = "!".repeat(Math.ceil(((MAX_BYTES + 1) * 4) / 3) + 4);
    await assertHubError(loadInputImages([oversized], options()), {
      status: 413,
      code: "payload_too_large",
      message: /larger than 1048576 bytes/,
    });
    await assertHubError(loadInputImages([`data:image/png;base64,${oversized}`], options()), {
      status: 413,
      code: "payload_too_large",
    });
  });

  test("base64 of exactly the cap passes the size check", async () => {
    const [image] = await loadInputImages(
      [png.toString("base64")],
      options({ maxBytes: png.length }),
    );
    assert.equal(image?.width, 64);
    await assertHubError(
      loadInputImages([png.toString("base64")], options({ maxBytes: png.length - 1 })),
      { status: 413, code: "payload_too_large" },
    );
  });

  test("an oversized image at a URL is refused with 413", async () => {
    await assertHubError(loadInputImages([`${origin}/big.png`], options()), {
      status: 413,
      code: "payload_too_large",
    });
  });

  test("URLs go through the SSRF guard", async () => {
    const guarded = createSafeFetcher({});
    try {
      await assertHubError(loadInputImages([`${origin}/cat.png`], options({ fetcher: guarded })), {
        status: 400,
        code: "invalid_image_url",
      });
      await assertHubError(loadInputImages(["file:///etc/passwd"], options({ fetcher: guarded })), {
        status: 400,
        code: "invalid_image_url",
      });
    } finally {
      await guarded.close();
    }
  });

  test("one failure aborts the other loads", async () => {
    const started = Date.now();
    await assertHubError(loadInputImages([`${origin}/slow.png`, `${origin}/late.txt`], options()), {
      status: 400,
      code: "unsupported_image_format",
      param: "image[1]",
    });
    assert.ok(Date.now() - started < 1500, "did not wait for the slow fetch");
    await waitFor(() => abandoned.includes("/slow.png"));
  });

  test("the caller's signal cancels the loads with its reason", async () => {
    const controller = new AbortController();
    const reason = new Error("client went away");
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(
      loadInputImages([`${origin}/slow-too.png`], options({ signal: controller.signal })),
      (error) => error === reason,
    );
    await waitFor(() => abandoned.includes("/slow-too.png"));
    await assert.rejects(
      loadInputImages([png.toString("base64")], options({ signal: AbortSignal.abort(reason) })),
      (error) => error === reason,
    );
  });
});

describe("decodeImageBytes", () => {
  test("reports type and size of received bytes", async () => {
    assert.deepEqual(await decodeImageBytes(webp, { maxPixels: MAX_PIXELS, param: "image" }), {
      bytes: webp,
      mimeType: "image/webp",
      width: 64,
      height: 48,
    });
  });

  test("an empty file is an invalid image", async () => {
    await assertHubError(
      decodeImageBytes(Buffer.alloc(0), { maxPixels: MAX_PIXELS, param: "image" }),
      {
        status: 400,
        code: "invalid_image",
      },
    );
  });

  // Its pixel data is cut short after four rows: a decode would refuse it as damaged (400), so a
  // 413 naming its size says the header alone refused it.
  test("a bomb is refused by its header without a decode", async () => {
    const header = pngBomb(50_000, 50_000);
    assert.ok(header.length < 200);
    await assertHubError(decodeImageBytes(header, { maxPixels: MAX_PIXELS, param: "mask" }), {
      status: 413,
      code: "payload_too_large",
      param: "mask",
      message: /50000x50000 pixels; at most 16000000/,
    });
    // The same bytes under a limit that lets them through are decoded, and refused as damaged.
    await assertHubError(
      decodeImageBytes(pngBomb(64, 64), { maxPixels: MAX_PIXELS, param: "image" }),
      {
        status: 400,
        code: "invalid_image",
      },
    );
  });

  test("the pixel limit applies", async () => {
    await assertHubError(decodeImageBytes(png, { maxPixels: 64 * 48 - 1, param: "image" }), {
      status: 413,
      code: "payload_too_large",
      message: /64x48 pixels/,
    });
  });
});
