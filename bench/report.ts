/**
 * Turns the measured rows into what a reader compares: each row's added latency over the bare
 * upstream and its throughput as a ratio to bare and to the two plain floors of the same
 * scenario (BENCHMARKS.md quotes ratios, which survive a slow machine better than req/s), then
 * the table.
 *
 * @example
 * compare(rows, scenarios);
 * process.stdout.write(`${table(rows)}\n${LEGEND}\n`);
 */
import type { Row } from "./measure.ts";
import type { Scenario, TargetName } from "./scenarios.ts";

export const MB = 1024 * 1024;

export const LEGEND =
  "req/s: connections ÷ mean latency per round, mean over rounds. +p50: over bare in the same " +
  "scenario. × bare, × f-buf, × f-str: req/s over bare's, floor-buffered's, floor-stream's in the " +
  "same scenario (S4, S5: against image-hub in S2, in the note). CPU ms/req: the target's own " +
  "process, user + system, over all rounds ÷ 2xx replies (bare: the upstream's). RSS idle: VmRSS " +
  "after start and warm-up, before load; RSS peak: VmRSS sampled every 100 ms through the scenario.";

/** Fills in each row's added p50 and throughput ratios against its scenario's baselines. */
export function compare(rows: Row[], scenarios: Scenario[]): void {
  const usable = (row: Row | undefined): row is Row =>
    row?.checked === true && row.rps > 0 && !Number.isNaN(row.p50Ms);
  const find = (scenario: string, target: TargetName) =>
    rows.find((row) => row.scenario === scenario && row.target === target);
  for (const row of rows) {
    if (!usable(row)) continue;
    const ratio = (target: TargetName) => {
      const base = find(row.scenario, target);
      return usable(base) && base !== row ? row.rps / base.rps : undefined;
    };
    const bare = find(row.scenario, "bare");
    if (usable(bare) && bare !== row) row.addedP50Ms = row.p50Ms - bare.p50Ms;
    row.ratios = {
      bare: ratio("bare"),
      floorBuffered: ratio("floor-buffered"),
      floorStream: ratio("floor-stream"),
    };
    const reference = scenarios.find((scenario) => scenario.id === row.scenario)?.reference;
    const base = reference === undefined ? undefined : find(reference, row.target);
    if (reference !== undefined && usable(base)) {
      row.reference = {
        scenario: reference,
        addedP50Ms: row.p50Ms - base.p50Ms,
        ratio: row.rps / base.rps,
      };
    }
  }
}

export function table(rows: Row[]): string {
  const header = [
    "scenario",
    "target",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "+p50 ms",
    "× bare",
    "× f-buf",
    "× f-str",
    "CPU ms/req",
    "RSS idle MB",
    "RSS peak MB",
    "errors",
    "reply",
    "note",
  ];
  const lines = rows.map((row) => [
    row.scenario,
    row.target,
    String(row.connections),
    !row.checked
      ? "check failed"
      : row.rounds.some((round) => round.ok > 0)
        ? row.rps.toFixed(1)
        : "no reply",
    fixed(row.p50Ms, 2),
    fixed(row.p99Ms, 2),
    row.addedP50Ms === undefined ? "" : signed(row.addedP50Ms),
    ratio(row.ratios.bare),
    ratio(row.ratios.floorBuffered),
    ratio(row.ratios.floorStream),
    row.cpuMsPerRequest === undefined ? "" : row.cpuMsPerRequest.toFixed(2),
    row.idleRssBytes === undefined ? "" : megabytes(row.idleRssBytes),
    row.memory ? megabytes(row.memory.peakBytes) : "",
    String(row.non2xx + row.errors + row.timeouts),
    bytes(row.replyBytes),
    row.reference
      ? `${row.reference.ratio.toFixed(2)}× and ${signed(row.reference.addedP50Ms)} ms p50 vs ${row.reference.scenario}`
      : "",
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] ?? "").length)),
  );
  const left = new Set([0, 1, 14, 15]);
  const format = (cells: string[]) =>
    cells
      .map((cell, column) =>
        left.has(column) ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
      )
      .join("  ")
      .trimEnd();
  const rule = format(widths.map((width) => "-".repeat(width)));
  // A blank line between scenarios keeps each scenario's targets together for the eye.
  const body = lines.flatMap((line, index) =>
    index > 0 && line[0] !== lines[index - 1]?.[0] ? ["", format(line)] : [format(line)],
  );
  return [format(header), rule, ...body].join("\n");
}

function ratio(value: number | undefined): string {
  return value === undefined ? "" : value.toFixed(2);
}

export function signed(value: number, digits = 2): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

function fixed(value: number, digits: number): string {
  return Number.isNaN(value) ? "" : value.toFixed(digits);
}

export function megabytes(value: number | undefined): string {
  return value === undefined ? "?" : (value / MB).toFixed(0);
}

function bytes(value: number): string {
  if (value === 0) return "";
  return value >= MB ? `${(value / MB).toFixed(2)} MB` : `${(value / 1024).toFixed(1)} KB`;
}
