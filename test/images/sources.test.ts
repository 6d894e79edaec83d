/**
 * The input-image loader as the pipeline uses it: which sources reach the SSRF-guarded fetcher
 * (every URL, whatever its scheme), which never do (data: URLs, base64, uploaded bytes), and the
 * size cap that holds for each before any byte is decoded or fetched.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { createImageSourceLoader } from "../../src/images/sources.ts";
import {
  createSafeFetcher,
  type SafeFetcher,
  type SafeFetchRequest,
} from "../../src/net/safe-fetch.ts";
import { hubErrorOf } from "../helpers/errors.ts";

const MAX_BYTES = 4096;
const MAX_PIXELS = 1_000_000;

let png: Buffer;
let target: http.Server;
let targetPort: number;
let targetConnections = 0;
let guarded: SafeFetcher;

before(async () => {
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#00f" } })
    .png()
    .toBuffer();
  target = http.createServer((_request, response) => response.end(png));
  target.on("connection", () => {
    targetConnections++;
  });
  await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
  targetPort = (target.address() as AddressInfo).port;
  guarded = createSafeFetcher({ connectTimeoutMs: 1000, timeoutMs: 2000 });
});

after(async () => {
  await guarded.close();
  target.closeAllConnections();
  await new Promise((resolve) => target.close(resolve));
});

/** A fetcher that records what it is asked and answers with the PNG. */
function spyFetcher() {
  const calls: Array<{ url: string; request: SafeFetchRequest | undefined }> = [];
  return {
    calls,
    async fetch(url: string, request?: SafeFetchRequest) {
      calls.push({ url, request });
      return { bytes: png, contentType: "image/png", finalUrl: url };
    },
  };
}

function loaderWith(fetcher: Pick<SafeFetcher, "fetch">, maxBytes = MAX_BYTES) {
  return createImageSourceLoader({ fetcher, maxBytes, maxPixels: MAX_PIXELS });
}

const signal = new AbortController().signal;

describe("what reaches the fetcher", () => {
  test("data: URLs, bare base64 and uploaded bytes never do", async () => {
    const fetcher = spyFetcher();
    const images = await loaderWith(fetcher)(
      [`data:image/png;base64,${png.toString("base64")}`, png.toString("base64"), png],
      "image",
      signal,
    );
    assert.equal(images.length, 3);
    assert.deepEqual(fetcher.calls, []);
  });

  test("a URL does, with its param, the byte cap and a signal", async () => {
    const fetcher = spyFetcher();
    await loaderWith(fetcher)(["https://images.example.com/a.png", png], "image", signal);
    assert.equal(fetcher.calls.length, 1);
    const [call] = fetcher.calls;
    assert.equal(call?.url, "https://images.example.com/a.png");
    assert.equal(call?.request?.param, "image[0]");
    assert.equal(call?.request?.maxBytes, MAX_BYTES);
    assert.ok(call?.request?.signal instanceof AbortSignal);
  });

  test("every other scheme goes to the fetcher, which refuses it", async () => {
    for (const source of [
      "file:///etc/passwd",
      "FILE:///etc/passwd",
      "ftp://127.0.0.1/a.png",
      "gopher://127.0.0.1:70/_GET",
      "javascript:alert(1)",
      "blob:http://127.0.0.1/1",
      `http://127.0.0.1:${targetPort}/a.png`,
      `http://user:pass@127.0.0.1:${targetPort}/a.png`,
      `http://[::ffff:7f00:1]:${targetPort}/a.png`,
      `http://2130706433:${targetPort}/a.png`,
    ]) {
      const error = await hubErrorOf(loaderWith(guarded)([source], "mask", signal));
      assert.equal(error.status, 400, source);
      assert.equal(error.code, "invalid_image_url", source);
      assert.equal(error.param, "mask");
    }
    assert.equal(targetConnections, 0);
  });

  test("a scheme hidden behind whitespace is not a URL and is not fetched", async () => {
    const fetcher = spyFetcher();
    for (const source of [" file:///etc/passwd", "\thttp://127.0.0.1/"]) {
      const error = await hubErrorOf(loaderWith(fetcher)([source], "image", signal));
      assert.equal(error.status, 400);
      assert.equal(error.code, "invalid_image");
    }
    assert.deepEqual(fetcher.calls, []);
  });
});

describe("the byte cap", () => {
  test("a data: URL larger than the cap is a 413, before decoding and without a fetch", async () => {
    const fetcher = spyFetcher();
    const tooBig = Buffer.alloc(MAX_BYTES + 1, 7);
    for (const source of [
      `data:image/png;base64,${tooBig.toString("base64")}`,
      `DATA:image/png;base64,${tooBig.toString("base64")}`,
      tooBig.toString("base64"),
    ]) {
      const error = await hubErrorOf(loaderWith(fetcher)([source], "image", signal));
      assert.equal(error.status, 413);
      assert.equal(error.code, "payload_too_large");
      assert.match(error.message, new RegExp(`larger than ${MAX_BYTES} bytes`));
    }
    assert.deepEqual(fetcher.calls, []);
  });

  test("a data: URL at the cap passes the size check", async () => {
    const [image] = await loaderWith(spyFetcher(), png.length)(
      [`data:image/png;base64,${png.toString("base64")}`],
      "image",
      signal,
    );
    assert.equal(image?.width, 8);
  });

  test("a data: URL of another type, or not base64, is refused without a fetch", async () => {
    const fetcher = spyFetcher();
    for (const source of [
      `data:text/html;base64,${png.toString("base64")}`,
      "data:image/svg+xml,<svg onload=alert(1)>",
      `data:image/png,${png.toString("latin1")}`,
    ]) {
      const error = await hubErrorOf(loaderWith(fetcher)([source], "image", signal));
      assert.equal(error.status, 400, source.slice(0, 30));
    }
    assert.deepEqual(fetcher.calls, []);
  });
});
