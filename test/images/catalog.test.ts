/**
 * The catalog is the one table every other part reads, so its rows must agree with themselves
 * (ids, aliases, default sizes) and with the adapters that turn a size into a provider setting.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  BUILT_IN_DEFINITIONS,
  createCatalog,
  MODELS,
  type ModelSpec,
} from "../../src/images/catalog.ts";
import { problemWithFields } from "../../src/images/model-definition.ts";
import { planImageJob } from "../../src/images/plan.ts";
import {
  aspectRatioOfSize,
  GEMINI_ASPECT_RATIOS,
  IMAGEN_ASPECT_RATIOS,
  imageSizeOfSize,
} from "../../src/providers/google.ts";

function modelOf(id: string): ModelSpec {
  const model = MODELS.find((candidate) => candidate.id === id);
  assert.ok(model, `no model ${id} in the catalog`);
  return model;
}

function listedSizes(model: ModelSpec): readonly string[] {
  assert.equal(model.sizes.kind, "list", `${model.id} has a list of sizes`);
  return model.sizes.kind === "list" ? model.sizes.sizes : [];
}

const GOOGLE_MODELS = MODELS.filter((model) => model.provider === "google");

describe("the data file", () => {
  test("every row holds to the admin API's schema, names its source and the day it was checked", () => {
    for (const row of BUILT_IN_DEFINITIONS) {
      assert.equal(problemWithFields(row), undefined, `${row.id}: ${problemWithFields(row)}`);
      assert.ok(row.source && row.source.length > 10, `${row.id} names its source`);
      assert.match(row.checked ?? "", /^\d{4}-\d{2}-\d{2}$/, `${row.id} says when it was checked`);
    }
  });

  test("every retired model has a successor that is not retired", () => {
    const now = Date.parse("2026-12-03T12:00:00Z");
    for (const model of MODELS) {
      if (model.shutdownDate === null || model.shutdownDate > "2026-12-03") continue;
      const successor = MODELS.find((candidate) => candidate.id === model.successor);
      assert.ok(successor, `${model.id} has a successor`);
      assert.ok(
        successor.shutdownDate === null || Date.parse(successor.shutdownDate) > now,
        `${successor.id} is current`,
      );
    }
  });
});

describe("ids and aliases", () => {
  test("every model has a unique id", () => {
    const ids = MODELS.map((model) => model.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate ids in ${ids.join(", ")}`);
  });

  test("no name (id, alias, provider/name) means two models", () => {
    const prefixes: Record<string, string[]> = {
      openai: ["openai"],
      google: ["google", "gemini"],
      local: ["local"],
    };
    const owner = new Map<string, string>();
    for (const model of MODELS) {
      for (const name of [model.id, ...model.aliases]) {
        const spellings = [name, ...(prefixes[model.provider] ?? []).map((p) => `${p}/${name}`)];
        for (const spelling of spellings) {
          const previous = owner.get(spelling);
          assert.ok(
            previous === undefined || previous === model.id,
            `'${spelling}' names both ${previous} and ${model.id}`,
          );
          owner.set(spelling, model.id);
        }
      }
    }
  });

  test("every id and alias finds its own model", () => {
    const catalog = createCatalog();
    for (const model of MODELS) {
      for (const name of [model.id, ...model.aliases]) {
        assert.equal(catalog.find(name)?.id, model.id, name);
      }
    }
  });

  test("names are looked up without surrounding spaces", () => {
    assert.equal(createCatalog().find(" dall-e-3 ")?.id, "dall-e-3");
  });
});

describe("sizes", () => {
  for (const model of MODELS) {
    test(`${model.id}: its default size ${model.defaultSize} passes its own size rule`, () => {
      const job = planImageJob(
        createCatalog(),
        { model: model.id, prompt: "a lighthouse at dusk" },
        { defaultModel: model.id, isProviderConfigured: () => true },
      );
      assert.equal(job.size, model.defaultSize);
    });
  }

  for (const model of MODELS.filter((candidate) => candidate.sizes.kind === "list")) {
    test(`${model.id}: every listed size passes its own size rule`, () => {
      for (const size of listedSizes(model)) {
        const job = planImageJob(
          createCatalog(),
          { model: model.id, prompt: "a lighthouse at dusk", size },
          { defaultModel: model.id, isProviderConfigured: () => true },
        );
        assert.equal(job.size, size);
      }
    });
  }
});

describe("Google sizes map to the aspect ratios the adapter sends", () => {
  for (const model of GOOGLE_MODELS) {
    const ratios = model.id.startsWith("imagen") ? IMAGEN_ASPECT_RATIOS : GEMINI_ASPECT_RATIOS;
    test(`${model.id}: every size names one of its ratios`, () => {
      for (const size of listedSizes(model)) {
        const ratio = aspectRatioOfSize(size, ratios);
        assert.ok(ratio !== undefined, `${size} names no aspect ratio of ${model.id}`);
      }
    });
  }

  test("gemini-2.5-flash-image: each size is its intended ratio, in the catalog's order", () => {
    const sizes = listedSizes(modelOf("gemini-2.5-flash-image"));
    const intended = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"];
    assert.deepEqual(
      sizes.map((size) => aspectRatioOfSize(size)),
      intended,
    );
  });

  test("gemini-3-pro-image-preview: 1K, 2K and 4K of each ratio map to it", () => {
    const sizes = listedSizes(modelOf("gemini-3-pro-image-preview"));
    const intended = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"];
    assert.equal(sizes.length, intended.length * 3);
    assert.deepEqual(
      sizes.map((size) => aspectRatioOfSize(size)),
      [...intended, ...intended, ...intended],
    );
  });

  test("imagen-4.0-generate-001: each size is its intended ratio", () => {
    const sizes = listedSizes(modelOf("imagen-4.0-generate-001"));
    assert.deepEqual(
      sizes.map((size) => aspectRatioOfSize(size, IMAGEN_ASPECT_RATIOS)),
      ["1:1", "3:4", "4:3", "9:16", "16:9"],
    );
  });

  const named: Array<[size: string, ratio: string, ratios?: readonly string[]]> = [
    ["1344x768", "16:9"],
    ["768x1344", "9:16"],
    ["864x1184", "3:4"],
    ["896x1152", "4:5"],
    ["1536x672", "21:9"],
    ["1024x1024", "1:1"],
    ["1280x896", "4:3", IMAGEN_ASPECT_RATIOS],
    ["896x1280", "3:4", IMAGEN_ASPECT_RATIOS],
    ["1408x768", "16:9", IMAGEN_ASPECT_RATIOS],
  ];
  for (const [size, ratio, ratios] of named) {
    test(`${size} is ${ratio}${ratios ? " for Imagen" : ""}`, () => {
      assert.equal(aspectRatioOfSize(size, ratios), ratio);
    });
  }

  test("a ratio Imagen lacks names none", () => {
    assert.equal(aspectRatioOfSize("1536x1024", IMAGEN_ASPECT_RATIOS), undefined);
    assert.equal(aspectRatioOfSize(undefined), undefined);
  });
});

describe("gemini-3-pro-image-preview sizes map to imageSize tiers", () => {
  const sizes = listedSizes(modelOf("gemini-3-pro-image-preview"));
  const tiers = ["1K", "2K", "4K"] as const;
  tiers.forEach((tier, index) => {
    test(`the ${tier} sizes are ${tier}`, () => {
      const ofTier = sizes.slice(index * 10, index * 10 + 10);
      assert.equal(ofTier.length, 10);
      for (const size of ofTier) assert.equal(imageSizeOfSize(size), tier, size);
    });
  });

  test("named sizes", () => {
    assert.equal(imageSizeOfSize("1024x1024"), "1K");
    assert.equal(imageSizeOfSize("1584x672"), "1K");
    assert.equal(imageSizeOfSize("2048x2048"), "2K");
    assert.equal(imageSizeOfSize("2752x1536"), "2K");
    assert.equal(imageSizeOfSize("4096x4096"), "4K");
    assert.equal(imageSizeOfSize("6336x2688"), "4K");
  });
});

describe("other facts of the table", () => {
  const maxPerCall: Array<[id: string, max: number]> = [
    ["dall-e-2", 10],
    ["dall-e-3", 1],
    ["gpt-image-1", 10],
    ["gemini-2.5-flash-image", 1],
    ["gemini-3-pro-image-preview", 1],
    ["imagen-4.0-generate-001", 4],
    ["local/placeholder", 10],
  ];
  for (const [id, max] of maxPerCall) {
    test(`${id} makes at most ${max} per call`, () => {
      assert.equal(modelOf(id).maxPerCall, max);
    });
  }

  test("every model's default quality and style are among its own values", () => {
    for (const model of MODELS) {
      if (model.defaultQuality !== undefined) {
        assert.ok(model.qualities.includes(model.defaultQuality), model.id);
      }
      if (model.defaultStyle !== undefined) {
        assert.ok(model.styles.includes(model.defaultStyle), model.id);
      }
      assert.ok(model.outputFormats.length > 0, `${model.id} makes some format`);
      assert.ok(!model.masks || model.maxInputImages > 0, `${model.id}: a mask needs an edit`);
    }
  });

  test("the placeholder says it is not AI; the others are AI", () => {
    const placeholder = modelOf("local/placeholder");
    assert.equal(placeholder.kind, "placeholder");
    assert.match(placeholder.description, /not an AI model/i);
    for (const model of MODELS.filter((candidate) => candidate !== placeholder)) {
      assert.equal(model.kind, "ai", model.id);
    }
  });
});

describe("createCatalog with admin aliases", () => {
  test("an admin alias routes dall-e-2 to the placeholder", () => {
    const catalog = createCatalog(MODELS, { "dall-e-2": "local/placeholder" });
    assert.equal(catalog.find("dall-e-2")?.id, "local/placeholder");
    // The other names of the real model are untouched.
    assert.equal(catalog.find("openai/dall-e-2")?.id, "dall-e-2");
    assert.equal(catalog.find("dall-e-3")?.id, "dall-e-3");
  });

  test("an admin alias may point at an alias or a provider/ name", () => {
    const catalog = createCatalog(MODELS, { banana: "nano-banana", fast: "gemini/imagen-4" });
    assert.equal(catalog.find("banana")?.id, "gemini-2.5-flash-image");
    assert.equal(catalog.find("fast")?.id, "imagen-4.0-generate-001");
  });

  test("an alias to an unknown model throws, naming both", () => {
    assert.throws(
      () => createCatalog(MODELS, { "dall-e-2": "no-such-model" }),
      /'dall-e-2'.*'no-such-model'/,
    );
  });

  test("a routed alias plans against the target's rules", () => {
    const catalog = createCatalog(MODELS, { "dall-e-2": "local/placeholder" });
    const job = planImageJob(
      catalog,
      { model: "dall-e-2", prompt: "a kite", size: "123x77" },
      { defaultModel: "dall-e-2", isProviderConfigured: (provider) => provider === "local" },
    );
    assert.equal(job.model.id, "local/placeholder");
    assert.equal(job.requestedModel, "dall-e-2");
    assert.equal(job.size, "123x77");
  });
});
