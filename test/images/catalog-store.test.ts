/**
 * The catalog in force: built-in rows merged with stored ones, where a stored row the hub cannot
 * use is skipped (and said) rather than stopping the hub, and reloads that see every write made
 * before they were asked for.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createCatalogStore } from "../../src/images/catalog-store.ts";
import type { CatalogModelRecord } from "../../src/storage/db/types.ts";

function row(id: string, definition: unknown, hidden = false): CatalogModelRecord {
  return {
    id,
    definition: typeof definition === "string" ? definition : JSON.stringify(definition),
    hidden,
    updatedAt: 0,
  };
}

function fakeDb(records: CatalogModelRecord[]) {
  const db = {
    records,
    reads: 0,
    listeners: [] as (() => void)[],
    async listCatalogModels() {
      db.reads += 1;
      return db.records;
    },
    onCatalogChange(listener: () => void) {
      db.listeners.push(listener);
      return () => {};
    },
  };
  return db;
}

const poster = {
  mode: "define",
  fields: {
    id: "team/poster",
    provider: "openai",
    upstream_model: "gpt-image-2",
    sizes: ["1024x1024"],
  },
};

describe("merging stored rows", () => {
  it("defines, changes and hides models; skips what it cannot use, saying why", async () => {
    const warnings: object[] = [];
    const db = fakeDb([
      row("team/poster", poster),
      row("gpt-image-2", { mode: "override", fields: { aliases: ["house"] } }),
      row("dall-e-2", "{}", true),
      row("broken", "not json"),
      row("typed-wrong", {
        mode: "define",
        fields: { id: "typed-wrong", provider: "openai", sizes: "big" },
      }),
      row("gpt-image-1", { mode: "override", fields: { max_per_call: "ten" } }),
      row("thief", {
        mode: "define",
        fields: { ...poster.fields, id: "thief", aliases: ["nano-banana"] },
      }),
    ]);
    const store = await createCatalogStore({
      db,
      log: { warn: (details) => void warnings.push(details) },
    });
    try {
      assert.equal(store.find("team/poster")?.origin, "admin");
      assert.equal(store.find("house")?.id, "gpt-image-2");
      assert.equal(store.find("gpt-image-2")?.origin, "built-in, changed");
      assert.equal(store.find("dall-e-2"), undefined, "hidden");
      // A built-in whose stored change cannot be read stays as shipped.
      assert.equal(store.find("gpt-image-1")?.maxPerCall, 10);
      for (const id of ["broken", "typed-wrong", "thief"])
        assert.equal(store.find(id), undefined, id);
      const problems = store.problems().map((problem) => problem.id);
      assert.deepEqual(problems.sort(), ["broken", "gpt-image-1", "thief", "typed-wrong"]);
      assert.equal(warnings.length, 4);
      assert.equal(
        store.find("nano-banana")?.id,
        "gemini-2.5-flash-image",
        "the earlier owner keeps it",
      );
    } finally {
      store.stop();
    }
  });
});

describe("reloading", () => {
  it("a change announced by the database is read; refresh sees writes made before it was asked", async () => {
    const db = fakeDb([]);
    const store = await createCatalogStore({ db });
    try {
      assert.equal(store.find("team/poster"), undefined);
      db.records = [row("team/poster", poster)];
      for (const listener of db.listeners) listener();
      for (let tries = 0; store.find("team/poster") === undefined; tries++) {
        assert.ok(tries < 100);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      db.records = [];
      const readsBefore = db.reads;
      await Promise.all([store.refresh(), store.refresh(), store.refresh()]);
      assert.equal(store.find("team/poster"), undefined);
      assert.ok(db.reads - readsBefore <= 2, `coalesced: ${db.reads - readsBefore} reads`);
    } finally {
      store.stop();
    }
  });
});
