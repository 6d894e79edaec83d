import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { loadConfig } from "../src/config.ts";

describe("config", () => {
  it("has the documented defaults", () => {
    const config = loadConfig({});
    assert.equal(config.port, 8080);
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.dataDir, path.resolve("./data"));
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.publicUrl, "http://127.0.0.1:8080");
    assert.equal(config.defaultImageModel, "dall-e-2");
    assert.equal(config.openai.baseURL, "https://api.openai.com/v1");
    assert.equal(config.gemini.baseURL, "https://generativelanguage.googleapis.com");
    assert.equal(config.imageUrlTtlSeconds, 3600);
    assert.deepEqual(config.modelAliases, {});
  });

  it("derives PUBLIC_URL from HOST and PORT, and trims trailing slashes", () => {
    assert.equal(loadConfig({ PORT: "9000" }).publicUrl, "http://127.0.0.1:9000");
    assert.equal(loadConfig({ HOST: "0.0.0.0" }).publicUrl, "http://127.0.0.1:8080");
    assert.equal(loadConfig({ HOST: "::1" }).publicUrl, "http://[::1]:8080");
    assert.equal(
      loadConfig({ PUBLIC_URL: "https://img.example.com/" }).publicUrl,
      "https://img.example.com",
    );
    assert.equal(loadConfig({ OPENAI_BASE_URL: "http://x/v1/" }).openai.baseURL, "http://x/v1");
  });

  it("reads model aliases and allow-listed CIDRs", () => {
    const config = loadConfig({
      MODEL_ALIASES: "dall-e-2=local/placeholder, fast = gpt-image-1-mini",
      IMAGE_FETCH_ALLOW_CIDRS: "10.1.2.0/24, 127.0.0.1/32",
    });
    assert.deepEqual(config.modelAliases, {
      "dall-e-2": "local/placeholder",
      fast: "gpt-image-1-mini",
    });
    assert.deepEqual(config.imageFetchAllowCidrs, ["10.1.2.0/24", "127.0.0.1/32"]);
  });

  it("refuses malformed numbers and aliases with the setting's name", () => {
    assert.throws(() => loadConfig({ PORT: "eighty" }), /PORT/);
    assert.throws(() => loadConfig({ PORT: "70000" }), /PORT/);
    assert.throws(() => loadConfig({ IMAGE_URL_TTL_SECONDS: "5" }), /IMAGE_URL_TTL_SECONDS/);
    assert.throws(() => loadConfig({ MODEL_ALIASES: "dall-e-2" }), /MODEL_ALIASES/);
  });
});
