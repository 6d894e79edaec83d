/**
 * Provider instances from the environment (credentials/instances.ts): the public setting names,
 * the vendors' default base URLs, OpenAI-compatible instances by name, and the settings that
 * must come together.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { instancesFromEnv } from "../../src/credentials/instances.ts";

const ids = (env: Record<string, string>) =>
  instancesFromEnv(env).map((instance) => [instance.id, instance.kind, instance.baseURL]);

describe("instancesFromEnv", () => {
  it("lists the kinds with a vendor URL even without a key, and none that need a URL", () => {
    assert.deepEqual(ids({}), [
      ["openai", "openai", "https://api.openai.com/v1"],
      ["google", "google", "https://generativelanguage.googleapis.com"],
      ["xai", "xai", "https://api.x.ai/v1"],
      ["openrouter", "openrouter", "https://openrouter.ai/api/v1"],
      ["stability", "stability", "https://api.stability.ai"],
      ["ideogram", "ideogram", "https://api.ideogram.ai"],
      ["fal", "fal", "https://queue.fal.run"],
      ["bfl", "bfl", "https://api.bfl.ai"],
      ["replicate", "replicate", "https://api.replicate.com"],
    ]);
  });

  it("takes each kind's key and base URL, trailing slashes cut", () => {
    const instances = instancesFromEnv({
      XAI_API_KEY: "xai-key",
      XAI_BASE_URL: "http://127.0.0.1:7001/v1/",
      STABILITY_API_KEY: "sk-stab",
      AZURE_OPENAI_API_KEY: "az-key",
      AZURE_OPENAI_ENDPOINT: "https://example.openai.azure.com",
      AZURE_OPENAI_API_VERSION: "2025-04-01-preview",
      A1111_BASE_URL: "http://127.0.0.1:7860",
      A1111_API_AUTH: "user:pass",
    });
    const byId = new Map(instances.map((instance) => [instance.id, instance]));
    assert.deepEqual(
      [byId.get("xai")?.apiKey, byId.get("xai")?.baseURL],
      ["xai-key", "http://127.0.0.1:7001/v1"],
    );
    assert.equal(byId.get("stability")?.apiKey, "sk-stab");
    assert.deepEqual(byId.get("azure")?.options, { apiVersion: "2025-04-01-preview" });
    assert.equal(byId.get("azure")?.baseURL, "https://example.openai.azure.com");
    assert.deepEqual(
      [byId.get("a1111")?.apiKey, byId.get("a1111")?.options],
      ["", { basicAuth: "user:pass" }],
    );
  });

  it("makes an OpenAI-compatible instance of each OPENAI_COMPATIBLE_<NAME>_BASE_URL", () => {
    const instances = instancesFromEnv({
      OPENAI_COMPATIBLE_LOCAL_AI_BASE_URL: "http://127.0.0.1:8081/v1",
      OPENAI_COMPATIBLE_TOGETHER_BASE_URL: "https://api.together.xyz/v1",
      OPENAI_COMPATIBLE_TOGETHER_API_KEY: "tg-key",
      OPENAI_COMPATIBLE_TOGETHER_PRESET: "together",
    });
    const compatible = instances.filter((instance) => instance.kind === "openai-compatible");
    assert.deepEqual(
      compatible.map((instance) => [instance.id, instance.apiKey, instance.options.preset]),
      [
        ["local-ai", "", undefined],
        ["together", "tg-key", "together"],
      ],
    );
  });

  it("refuses settings that cannot work, naming them", () => {
    assert.throws(
      () => instancesFromEnv({ AZURE_OPENAI_API_KEY: "k" }),
      /AZURE_OPENAI_API_KEY needs AZURE_OPENAI_ENDPOINT/,
    );
    assert.throws(
      () => instancesFromEnv({ A1111_API_AUTH: "nopass" }),
      /A1111_API_AUTH takes user:pass/,
    );
    assert.throws(
      () => instancesFromEnv({ OPENAI_COMPATIBLE_OPENAI_BASE_URL: "http://x" }),
      /'openai' cannot be a provider id/,
    );
  });
});
