/**
 * The openai SDK all the way: `models.retrieve` for any id (a slash included), a key's model list
 * holding only what it may use, and an `n` no key limit can ever pass refused with a 400 the SDK
 * does not retry, not a 429 it retries for minutes.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { issueKey } from "../../src/auth/issue.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

let hub: TestHub;
before(async () => {
  hub = await startTestHub();
});
after(() => hub?.close());

function client(apiKey = hub.key, maxRetries = 0) {
  return new OpenAI({ baseURL: `${hub.url}/v1`, apiKey, maxRetries });
}

describe("models through the SDK", () => {
  it("models.retrieve finds a model by id with a slash, and by alias; an unknown one is a 404", async () => {
    const model = await client().models.retrieve("local/placeholder");
    assert.equal(model.id, "local/placeholder");
    assert.equal((model as unknown as { status: string }).status, "active");
    assert.equal((await client().models.retrieve("placeholder")).id, "local/placeholder");
    await assert.rejects(client().models.retrieve("dall-e-9"), (error: { status: number }) => {
      return error.status === 404;
    });
  });

  it("a key's list holds only the models it may use, and a retrieve of another is a 404", async () => {
    const { key } = await issueKey(hub.db, {
      name: "placeholder only",
      role: "client",
      models: ["local/placeholder"],
    });
    const listed = [];
    for await (const model of client(key).models.list()) listed.push(model.id);
    assert.deepEqual(listed, ["local/placeholder"]);
    const all = [];
    for await (const model of client().models.list()) all.push(model.id);
    assert.ok(all.length >= 1);
  });
});

describe("a request that can never pass its key's limit", () => {
  it("n above the key's images per minute is a 400 naming the limit, sent once", async () => {
    const { key } = await issueKey(hub.db, { name: "two a minute", role: "client", ipm: 2 });
    let attempts = 0;
    const counting = new OpenAI({
      baseURL: `${hub.url}/v1`,
      apiKey: key,
      fetch: (url, init) => {
        attempts += 1;
        return fetch(url, init);
      },
    });
    await assert.rejects(
      counting.images.generate({
        model: "local/placeholder",
        prompt: "x",
        n: 3,
        size: "64x64" as "256x256",
      }),
      (error: { status: number; code: string; param: string; message: string }) =>
        error.status === 400 &&
        error.code === "n_above_key_limit" &&
        error.param === "n" &&
        /at most 2/.test(error.message),
    );
    assert.equal(attempts, 1, "the SDK does not retry a 400");
    const fits = await counting.images.generate({
      model: "local/placeholder",
      prompt: "x",
      n: 2,
      size: "64x64" as "256x256",
      response_format: "b64_json",
    });
    assert.equal(fits.data?.length, 2);
  });
});
