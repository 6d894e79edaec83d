/**
 * Money conversions at the edges: USD in from admins, USD out in JSON and CSV. Micro-dollars are
 * whole numbers; rounding happens once, half away from zero, on the decimal a person wrote.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatUsd, microsToUsd, usdToMicros } from "../../src/billing/money.ts";

describe("usdToMicros", () => {
  const cases: [usd: number, micros: number][] = [
    [0, 0],
    [0.04, 40_000],
    [0.016, 16_000],
    [0.12, 120_000],
    [1, 1_000_000],
    [12.345678, 12_345_678],
    [0.1 + 0.2, 300_000],
    // Half a micro rounds away from zero.
    [0.0000005, 1],
    [0.0000015, 2],
    [0.0000025, 3],
    [0.0000004, 0],
    [0.00000049, 0],
    [5e-8, 0],
    [1234.5678905, 1_234_567_891],
    [9_000_000_000, 9_000_000_000_000_000],
  ];
  for (const [usd, micros] of cases) {
    test(`${usd} USD is ${micros} micros`, () => {
      assert.equal(usdToMicros(usd), micros);
    });
  }

  test("the floating-point product would round the half the wrong way", () => {
    assert.equal(Math.round(0.0001245 * 1_000_000), 124);
    assert.equal(usdToMicros(0.0001245), 125);
    assert.equal(usdToMicros(0.0004955), 496);
  });

  for (const bad of [Number.NaN, -0.01, -1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    test(`rejects ${bad} with a RangeError`, () => {
      assert.throws(() => usdToMicros(bad), RangeError);
    });
  }

  test("rejects amounts too large for a safe integer of micros", () => {
    assert.throws(() => usdToMicros(1e13), RangeError);
  });
});

describe("microsToUsd", () => {
  const cases: [micros: number, usd: number][] = [
    [0, 0],
    [40_000, 0.04],
    [16_000, 0.016],
    [120_000, 0.12],
    [1, 0.000001],
    [166_650, 0.16665],
    [12_345_678, 12.345678],
    [-1_500, -0.0015],
  ];
  for (const [micros, usd] of cases) {
    test(`${micros} micros is ${usd} USD`, () => {
      assert.equal(microsToUsd(micros), usd);
      assert.equal(String(microsToUsd(micros)), String(usd));
    });
  }

  test("round-trips with usdToMicros", () => {
    for (const micros of [0, 1, 999, 40_000, 211_000, 711_570, 123_456_789]) {
      assert.equal(usdToMicros(microsToUsd(micros)), micros);
    }
  });

  for (const bad of [0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    test(`rejects ${bad}`, () => {
      assert.throws(() => microsToUsd(bad), RangeError);
    });
  }
});

describe("formatUsd", () => {
  const cases: [micros: number, text: string][] = [
    [0, "0.000000"],
    [1, "0.000001"],
    [40_000, "0.040000"],
    [120_000, "0.120000"],
    [1_000_000, "1.000000"],
    [12_345_678, "12.345678"],
    [-1_500, "-0.001500"],
    [-2_000_001, "-2.000001"],
  ];
  for (const [micros, text] of cases) {
    test(`${micros} micros reads ${text}`, () => {
      assert.equal(formatUsd(micros), text);
    });
  }

  test("rejects fractions of a micro", () => {
    assert.throws(() => formatUsd(0.5), RangeError);
  });
});
