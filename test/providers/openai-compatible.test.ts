import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import {
  createOpenAICompatibleProvider,
  OPENAI_COMPATIBLE_PRESETS,
  type OpenAICompatiblePreset,
  type OpenAICompatibleQuirks,
  presetQuirks,
} from "../../src/providers/openai-compatible.ts";
import type { ProviderImage } from "../../src/providers/types.ts";
import { hubErrorOf } from "../helpers/errors.ts";
import { base64Of, inputImageOf, providerCall } from "../helpers/provider-call.ts";
import { type CompatibleSimulator, startCompatibleSimulator } from "../sim/openai-compatible.ts";

/** A call with every OpenAI setting set, so each preset shows what it sends and what it drops. */
const EVERYTHING = {
  model: "some-model",
  size: "640x384",
  quality: "high",
  style: "digital_illustration",
  background: "opaque",
  outputFormat: "png",
  outputCompression: 100,
  moderation: "low",
  user: "user-1",
} as const;

/** What each preset must send for EVERYTHING (count 2 where it takes n, else 1). */
const EXPECTED_BODIES: Record<OpenAICompatiblePreset, Record<string, unknown>> = {
  localai: { size: "640x384", n: 2, response_format: "b64_json" },
  "sd-cpp": { size: "640x384", n: 2, output_format: "png", output_compression: 100 },
  recraft: { size: "640x384", n: 2, style: "digital_illustration", response_format: "b64_json" },
  seedream: { size: "640x384", response_format: "b64_json", watermark: false },
  together: { width: 640, height: 384, n: 2, output_format: "png", response_format: "base64" },
};

async function measure(image: ProviderImage | undefined) {
  const metadata = await sharp(Buffer.from(base64Of(image), "base64")).metadata();
  return `${metadata.format} ${metadata.width}x${metadata.height}`;
}

describe("OpenAI-compatible provider: presets", () => {
  for (const [preset, quirks] of Object.entries(OPENAI_COMPATIBLE_PRESETS) as [
    OpenAICompatiblePreset,
    OpenAICompatibleQuirks,
  ][]) {
    it(`${preset} sends exactly the params it declares, and warns of the others`, async () => {
      const sim = await startCompatibleSimulator({ quirks, apiKey: `key-${preset}-123456` });
      try {
        const provider = createOpenAICompatibleProvider({
          name: preset,
          apiKey: `key-${preset}-123456`,
          baseURL: sim.baseURL,
          quirks: presetQuirks(preset),
        });
        const count = quirks.params.includes("n") ? 2 : 1;
        const result = await provider.generate(providerCall({ ...EVERYTHING, count }));

        const request = sim.requests[0];
        assert.equal(request?.path, "/v1/images/generations");
        assert.deepEqual(request?.json, {
          model: "some-model",
          prompt: "a red fox in the snow",
          ...EXPECTED_BODIES[preset],
        });
        const sentNames = new Set(Object.keys(request?.json ?? {}));
        const dropped = Object.entries({
          quality: "high",
          style: "digital_illustration",
          background: "opaque",
          output_format: "png",
          output_compression: 100,
          moderation: "low",
          user: "user-1",
        }).filter(([name]) => !sentNames.has(name));
        assert.deepEqual(
          result.warnings,
          dropped.map(([name, value]) => `${preset} takes no '${name}'; '${value}' was not sent.`),
        );
        assert.equal(result.images.length, count);
        for (const image of result.images) assert.equal(await measure(image), "png 640x384");
      } finally {
        await sim.close();
      }
    });
  }

  it("refuses several images per call on a server without n, before sending", async () => {
    const quirks = OPENAI_COMPATIBLE_PRESETS.seedream;
    const sim = await startCompatibleSimulator({ quirks, apiKey: "ark-key-0123456" });
    try {
      const provider = createOpenAICompatibleProvider({
        name: "ark",
        apiKey: "ark-key-0123456",
        baseURL: sim.baseURL,
        quirks,
      });
      const error = await hubErrorOf(provider.generate(providerCall({ count: 3 })));
      assert.equal(error.status, 400);
      assert.equal(error.param, "n");
      assert.equal(sim.requests.length, 0);
    } finally {
      await sim.close();
    }
  });
});

describe("OpenAI-compatible provider: replies, edits, vendor options", () => {
  const sims: CompatibleSimulator[] = [];
  after(() => Promise.all(sims.map((sim) => sim.close())));

  async function instance(quirks: OpenAICompatibleQuirks, extraFields?: string[]) {
    const apiKey = `key-${sims.length}-abcdef`;
    const sim = await startCompatibleSimulator({
      quirks,
      apiKey,
      extraFields,
      policyCode: quirks.contentPolicyCodes?.[0],
    });
    sims.push(sim);
    const provider = createOpenAICompatibleProvider({
      name: "test",
      apiKey,
      baseURL: sim.baseURL,
      quirks,
    });
    return { sim, provider };
  }

  it("returns url images from a url-only server, sending no response_format", async () => {
    const { sim, provider } = await instance({
      auth: "bearer",
      responseFormat: "url",
      params: ["size"],
      edits: false,
      extra: false,
    });
    const result = await provider.generate(providerCall({ size: "320x200" }));
    assert.equal("response_format" in (sim.requests[0]?.json ?? {}), false);
    const [image] = result.images;
    assert.equal(image?.kind, "url");
    const response = await fetch(image.url);
    const metadata = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    assert.deepEqual([metadata.width, metadata.height], [320, 200]);
  });

  it("takes the mime type from the image itself when the server names no format", async () => {
    const { provider } = await instance({
      auth: "bearer",
      responseFormat: "b64_json",
      params: ["size", "output_format"],
      edits: false,
      extra: false,
    });
    const result = await provider.generate(providerCall({ size: "256x256", outputFormat: "webp" }));
    const [image] = result.images;
    assert.equal(image?.kind === "base64" && image.mimeType, "image/webp");
    assert.equal(await measure(image), "webp 256x256");
  });

  it("edits as multipart with image[] and a mask on a server that edits (sd-cpp)", async () => {
    const { sim, provider } = await instance(OPENAI_COMPATIBLE_PRESETS["sd-cpp"]);
    const image = await inputImageOf(64, 64);
    const mask = await inputImageOf(64, 64);
    const result = await provider.generate(
      providerCall({ prompt: "add a moon", size: "512x512", images: [image], mask }),
    );
    const request = sim.requests[0];
    assert.equal(request?.path, "/v1/images/edits");
    assert.deepEqual(request?.form?.fields, {
      model: "gpt-image-1",
      prompt: "add a moon",
      size: "512x512",
      n: "1",
    });
    assert.deepEqual(
      request?.form?.files.map((file) => file.field),
      ["image[]", "mask"],
    );
    assert.deepEqual(request?.form?.files[0]?.bytes, image.bytes);
    assert.equal(await measure(result.images[0]), "png 512x512");
  });

  it("refuses an edit on a server without edits, before sending", async () => {
    const { sim, provider } = await instance(OPENAI_COMPATIBLE_PRESETS.localai);
    const error = await hubErrorOf(
      provider.generate(providerCall({ images: [await inputImageOf(32, 32)] })),
    );
    assert.equal(error.status, 400);
    assert.equal(error.param, "image");
    assert.equal(sim.requests.length, 0);
  });

  it("passes vendor options through where the instance allows, and warns where not", async () => {
    const { sim, provider } = await instance(OPENAI_COMPATIBLE_PRESETS.together, ["steps", "seed"]);
    await provider.generate(providerCall({ size: "512x512", extra: { steps: 4, seed: 42 } }));
    const json = sim.requests[0]?.json ?? {};
    assert.equal(json.steps, 4);
    assert.equal(json.seed, 42);

    const sd = await instance(OPENAI_COMPATIBLE_PRESETS["sd-cpp"]);
    const result = await sd.provider.generate(
      providerCall({ size: "512x512", extra: { steps: 4 } }),
    );
    assert.equal("steps" in (sd.sim.requests[0]?.json ?? {}), false);
    assert.deepEqual(result.warnings, ["test takes no vendor option 'steps'; it was not sent."]);
  });

  it("maps the instance's content-policy codes to content_policy_violation", async () => {
    const { provider } = await instance(OPENAI_COMPATIBLE_PRESETS.seedream);
    const error = await hubErrorOf(
      provider.generate(providerCall({ prompt: "forbidden-content", size: "512x512" })),
    );
    assert.equal(error.status, 400);
    assert.equal(error.code, "content_policy_violation");
  });
});

describe("OpenAI-compatible provider: auth styles and instances side by side", () => {
  const styles: [string, OpenAICompatibleQuirks["auth"], string, string][] = [
    ["bearer", "bearer", "authorization", "Bearer "],
    ["api-key", "api-key", "api-key", ""],
    ["a named header with a prefix", { header: "X-Key", prefix: "Key " }, "x-key", "Key "],
  ];
  const base = {
    responseFormat: "b64_json",
    params: ["size"],
    edits: false,
    extra: false,
  } as const;

  for (const [label, auth, header, prefix] of styles) {
    it(`sends the key as ${label}, and only there`, async () => {
      const apiKey = "secret-key-0123456789";
      const sim = await startCompatibleSimulator({ quirks: { ...base, auth }, apiKey });
      try {
        const provider = createOpenAICompatibleProvider({
          apiKey,
          baseURL: sim.baseURL,
          quirks: { ...base, auth },
        });
        await provider.generate(providerCall({ size: "128x128" }));
        const headers = sim.requests[0]?.headers ?? {};
        assert.equal(headers[header], `${prefix}${apiKey}`);
        const carrying = Object.entries(headers).filter(([, value]) =>
          String(value).includes(apiKey),
        );
        assert.deepEqual(
          carrying.map(([name]) => name),
          [header],
        );
      } finally {
        await sim.close();
      }
    });
  }

  it("sends no credential to a server that takes none", async () => {
    const sim = await startCompatibleSimulator({
      quirks: { ...base, auth: "none" },
      apiKey: "",
    });
    try {
      const provider = createOpenAICompatibleProvider({
        apiKey: "operator-key-never-sent",
        baseURL: sim.baseURL,
        quirks: { ...base, auth: "none" },
      });
      const result = await provider.generate(providerCall({ size: "128x128" }));
      assert.equal(result.images.length, 1);
      assert.equal(sim.requests[0]?.headers.authorization, undefined);
    } finally {
      await sim.close();
    }
  });

  it("serves two instances side by side, each with its own key and auth style", async () => {
    const localQuirks = OPENAI_COMPATIBLE_PRESETS.localai;
    const otherQuirks: OpenAICompatibleQuirks = { ...base, auth: { header: "X-Token" } };
    const localSim = await startCompatibleSimulator({
      quirks: localQuirks,
      apiKey: "local-key-1111",
    });
    const otherSim = await startCompatibleSimulator({
      quirks: otherQuirks,
      apiKey: "other-key-2222",
    });
    try {
      const local = createOpenAICompatibleProvider({
        name: "localai",
        apiKey: "local-key-1111",
        baseURL: localSim.baseURL,
        quirks: localQuirks,
      });
      const other = createOpenAICompatibleProvider({
        name: "other",
        apiKey: "other-key-2222",
        baseURL: otherSim.baseURL,
        quirks: otherQuirks,
      });
      const [fromLocal, fromOther] = await Promise.all([
        local.generate(providerCall({ size: "256x256" })),
        other.generate(providerCall({ size: "128x128" })),
      ]);
      assert.equal(await measure(fromLocal.images[0]), "png 256x256");
      assert.equal(await measure(fromOther.images[0]), "png 128x128");
      assert.equal(localSim.requests[0]?.headers.authorization, "Bearer local-key-1111");
      assert.equal(otherSim.requests[0]?.headers["x-token"], "other-key-2222");
      assert.equal(localSim.requests.length, 1);
      assert.equal(otherSim.requests.length, 1);

      // One instance's key is refused by the other: each server holds to its own.
      const crossed = createOpenAICompatibleProvider({
        name: "localai",
        apiKey: "other-key-2222",
        baseURL: localSim.baseURL,
        quirks: localQuirks,
      });
      const error = await hubErrorOf(crossed.generate(providerCall({ size: "256x256" })));
      assert.equal(error.code, "upstream_auth_failed");
      assert.equal(error.upstreamStatus, 401);
    } finally {
      await Promise.all([localSim.close(), otherSim.close()]);
    }
  });
});
