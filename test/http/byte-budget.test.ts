/**
 * The byte budget end to end: with room for only a few replies at a time, many requests (in
 * sequence, in parallel, failing) all complete, so every hold is given back.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

// A hold that is never given back shows as a request that never ends: fail, do not hang.
describe("byte budget through the hub", { timeout: 30_000 }, () => {
  let sim: OpenAISimulator;
  let hub: TestHub;

  before(async () => {
    sim = await startOpenAISimulator();
    hub = await startTestHub({
      OPENAI_API_KEY: sim.apiKey,
      OPENAI_BASE_URL: sim.baseURL,
      MAX_BUFFERED_IMAGE_BYTES: String(1024 * 1024),
    });
  });
  after(async () => {
    await hub?.close();
    await sim?.close();
  });

  const generate = (body: Record<string, unknown> = {}, signal?: AbortSignal) =>
    fetch(`${hub.url}/v1/images/generations`, {
      method: "POST",
      signal,
      headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "dall-e-2",
        prompt: "a lighthouse",
        size: "512x512",
        response_format: "b64_json",
        ...body,
      }),
    });

  it("serves far more replies than fit in the budget at once, in sequence and in parallel", async () => {
    for (let index = 0; index < 12; index++) assert.equal((await generate()).status, 200);
    const replies = await Promise.all(Array.from({ length: 12 }, () => generate({ n: 3 })));
    for (const reply of replies) {
      assert.equal(reply.status, 200);
      assert.equal(((await reply.json()) as { data: unknown[] }).data.length, 3);
    }
  });

  it("gives holds back after failures and abandoned requests", async () => {
    sim.failNext({ status: 500, body: { error: { message: "boom", type: "server_error" } } });
    assert.equal((await generate()).status, 502);
    sim.delayMs = 200;
    const controller = new AbortController();
    const abandoned = generate({}, controller.signal).catch(() => undefined);
    setTimeout(() => controller.abort(), 50);
    await abandoned;
    sim.delayMs = 0;
    for (let index = 0; index < 6; index++) assert.equal((await generate({ n: 2 })).status, 200);
  });
});
