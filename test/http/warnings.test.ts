/**
 * Warnings that mean something: `X-Image-Hub-Warnings` names only what the client sent and the
 * model dropped. And the placeholder's edits show the input image, so an edit can be seen to
 * work offline.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

let sim: OpenAISimulator;
let hub: TestHub;
before(async () => {
  sim = await startOpenAISimulator();
  hub = await startTestHub({ OPENAI_API_KEY: sim.apiKey, OPENAI_BASE_URL: sim.baseURL });
});
after(async () => {
  await hub?.close();
  await sim?.close();
});

async function generate(body: Record<string, unknown>) {
  const reply = await hub.app.inject({
    method: "POST",
    url: "/v1/images/generations",
    headers: { authorization: `Bearer ${hub.key}` },
    payload: { prompt: "a red barn", response_format: "b64_json", ...body },
  });
  assert.equal(reply.statusCode, 200, reply.body);
  return reply;
}

describe("warnings", () => {
  it("dall-e-2 with nothing dropped says nothing (no quality nobody sent)", async () => {
    const reply = await generate({ model: "dall-e-2", size: "256x256" });
    assert.equal(reply.headers["x-image-hub-model"], "dall-e-2");
    assert.equal(reply.headers["x-image-hub-warnings"], undefined);
  });

  it("a style sent to a GPT image model is dropped with a word, vivid included", async () => {
    for (const style of ["vivid", "natural"]) {
      const reply = await generate({ model: "gpt-image-2", style });
      assert.match(String(reply.headers["x-image-hub-warnings"]), new RegExp(`style '${style}'`));
      const sent = sim.requests.at(-1)?.json;
      assert.equal(sent?.style, undefined, "not sent upstream");
    }
  });

  it("a quality the model has no notion of is named when sent, and only then", async () => {
    const quiet = await generate({ model: "local/placeholder", size: "64x64" });
    assert.equal(quiet.headers["x-image-hub-warnings"], undefined);
  });
});

describe("the placeholder's edits", () => {
  it("show the input image under the pattern", async () => {
    const red = await sharp({
      create: { width: 64, height: 64, channels: 3, background: "#ff0000" },
    })
      .png()
      .toBuffer();
    const reply = await generate({
      model: "local/placeholder",
      image: red.toString("base64"),
      size: "64x64",
    });
    const output = Buffer.from(reply.json().data[0].b64_json, "base64");
    const { channels } = await sharp(output).stats();
    const [r, g, b] = channels.map((channel) => channel.mean) as [number, number, number];
    assert.ok(
      r > 150 && r > g + 60 && r > b + 60,
      `the red input shows through (r ${r}, g ${g}, b ${b})`,
    );
  });
});
