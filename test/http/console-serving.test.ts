/**
 * The hub serves its console itself: the page at `/` and at each page's path (deep links), its
 * hashed assets for a year, its favicon, all under a strict Content-Security-Policy, and tells
 * the page where the hub lives when PUBLIC_URL has a path. Unknown paths keep the API's 404.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { consoleDist, ensureConsoleBuilt } from "../../scripts/build-console.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

let hub: TestHub;

before(async () => {
  await ensureConsoleBuilt();
  hub = await startTestHub();
});
after(() => hub?.close());

describe("the console's files", () => {
  for (const page of ["/", "/playground", "/gallery", "/keys", "/usage", "/models"]) {
    it(`serves the page at ${page}`, async () => {
      const response = await fetch(`${hub.url}${page}`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
      assert.equal(response.headers.get("cache-control"), "no-cache");
      const csp = response.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'self'(;|$)/, "no inline or remote scripts");
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(response.headers.get("referrer-policy"), "no-referrer");
      const html = await response.text();
      assert.match(html, /<meta name="image-hub-base" content="\/"/);
      assert.doesNotMatch(html, /https?:\/\//, "nothing from elsewhere");
    });
  }

  it("serves hashed assets for a year, and 404s in the API's shape for others", async () => {
    const assets = await readdir(path.join(consoleDist, "assets"));
    const script = assets.find((name) => name.endsWith(".js"));
    assert.ok(script);
    const response = await fetch(`${hub.url}/assets/${script}`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /javascript/);
    assert.match(response.headers.get("cache-control") ?? "", /max-age=31536000.*immutable/);
    const missing = await fetch(`${hub.url}/assets/nope.js`);
    assert.equal(missing.status, 404);
    const other = await fetch(`${hub.url}/not-a-page`);
    assert.equal(other.status, 404);
    assert.equal(((await other.json()) as { error: { code: string } }).error.code, "unknown_url");
  });

  it("serves the favicon at both names browsers ask for", async () => {
    for (const name of ["/favicon.svg", "/favicon.ico"]) {
      const response = await fetch(`${hub.url}${name}`);
      assert.equal(response.status, 200, name);
      assert.equal(response.headers.get("content-type"), "image/svg+xml");
      assert.match(await response.text(), /<svg/);
    }
  });

  it("keeps the console out of the API reference", async () => {
    const document = (await (await fetch(`${hub.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    for (const page of ["/", "/keys", "/assets/{*}", "/favicon.svg"]) {
      assert.equal(document.paths[page], undefined, page);
    }
  });
});

describe("a hub under a path prefix", () => {
  it("tells the page its base and lets it load images from PUBLIC_URL's origin", async () => {
    const prefixed = await startTestHub({ PUBLIC_URL: "http://localhost:9999/tools/hub" });
    try {
      const response = await fetch(`${prefixed.url}/keys`);
      const html = await response.text();
      assert.match(html, /<meta name="image-hub-base" content="\/tools\/hub\/"/);
      const csp = response.headers.get("content-security-policy") ?? "";
      assert.match(csp, /img-src 'self' http:\/\/localhost:9999 data: blob:/);
    } finally {
      await prefixed.close();
    }
  });
});
