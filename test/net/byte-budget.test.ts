import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createByteBudget, inByteScope, runInByteScope } from "../../src/net/byte-budget.ts";

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("byte budget", () => {
  it("grants within capacity and makes the rest wait, first come first served", async () => {
    const budget = createByteBudget(100);
    const first = await budget.take(60);
    const order: string[] = [];
    const second = budget.take(60).then((release) => {
      order.push("second");
      return release;
    });
    const third = budget.take(10).then((release) => {
      order.push("third");
      return release;
    });
    await tick();
    assert.deepEqual(order, [], "the small one does not jump the queue");
    assert.equal(budget.held, 60);
    first();
    const releaseSecond = await second;
    const releaseThird = await third;
    assert.deepEqual(order, ["second", "third"]);
    assert.equal(budget.held, 70);
    releaseSecond();
    releaseSecond();
    releaseThird();
    assert.equal(budget.held, 0, "releasing twice gives back once");
  });

  it("lets one request larger than the capacity through alone", async () => {
    const budget = createByteBudget(100);
    const release = await budget.take(1_000);
    assert.equal(budget.held, 100);
    release();
    assert.equal(budget.held, 0);
  });

  it("stops waiting when the signal aborts, and lets the next one through", async () => {
    const budget = createByteBudget(100);
    const first = await budget.take(100);
    const controller = new AbortController();
    const waiting = budget.take(50, controller.signal);
    controller.abort(new Error("client gone"));
    await assert.rejects(waiting, /client gone/);
    first();
    const next = await budget.take(100);
    assert.equal(budget.held, 100);
    next();
  });

  it("releases every hold of a scope together, and holds taken after it closes at once", async () => {
    const budget = createByteBudget(1_000);
    let late: Promise<unknown> = Promise.resolve();
    const { result, release } = runInByteScope(async () => {
      assert.equal(inByteScope(), true);
      await budget.take(100);
      await budget.take(200);
      late = tick().then(() => budget.take(300));
      return "done";
    });
    assert.equal(await result, "done");
    assert.equal(budget.held, 300);
    release();
    assert.equal(budget.held, 0);
    await late;
    assert.equal(budget.held, 0, "a hold taken after the scope closed is given back");
    assert.equal(inByteScope(), false);
  });
});
