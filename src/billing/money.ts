/**
 * Money at the edges. The hub keeps every amount in whole micro-dollars (1 USD = 1,000,000) so
 * balances and ledgers add up exactly; these functions are the only places USD numbers come in
 * or go out (admin input, JSON replies, CSV exports).
 */

const MICROS_PER_USD = 1_000_000;

/**
 * USD to whole micro-dollars, rounding half away from zero.
 *
 * Works on the decimal the caller wrote (the shortest text of the number), not on the binary
 * product `usd * 1e6`: `0.0000005 * 1e6` is 0.49999999999999994 in floating point and would
 * round down, but a client sending 0.0000005 means exactly half a micro.
 *
 * @example usdToMicros(0.04) // 40000
 * @throws RangeError for NaN, infinities, negative amounts and amounts beyond a safe integer.
 */
export function usdToMicros(usd: number): number {
  if (typeof usd !== "number" || !Number.isFinite(usd) || usd < 0) {
    throw new RangeError(`Invalid USD amount ${usd}: it must be a finite number, at least 0.`);
  }
  // String() gives the shortest decimal that reads back as the same number, e.g. "0.04",
  // "5e-7" or "1.5e+21": digits, an optional point and an optional exponent.
  const [mantissa = "0", exponentText = "0"] = String(usd).split("e");
  const [whole = "0", fraction = ""] = mantissa.split(".");
  const digits = whole + fraction;
  // Where the decimal point falls in `digits` once the amount is scaled to micros.
  const point = whole.length + Number(exponentText) + 6;
  const integerDigits = point <= 0 ? "0" : digits.slice(0, point).padEnd(point, "0");
  const firstDropped = point < 0 ? "0" : (digits[point] ?? "0");
  const micros = Number(integerDigits) + (firstDropped >= "5" ? 1 : 0);
  if (!Number.isSafeInteger(micros)) {
    throw new RangeError(`Invalid USD amount ${usd}: too large to keep in micro-dollars.`);
  }
  return micros;
}

/**
 * Whole micro-dollars to USD, e.g. 40000 → 0.04. Exact in the sense that matters: the result is
 * the number a reader gets by parsing the decimal (dividing two integers is correctly rounded).
 *
 * @throws RangeError when `micros` is not a safe integer.
 */
export function microsToUsd(micros: number): number {
  checkMicros(micros);
  return micros / MICROS_PER_USD;
}

/**
 * Whole micro-dollars as a fixed six-decimal USD string for CSV, built from the integer so no
 * floating point is involved.
 *
 * @example formatUsd(40000) // "0.040000"
 * @example formatUsd(-1500) // "-0.001500"
 */
export function formatUsd(micros: number): string {
  checkMicros(micros);
  const sign = micros < 0 ? "-" : "";
  const absolute = Math.abs(micros);
  const whole = Math.floor(absolute / MICROS_PER_USD);
  const fraction = String(absolute % MICROS_PER_USD).padStart(6, "0");
  return `${sign}${whole}.${fraction}`;
}

function checkMicros(micros: number): void {
  if (!Number.isSafeInteger(micros)) {
    throw new RangeError(`Invalid amount ${micros}: micro-dollars are whole numbers.`);
  }
}
