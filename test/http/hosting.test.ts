/**
 * Hosted images over HTTP: the signed URL of a `url` reply is a capability that works without a
 * key, cannot be altered, expires, and never opens anything but a hosted image.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

let hub: TestHub;

/** Generates one local/placeholder image and returns its hosted URL. */
async function hostedUrl(target: TestHub, size = "200x100"): Promise<string> {
  const response = await fetch(`${target.url}/api/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${target.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "local/placeholder", prompt: "a hosted test pattern", size }),
  });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { data: Array<{ url?: string }> };
  const url = body.data[0]?.url;
  assert.ok(url);
  return url;
}

function assertErrorShape(body: unknown, code: string): void {
  const error = (body as { error?: Record<string, unknown> }).error;
  assert.ok(error, `an OpenAI error body: ${JSON.stringify(body)}`);
  assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"]);
  assert.equal(typeof error.message, "string");
  assert.equal(error.code, code);
}

/** Sends a path exactly as written (fetch and URL would normalise `..` away). */
function rawGet(target: TestHub, rawPath: string): Promise<{ status: number; body: Buffer }> {
  const { hostname, port } = new URL(target.url);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ hostname, port, path: rawPath, method: "GET" }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }),
      );
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end();
  });
}

function withQuery(url: string, name: string, value: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set(name, value);
  return parsed.href;
}

before(async () => {
  hub = await startTestHub();
});

after(async () => {
  await hub?.close();
});

describe("hosted image URLs", () => {
  it("serve the image without any key", async () => {
    const url = await hostedUrl(hub);
    const response = await fetch(url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "image/png");
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    const cacheControl = response.headers.get("cache-control") ?? "";
    assert.match(cacheControl, /private/);
    const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)?.[1]);
    assert.ok(maxAge > 3500 && maxAge <= 3600, cacheControl);
    const bytes = Buffer.from(await response.arrayBuffer());
    assert.equal(response.headers.get("content-length"), String(bytes.length));
    const metadata = await sharp(bytes).metadata();
    assert.deepEqual([metadata.width, metadata.height], [200, 100]);
  });

  it("look like /files/images/<id>.png?expires=<unix seconds>&signature=<base64url>", async () => {
    const url = new URL(await hostedUrl(hub));
    assert.equal(url.origin, hub.url);
    assert.match(url.pathname, /^\/files\/images\/[A-Za-z0-9_-]{22}\.png$/);
    const expires = Number(url.searchParams.get("expires"));
    const inAnHour = Date.now() / 1000 + 3600;
    assert.ok(Math.abs(expires - inAnHour) < 60, `expires ${expires}`);
    assert.match(url.searchParams.get("signature") ?? "", /^[A-Za-z0-9_-]{43}$/);
  });

  it("serve JPEG and WebP under their own types", async () => {
    for (const [format, type, extension] of [
      ["jpeg", "image/jpeg", "jpg"],
      ["webp", "image/webp", "webp"],
    ] as const) {
      const generation = await fetch(`${hub.url}/v1/images/generations`, {
        method: "POST",
        headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "local/placeholder",
          prompt: "a pattern",
          size: "64x64",
          output_format: format,
        }),
      });
      const url = ((await generation.json()) as { data: Array<{ url: string }> }).data[0]?.url;
      assert.ok(url);
      assert.ok(new URL(url).pathname.endsWith(`.${extension}`), url);
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), type);
      const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.equal(metadata.format, format);
    }
  });

  it("answer HEAD with the headers and no body", async () => {
    const url = await hostedUrl(hub);
    const full = Buffer.from(await (await fetch(url)).arrayBuffer());
    const response = await fetch(url, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "image/png");
    assert.equal(response.headers.get("content-length"), String(full.length));
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  it("refuse a signature with one character changed (403)", async () => {
    const url = await hostedUrl(hub);
    const signature = new URL(url).searchParams.get("signature") ?? "";
    for (const index of [0, signature.length - 1]) {
      const original = signature[index];
      const changed =
        signature.slice(0, index) + (original === "A" ? "B" : "A") + signature.slice(index + 1);
      const response = await fetch(withQuery(url, "signature", changed));
      assert.equal(response.status, 403, `signature changed at ${index}`);
      assertErrorShape(await response.json(), "invalid_signature");
    }
  });

  it("refuse a changed expiry (403), later or earlier", async () => {
    const url = await hostedUrl(hub);
    const expires = Number(new URL(url).searchParams.get("expires"));
    for (const changed of [expires + 1, expires + 86400, expires - 1]) {
      const response = await fetch(withQuery(url, "expires", String(changed)));
      assert.equal(response.status, 403, `expires ${changed}`);
      assertErrorShape(await response.json(), "invalid_signature");
    }
  });

  it("refuse a missing or repeated signature (403)", async () => {
    const url = new URL(await hostedUrl(hub));
    const signature = url.searchParams.get("signature") ?? "";
    url.searchParams.delete("signature");
    const missing = await fetch(url);
    assert.equal(missing.status, 403);
    assertErrorShape(await missing.json(), "invalid_signature");
    const repeated = await fetch(`${url.href}&signature=${signature}&signature=${signature}`);
    assert.equal(repeated.status, 403);
  });

  it("refuse another image's name under a valid signature (403)", async () => {
    const first = new URL(await hostedUrl(hub));
    const second = new URL(await hostedUrl(hub));
    second.pathname = first.pathname;
    const response = await fetch(second);
    assert.equal(response.status, 403);
  });

  it("refuse the other extension of the same id (403)", async () => {
    const url = new URL(await hostedUrl(hub));
    url.pathname = url.pathname.replace(/\.png$/, ".jpg");
    const response = await fetch(url);
    assert.equal(response.status, 403);
  });

  it("never serve a file outside the image store, whatever the path", async () => {
    const url = new URL(await hostedUrl(hub));
    const query = url.search;
    const sqlite = await readFile(path.join(hub.dataDir, "image-hub.sqlite"));
    const secret = await readFile(path.join(hub.dataDir, "url-signing.key"));
    const attempts = [
      `/files/images/..%2f..%2fimage-hub.sqlite${query}`,
      `/files/images/..%2Fimage-hub.sqlite${query}`,
      `/files/images/%2e%2e%2f%2e%2e%2furl-signing.key${query}`,
      `/files/images/..%5c..%5cimage-hub.sqlite${query}`,
      `/files/images/../image-hub.sqlite${query}`,
      `/files/images/../../image-hub.sqlite${query}`,
      `/files/images/image-hub.sqlite${query}`,
      "/files/images/..%2f..%2fimage-hub.sqlite?expires=99999999999&signature=AAAA",
      "/files/image-hub.sqlite",
      "/files/images/",
      "/files/images",
    ];
    for (const attempt of attempts) {
      const response = await rawGet(hub, attempt);
      assert.ok(
        [400, 403, 404].includes(response.status),
        `${attempt} answered ${response.status}`,
      );
      assert.ok(!response.body.includes(Buffer.from("SQLite format")), attempt);
      assert.ok(!response.body.includes(sqlite.subarray(0, 64)), attempt);
      assert.ok(!response.body.includes(secret.subarray(0, 20)), attempt);
      const json = JSON.parse(response.body.toString("utf8")) as unknown;
      assert.ok((json as { error?: unknown }).error, `${attempt}: an error body`);
    }
  });

  it("never serve a file outside the store even under a signature made with the hub's key", async () => {
    // Defence in depth: were the signing key to leak, names are still only ever image ids.
    const secret = Buffer.from(
      (await readFile(path.join(hub.dataDir, "url-signing.key"), "utf8")).trim(),
      "base64url",
    );
    const expires = String(Math.floor(Date.now() / 1000) + 600);
    for (const name of ["../image-hub.sqlite", "../../image-hub.sqlite", "..%2fimage-hub.sqlite"]) {
      const signature = createHmac("sha256", secret)
        .update(`image-hub/image-url/v1\n/files/images/${name}\n${expires}`)
        .digest("base64url");
      const encoded = encodeURIComponent(name);
      const response = await rawGet(
        hub,
        `/files/images/${encoded}?expires=${expires}&signature=${signature}`,
      );
      assert.equal(response.status, 404, name);
      assertErrorShape(JSON.parse(response.body.toString("utf8")), "image_not_found");
      assert.ok(!response.body.includes(Buffer.from("SQLite format")), name);
    }
  });
});

describe("hosted image URLs after they expire", () => {
  let clockHub: TestHub;

  before(async () => {
    clockHub = await startTestHub();
  });

  after(async () => {
    await clockHub?.close();
  });

  it("work until the hour is up and answer 410 url_expired after", async () => {
    const url = await hostedUrl(clockHub);
    clockHub.advanceClock(3500_000);
    const late = await fetch(url);
    assert.equal(late.status, 200);
    const maxAge = Number(/max-age=(\d+)/.exec(late.headers.get("cache-control") ?? "")?.[1]);
    assert.ok(maxAge <= 100, `max-age ${maxAge} shrinks as the expiry nears`);
    await late.arrayBuffer();

    clockHub.advanceClock(101_000);
    const expired = await fetch(url);
    assert.equal(expired.status, 410);
    assert.match(expired.headers.get("content-type") ?? "", /^application\/json/);
    const body = (await expired.json()) as { error: { type: string } };
    assertErrorShape(body, "url_expired");
    assert.equal(body.error.type, "invalid_request_error");

    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 410);
  });

  it("answer 410 for a URL made before a 3601-second jump", async () => {
    const url = await hostedUrl(clockHub);
    clockHub.advanceClock(3601_000);
    const response = await fetch(url);
    assert.equal(response.status, 410);
    assertErrorShape(await response.json(), "url_expired");
  });
});
