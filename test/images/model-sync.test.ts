/**
 * Reading the providers' model lists into what the hub knows: a list is recorded, a provider
 * that fails leaves what was known, a slow one cannot hold the start longer than its budget, a
 * list naming none of our models is ignored, and a model_not_found asks for the list again.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { upstreamFailed } from "../../src/errors.ts";
import { createCatalog } from "../../src/images/catalog.ts";
import { startModelSync, syncUpstreamModels } from "../../src/images/model-sync.ts";
import { createUpstreamModelBoard } from "../../src/images/upstream-models.ts";
import type { ImageProvider, UpstreamModel } from "../../src/providers/types.ts";

const catalog = createCatalog();

function providerListing(list: () => Promise<UpstreamModel[]>): ImageProvider & { reads: number } {
  const provider = {
    name: "openai",
    reads: 0,
    generate: () => Promise.reject(new Error("not in these tests")),
    listModels: () => {
      provider.reads += 1;
      return list();
    },
  };
  return provider;
}

function logger() {
  const warnings: string[] = [];
  return {
    warnings,
    log: { warn: (_details: object, message: string) => void warnings.push(message) },
  };
}

describe("syncUpstreamModels", () => {
  it("records a provider's list and logs the models that need a look", async () => {
    const board = createUpstreamModelBoard();
    const { warnings, log } = logger();
    const openai = providerListing(async () => [
      { id: "gpt-image-2", shutdownDate: "2026-12-10" },
      { id: "gpt-5", shutdownDate: null },
    ]);
    await syncUpstreamModels({
      providers: { openai },
      board,
      catalog,
      timeoutMs: 1000,
      clock: () => Date.parse("2026-12-03T00:00:00Z"),
      log,
    });
    assert.deepEqual(board.state("openai", "gpt-image-2")?.shutdownDate, "2026-12-10");
    assert.equal(board.state("openai", "dall-e-2")?.offered, false);
    assert.ok(warnings.includes("catalog models need a look"));
  });

  it("a provider that fails or names none of our models changes nothing", async () => {
    const board = createUpstreamModelBoard();
    board.recordList("openai", [{ id: "gpt-image-2", shutdownDate: null }], 1);
    const { warnings, log } = logger();
    const failing = providerListing(() =>
      Promise.reject(upstreamFailed("down", { code: "upstream_unreachable" })),
    );
    await syncUpstreamModels({
      providers: { openai: failing },
      board,
      catalog,
      timeoutMs: 1000,
      log,
    });
    const empty = providerListing(async () => [{ id: "some-chat-model", shutdownDate: null }]);
    await syncUpstreamModels({
      providers: { openai: empty },
      board,
      catalog,
      timeoutMs: 1000,
      log,
    });
    assert.equal(board.listedAt("openai"), 1);
    assert.equal(board.state("openai", "gpt-image-2")?.offered, true);
    assert.equal(warnings.length, 2);
  });

  it("a provider that never answers holds the sync up for its time budget only", async () => {
    const board = createUpstreamModelBoard();
    const silent: ImageProvider = {
      name: "openai",
      generate: () => Promise.reject(new Error("unused")),
      listModels: ({ signal }) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason)),
        ),
    };
    const started = performance.now();
    await syncUpstreamModels({ providers: { openai: silent }, board, catalog, timeoutMs: 200 });
    assert.ok(performance.now() - started < 2000);
    assert.equal(board.listedAt("openai"), undefined);
  });
});

describe("startModelSync", () => {
  it("reads at start, and again on verify, at most once a minute per provider", async () => {
    let now = 0;
    const openai = providerListing(async () => [{ id: "gpt-image-2", shutdownDate: null }]);
    const sync = await startModelSync(
      {
        providers: { openai },
        board: createUpstreamModelBoard(),
        catalog,
        timeoutMs: 1000,
        clock: () => now,
      },
      3_600_000,
    );
    try {
      assert.equal(openai.reads, 1);
      sync.verify("openai");
      sync.verify("openai");
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(openai.reads, 2);
      now += 61_000;
      sync.verify("openai");
      assert.equal(openai.reads, 3);
      sync.verify("google");
      assert.equal(openai.reads, 3);
    } finally {
      sync.stop();
    }
  });
});
