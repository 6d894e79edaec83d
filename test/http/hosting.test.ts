/**
 * Hosted images over HTTP: the signed URL of a `url` reply is a capability that works without a
 * key, cannot be altered, expires, and never opens anything but a hosted image.
 */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
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

/** The hub's own URL signing key, as a leaked key would be. */
async function signingKeyOf(target: TestHub): Promise<Buffer> {
  const text = await readFile(path.join(target.dataDir, "url-signing.key"), "utf8");
  return Buffer.from(text.trim(), "base64url");
}

/** A signature over `/files/images/<name>` and `expires`, as the hub makes them. */
function signatureFor(secret: Buffer, name: string, expires: string): string {
  return createHmac("sha256", secret)
    .update(`image-hub/image-url/v1\n/files/images/${name}\n${expires}`)
    .digest("base64url");
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

  it("refuse forged signatures: garbage, wrong length, re-encoded, from another key (403)", async () => {
    const url = new URL(await hostedUrl(hub));
    const name = url.pathname.slice("/files/images/".length);
    const expires = url.searchParams.get("expires") ?? "";
    const signature = url.searchParams.get("signature") ?? "";
    const standardBase64 = Buffer.from(signature, "base64url").toString("base64");
    const forged = [
      "",
      "AAAA",
      "A".repeat(43),
      randomBytes(32).toString("base64url"),
      signature.slice(0, 42),
      `${signature}A`,
      standardBase64,
      signature.toLowerCase() === signature ? signature.toUpperCase() : signature.toLowerCase(),
      signatureFor(randomBytes(32), name, expires),
      // The hub's key, without the context string: signatures of other uses do not pass.
      createHmac("sha256", await signingKeyOf(hub))
        .update(`/files/images/${name}\n${expires}`)
        .digest("base64url"),
    ];
    for (const candidate of forged) {
      const response = await fetch(withQuery(url.href, "signature", candidate));
      assert.equal(response.status, 403, `signature ${candidate}`);
      assertErrorShape(await response.json(), "invalid_signature");
    }
  });

  it("refuse a URL signed by another hub (403)", async () => {
    const other = await startTestHub();
    try {
      const foreign = new URL(await hostedUrl(other));
      const here = new URL(`${foreign.pathname}${foreign.search}`, hub.url);
      const response = await fetch(here);
      assert.equal(response.status, 403);
      assertErrorShape(await response.json(), "invalid_signature");
    } finally {
      await other.close();
    }
  });

  it("refuse an id with one character changed, and an id never issued (403)", async () => {
    const url = new URL(await hostedUrl(hub));
    const id = url.pathname.slice("/files/images/".length, -".png".length);
    for (const index of [0, 10, id.length - 1]) {
      const changed = id.slice(0, index) + (id[index] === "A" ? "B" : "A") + id.slice(index + 1);
      const tampered = new URL(url);
      tampered.pathname = `/files/images/${changed}.png`;
      const response = await fetch(tampered);
      assert.equal(response.status, 403, `id changed at ${index}`);
      assertErrorShape(await response.json(), "invalid_signature");
    }
    const invented = new URL(url);
    invented.pathname = `/files/images/${randomBytes(16).toString("base64url")}.png`;
    assert.equal((await fetch(invented)).status, 403);
  });

  it("refuse every extension but the one signed (403)", async () => {
    const url = new URL(await hostedUrl(hub));
    for (const extension of ["jpg", "webp", "PNG", "png.png", "html", "svg", "sqlite", ""]) {
      const tampered = new URL(url);
      tampered.pathname = url.pathname.replace(/\.png$/, extension ? `.${extension}` : "");
      const response = await fetch(tampered);
      assert.equal(response.status, 403, `.${extension}`);
      assertErrorShape(await response.json(), "invalid_signature");
    }
  });

  it("refuse an expiry rewritten to the same time in another spelling (403)", async () => {
    const url = await hostedUrl(hub);
    const expires = new URL(url).searchParams.get("expires") ?? "";
    for (const spelling of [`0${expires}`, `${expires}.0`, `+${expires}`, `${expires} `, ""]) {
      const response = await fetch(withQuery(url, "expires", spelling));
      assert.equal(response.status, 403, `expires '${spelling}'`);
    }
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
      // Double encoding, null bytes, absolute paths, raw backslashes, overlong UTF-8, look-alikes.
      `/files/images/%252e%252e%252fimage-hub.sqlite${query}`,
      `/files/images/%252e%252e%255cimage-hub.sqlite${query}`,
      `/files/images/..%00.png${query}`,
      `/files/images/image-hub.sqlite%00.png${query}`,
      `/files/images/%2Fetc%2Fpasswd${query}`,
      `/files/images/%2f${encodeURIComponent(hub.dataDir)}%2furl-signing.key${query}`,
      `/files/images//etc/passwd${query}`,
      `/files/images/..\\..\\image-hub.sqlite${query}`,
      `/files/images/%c0%ae%c0%ae%c0%afimage-hub.sqlite${query}`,
      `/files/images/%e2%80%a4%e2%80%a4%2fimage-hub.sqlite${query}`,
      `/files/images/%2e%2e${query}`,
      `/files/images/.${query}`,
      `${url.pathname}/../../image-hub.sqlite${query}`,
      `${url.pathname}%2f..%2f..%2fimage-hub.sqlite${query}`,
      `${url.pathname};/../../image-hub.sqlite${query}`,
      `/files/./images/..%2fimage-hub.sqlite${query}`,
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

  it("never serve a file for names the router refuses: bad escapes, over-long names", async () => {
    const url = new URL(await hostedUrl(hub));
    const sqlite = await readFile(path.join(hub.dataDir, "image-hub.sqlite"));
    for (const [attempt, status] of [
      [`/files/images/%${url.search}`, 400],
      [`/files/images/%zz..%2fimage-hub.sqlite${url.search}`, 400],
      [`/files/images/${"A".repeat(300)}.png${url.search}`, 414],
      [`/files/images/${"..%2f".repeat(60)}image-hub.sqlite${url.search}`, 414],
      [`/files/images/${"A".repeat(20_000)}.png${url.search}`, 431],
    ] as const) {
      const response = await rawGet(hub, attempt);
      assert.equal(response.status, status, attempt.slice(0, 60));
      assert.ok(!response.body.includes(Buffer.from("SQLite format")), attempt.slice(0, 60));
      assert.ok(!response.body.includes(sqlite.subarray(0, 64)), attempt.slice(0, 60));
    }
  });

  it("answer names the router refuses in the OpenAI error shape", async () => {
    const url = new URL(await hostedUrl(hub));
    for (const attempt of [
      `/files/images/%${url.search}`,
      `/files/images/${"A".repeat(300)}.png${url.search}`,
    ]) {
      const response = await rawGet(hub, attempt);
      assertErrorShape(JSON.parse(response.body.toString("utf8")), "invalid_request");
    }
  });

  it("never read a file outside the store that is named like an image, signed with the hub's key", async () => {
    // A canary beside the store with a name the store would take: only the path checks keep it
    // out, not the signature and not the name pattern alone.
    const canaryName = `${"C".repeat(22)}.png`;
    const canary = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), randomBytes(64)]);
    await writeFile(path.join(hub.dataDir, canaryName), canary);
    const secret = await signingKeyOf(hub);
    const expires = String(Math.floor(Date.now() / 1000) + 600);
    for (const name of [
      `../${canaryName}`,
      `..\\${canaryName}`,
      `./../${canaryName}`,
      `images/../../${canaryName}`,
      `${path.join(hub.dataDir, canaryName)}`,
    ]) {
      const signature = signatureFor(secret, name, expires);
      for (const encoded of [
        encodeURIComponent(name),
        encodeURIComponent(encodeURIComponent(name)),
      ]) {
        const response = await rawGet(
          hub,
          `/files/images/${encoded}?expires=${expires}&signature=${signature}`,
        );
        assert.ok([403, 404].includes(response.status), `${name}: ${response.status}`);
        assert.ok(!response.body.includes(canary.subarray(8)), `${name} served the canary`);
        assertErrorShape(
          JSON.parse(response.body.toString("utf8")),
          response.status === 404 ? "image_not_found" : "invalid_signature",
        );
      }
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

  it("answer 403, not 410, to an expired URL that was tampered with or forged", async () => {
    // Past the expiry, a forged URL must not learn that the image once existed.
    const url = await hostedUrl(clockHub);
    clockHub.advanceClock(7200_000);
    const expires = Number(new URL(url).searchParams.get("expires"));
    for (const tampered of [
      withQuery(url, "expires", String(expires + 7200)),
      withQuery(url, "signature", "A".repeat(43)),
      withQuery(url, "signature", signatureFor(randomBytes(32), "x.png", String(expires))),
    ]) {
      const response = await fetch(tampered);
      assert.equal(response.status, 403, tampered);
      assertErrorShape(await response.json(), "invalid_signature");
    }
    assert.equal((await fetch(url)).status, 410);
  });

  it("answer 410 to a validly signed URL whose expiry has passed, though the file is still there", async () => {
    const url = new URL(await hostedUrl(clockHub));
    const name = url.pathname.slice("/files/images/".length);
    const secret = await signingKeyOf(clockHub);
    const yearBefore = Number(url.searchParams.get("expires")) - 86_400 * 365;
    for (const expires of ["0", "1", String(yearBefore)]) {
      const signed = new URL(url);
      signed.searchParams.set("expires", expires);
      signed.searchParams.set("signature", signatureFor(secret, name, expires));
      const response = await fetch(signed);
      assert.equal(response.status, 410, `expires ${expires}`);
      assertErrorShape(await response.json(), "url_expired");
    }
    assert.equal((await fetch(url)).status, 200);
  });

  it("answer 410 for a URL made before a 3601-second jump", async () => {
    const url = await hostedUrl(clockHub);
    clockHub.advanceClock(3601_000);
    const response = await fetch(url);
    assert.equal(response.status, 410);
    assertErrorShape(await response.json(), "url_expired");
  });
});
