/**
 * AIGNE's request bodies as the pipeline's request (http/aigne/input.ts), without HTTP.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isHubError } from "../../src/errors.ts";
import { callOfAigneInvoke, callOfOpenAIShaped } from "../../src/http/aigne/input.ts";

/** The body AIGNEHubImageModel 0.10 sends, with `input` as given. */
const invoke = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  input,
  agent: "ChatModel",
  options: { userContext: {}, memories: [], streaming: false },
  ...extra,
});

describe("callOfAigneInvoke", () => {
  it("reads the client's body: model and options from modelOptions, in camelCase", () => {
    const call = callOfAigneInvoke(
      invoke({
        prompt: "a cat",
        n: 2,
        outputFileType: "url",
        modelOptions: {
          model: "gpt-image-2",
          size: "1024x1536",
          quality: "high",
          outputFormat: "webp",
          outputCompression: 80,
          background: "opaque",
          preferInputFileType: "url",
        },
      }),
    );
    assert.deepEqual(call.request, {
      prompt: "a cat",
      model: "gpt-image-2",
      n: 2,
      size: "1024x1536",
      quality: "high",
      output_format: "webp",
      output_compression: 80,
      background: "opaque",
      response_format: "url",
    });
    assert.equal(call.fileType, "url");
    assert.deepEqual(call.ignored, [], "framework fields are not reported");
  });

  it("lets the top of input win over modelOptions, as AIGNE's own models do", () => {
    const call = callOfAigneInvoke(
      invoke({ prompt: "p", size: "256x256", modelOptions: { size: "1024x1024", style: "vivid" } }),
    );
    assert.equal(call.request.size, "256x256");
    assert.equal(call.request.style, "vivid");
  });

  it("takes an older client's top-level model, and drops the aignehub/ prefix", () => {
    assert.equal(
      callOfAigneInvoke(invoke({ prompt: "p" }, { model: "dall-e-3" })).request.model,
      "dall-e-3",
    );
    const prefixed = callOfAigneInvoke(
      invoke({ prompt: "p", modelOptions: { model: "aignehub/local/placeholder" } }),
    );
    assert.equal(prefixed.request.model, "local/placeholder");
    // A provider prefix stays: the catalog knows `openai/gpt-image-1` as gpt-image-1.
    const provider = callOfAigneInvoke(
      invoke({ prompt: "p", modelOptions: { model: "openai/gpt-image-1" } }),
    );
    assert.equal(provider.request.model, "openai/gpt-image-1");
  });

  it("answers file as base64 and url or local as a URL", () => {
    assert.equal(
      callOfAigneInvoke(invoke({ prompt: "p", outputFileType: "file" })).request.response_format,
      "b64_json",
    );
    const local = callOfAigneInvoke(invoke({ prompt: "p", outputFileType: "local" }));
    assert.deepEqual([local.fileType, local.request.response_format], ["url", "url"]);
    const none = callOfAigneInvoke(invoke({ prompt: "p" }));
    assert.deepEqual([none.fileType, none.request.response_format], ["url", "url"]);
    const asked = callOfAigneInvoke(
      invoke({ prompt: "p", modelOptions: { responseFormat: "b64_json" } }),
    );
    assert.equal(asked.fileType, "file", "responseFormat decides when outputFileType is absent");
  });

  it("names every field it did not use", () => {
    const call = callOfAigneInvoke(
      invoke(
        { prompt: "p", seed: 7, modelOptions: { temperature: 1, model: "x" } },
        { extra: true },
      ),
    );
    assert.deepEqual(call.ignored.sort(), [
      "extra",
      "input.modelOptions.temperature",
      "input.seed",
    ]);
  });

  it("turns file and url images into data URLs and URLs, in order", () => {
    const call = callOfAigneInvoke(
      invoke({
        prompt: "p",
        image: [
          { type: "file", data: "iVBORw0KGgo=", mimeType: "image/png" },
          { type: "url", url: "https://example.com/a.png" },
          { type: "file", data: "AAAA" },
        ],
      }),
    );
    assert.deepEqual(call.request.image, [
      "data:image/png;base64,iVBORw0KGgo=",
      "https://example.com/a.png",
      "AAAA",
    ]);
  });

  for (const [name, input, param] of [
    [
      "a local file",
      { prompt: "p", image: [{ type: "local", path: "/tmp/x.png" }] },
      "input[image][0]",
    ],
    ["an image without data", { prompt: "p", image: [{ type: "file" }] }, "input[image][0]"],
    ["images not in a list", { prompt: "p", image: { type: "url", url: "x" } }, "input[image]"],
    ["an unknown outputFileType", { prompt: "p", outputFileType: "disk" }, "input[outputFileType]"],
    [
      "modelOptions not an object",
      { prompt: "p", modelOptions: "gpt-image-2" },
      "input[modelOptions]",
    ],
  ] as const) {
    it(`refuses ${name} with a 400 naming ${param}`, () => {
      assert.throws(
        () => callOfAigneInvoke(invoke(input as Record<string, unknown>)),
        (error: unknown) => isHubError(error) && error.status === 400 && error.param === param,
      );
    });
  }
});

describe("callOfOpenAIShaped", () => {
  it("takes OpenAI's fields and their camelCase spellings, and names the rest", () => {
    const call = callOfOpenAIShaped(
      {
        prompt: "p",
        model: "aignehub/gpt-image-2",
        responseFormat: "b64_json",
        size: "1024x1024",
        foo: 1,
      },
      ["prompt", "model", "size", "response_format"],
    );
    assert.deepEqual(call.request, {
      prompt: "p",
      model: "gpt-image-2",
      response_format: "b64_json",
      size: "1024x1024",
    });
    assert.deepEqual(call.ignored, ["foo"]);
  });
});
