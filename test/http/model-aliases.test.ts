/**
 * MODEL_ALIASES: an operator routes the default model `dall-e-2` to the offline placeholder, and
 * the spec's first example then works verbatim on a hub with no provider keys.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

describe("model aliases", () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub({ MODEL_ALIASES: "dall-e-2=local/placeholder" });
  });
  after(() => hub.close());

  it("serves the spec's basic example through the aliased default model", async () => {
    const response = await fetch(`${hub.url}/api/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${hub.key}` },
      body: JSON.stringify({
        prompt: "A photorealistic image of a cat programming on a laptop",
        n: 1,
        size: "1024x1024",
      }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-image-hub-model"), "local/placeholder");
    const body = (await response.json()) as { created: number; data: Array<{ url: string }> };
    assert.deepEqual(Object.keys(body).sort(), ["created", "data"]);
    assert.ok(Math.abs(body.created - Date.now() / 1000) < 60);
    assert.equal(body.data.length, 1);
    const image = await fetch(body.data[0]?.url as string);
    assert.equal(image.status, 200);
    const metadata = await sharp(Buffer.from(await image.arrayBuffer())).metadata();
    assert.deepEqual([metadata.format, metadata.width, metadata.height], ["png", 1024, 1024]);
  });
});
