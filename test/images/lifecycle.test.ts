/**
 * Where a model is in its life and who serves it: learned from the provider's list and answers
 * where there are any, from the catalog's dates where there are not, overridden by what an
 * operator declares.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createCatalog, MODELS, type ModelSpec } from "../../src/images/catalog.ts";
import { lifecycleOf, servingModel } from "../../src/images/lifecycle.ts";
import { createUpstreamModelBoard } from "../../src/images/upstream-models.ts";

const NOW = Date.parse("2026-12-03T12:00:00Z");
const DAY = 86_400_000;

function model(id: string, changes: Partial<ModelSpec> = {}): ModelSpec {
  const found = MODELS.find((candidate) => candidate.id === id);
  assert.ok(found, `no built-in model ${id}`);
  return { ...found, ...changes };
}

describe("lifecycle without a provider list: the catalog's dates decide", () => {
  const board = createUpstreamModelBoard();

  test("the spec's own models are retired, with their successor", () => {
    for (const id of ["dall-e-2", "dall-e-3"]) {
      const life = lifecycleOf(model(id), board, NOW);
      assert.equal(life.status, "retired", id);
      assert.equal(life.shutdownDate, "2026-05-12");
      assert.equal(life.successor, "gpt-image-2");
      assert.match(life.retiredBecause ?? "", /shut it down on 2026-05-12/);
      assert.deepEqual(life.upstream, { offered: null, shutdownDate: null, checkedAt: null });
    }
  });

  test("a current model is active; one with a date ahead is deprecated; the day itself retires it", () => {
    assert.equal(lifecycleOf(model("gpt-image-2"), board, NOW).status, "active");
    const soon = model("gpt-image-2", { shutdownDate: "2026-12-20" });
    assert.equal(lifecycleOf(soon, board, NOW).status, "deprecated");
    assert.equal(lifecycleOf(soon, board, Date.parse("2026-12-20T00:00:00Z")).status, "retired");
  });

  test("an operator's declaration overrides the dates", () => {
    assert.equal(
      lifecycleOf(model("dall-e-2", { declaredStatus: "active" }), board, NOW).status,
      "active",
    );
    const retired = lifecycleOf(model("gpt-image-2", { declaredStatus: "retired" }), board, NOW);
    assert.equal(retired.status, "retired");
    assert.equal(
      lifecycleOf(model("gpt-image-2", { declaredStatus: "deprecated" }), board, NOW).status,
      "deprecated",
    );
  });

  test("the built-in placeholder never learns anything and stays active", () => {
    const life = lifecycleOf(model("local/placeholder"), board, NOW);
    assert.equal(life.status, "active");
    assert.equal(life.upstream.offered, null);
  });
});

describe("lifecycle learned from the provider", () => {
  test("a model the provider still lists is called as itself, whatever the catalog's date says", () => {
    const board = createUpstreamModelBoard();
    board.recordList("openai", [{ id: "dall-e-2", shutdownDate: null }], NOW - DAY);
    const life = lifecycleOf(model("dall-e-2"), board, NOW);
    assert.equal(life.status, "active");
    assert.equal(life.upstream.offered, true);
    assert.equal(life.upstream.checkedAt, NOW - DAY);
  });

  test("a model the list leaves out is retired, even one without a date", () => {
    const board = createUpstreamModelBoard();
    board.recordList("openai", [{ id: "dall-e-2", shutdownDate: null }], NOW);
    const life = lifecycleOf(model("gpt-image-2"), board, NOW);
    assert.equal(life.status, "retired");
    assert.match(life.retiredBecause ?? "", /no longer lists it/);
  });

  test("the list's shutdown date is shown, and retires the model once passed", () => {
    const board = createUpstreamModelBoard();
    board.recordList("openai", [{ id: "gpt-image-2", shutdownDate: "2026-12-24" }], NOW);
    const ahead = lifecycleOf(model("gpt-image-2"), board, NOW);
    assert.equal(ahead.status, "deprecated");
    assert.equal(ahead.shutdownDate, "2026-12-24");
    assert.equal(ahead.upstream.shutdownDate, "2026-12-24");
    assert.equal(
      lifecycleOf(model("gpt-image-2"), board, Date.parse("2026-12-24T08:00:00Z")).status,
      "retired",
    );
  });

  test("a call answered model_not_found retires it until a newer list lists it again", () => {
    const board = createUpstreamModelBoard();
    board.recordList("openai", [{ id: "gpt-image-2", shutdownDate: null }], NOW - 2 * DAY);
    board.recordGone("openai", "gpt-image-2", NOW - DAY);
    const gone = lifecycleOf(model("gpt-image-2"), board, NOW);
    assert.equal(gone.status, "retired");
    assert.match(gone.retiredBecause ?? "", /answered that it has no model 'gpt-image-2'/);
    board.recordList("openai", [{ id: "gpt-image-2", shutdownDate: null }], NOW);
    assert.equal(lifecycleOf(model("gpt-image-2"), board, NOW).status, "active");
  });

  test("one provider's list says nothing of another's models", () => {
    const board = createUpstreamModelBoard();
    board.recordList("google", [{ id: "gemini-3-pro-image", shutdownDate: null }], NOW);
    assert.equal(lifecycleOf(model("gpt-image-2"), board, NOW).status, "active");
  });
});

describe("servingModel follows successors", () => {
  test("dall-e-2 and dall-e-3 are served by gpt-image-2; the Google ones by a current Gemini model", () => {
    const catalog = createCatalog();
    const board = createUpstreamModelBoard();
    for (const id of ["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"]) {
      const serving = servingModel(model(id), catalog, board, NOW);
      assert.equal(serving.model.id, "gpt-image-2", id);
      assert.deepEqual(
        serving.retired.map((step) => step.model.id),
        [id],
      );
    }
    for (const id of [
      "imagen-4.0-generate-001",
      "gemini-2.5-flash-image",
      "gemini-3-pro-image-preview",
    ]) {
      assert.equal(servingModel(model(id), catalog, board, NOW).model.id, "gemini-3-pro-image", id);
    }
    assert.equal(servingModel(model("gpt-image-2"), catalog, board, NOW).retired.length, 0);
  });

  test("the chain is followed past a successor that is itself gone", () => {
    const board = createUpstreamModelBoard();
    board.recordList("openai", [{ id: "gpt-image-1.5", shutdownDate: null }], NOW);
    const models = MODELS.map((spec) =>
      spec.id === "gpt-image-2" ? { ...spec, successor: "gpt-image-1.5" } : spec,
    );
    const serving = servingModel(model("dall-e-3"), createCatalog(models), board, NOW);
    assert.equal(serving.model.id, "gpt-image-1.5");
    assert.deepEqual(
      serving.retired.map((step) => step.model.id),
      ["dall-e-3", "gpt-image-2"],
    );
  });

  test("410 model_retired naming the successor when substitution is off", () => {
    const board = createUpstreamModelBoard();
    const off = model("dall-e-3", { useSuccessor: false });
    assert.throws(
      () => servingModel(off, createCatalog(), board, NOW),
      (error: { status: number; code: string; param: string; message: string }) =>
        error.status === 410 &&
        error.code === "model_retired" &&
        error.param === "model" &&
        /Use 'gpt-image-2' instead/.test(error.message),
    );
  });

  test("a retired model with nowhere to go is called as itself, unless declared retired", () => {
    const board = createUpstreamModelBoard();
    const orphan = model("dall-e-3", { successor: null });
    assert.equal(servingModel(orphan, createCatalog(), board, NOW).model.id, "dall-e-3");
    const declared = model("dall-e-3", { successor: null, declaredStatus: "retired" });
    assert.throws(
      () => servingModel(declared, createCatalog(), board, NOW),
      (error: { status: number; message: string }) =>
        error.status === 410 && /no successor/.test(error.message),
    );
  });

  test("a loop of retired successors is a 410, not a hang", () => {
    const board = createUpstreamModelBoard();
    const models = MODELS.map((spec) =>
      spec.id === "gpt-image-2"
        ? { ...spec, successor: "dall-e-3", declaredStatus: "retired" as const }
        : spec,
    );
    assert.throws(
      () => servingModel(model("dall-e-3"), createCatalog(models), board, NOW),
      (error: { status: number }) => error.status === 410,
    );
  });

  test("assumeGone treats the model asked for as gone (a call answered model_not_found)", () => {
    const board = createUpstreamModelBoard();
    board.recordList(
      "openai",
      [
        { id: "dall-e-2", shutdownDate: null },
        { id: "gpt-image-2", shutdownDate: null },
      ],
      NOW,
    );
    assert.equal(servingModel(model("dall-e-2"), createCatalog(), board, NOW).model.id, "dall-e-2");
    const serving = servingModel(model("dall-e-2"), createCatalog(), board, NOW, {
      assumeGone: true,
    });
    assert.equal(serving.model.id, "gpt-image-2");
    assert.match(serving.retired[0]?.because ?? "", /answered that it has no model 'dall-e-2'/);
    assert.throws(
      () => servingModel(model("gpt-image-2"), createCatalog(), board, NOW, { assumeGone: true }),
      (error: { status: number }) => error.status === 410,
    );
  });
});
