/**
 * The targets of issue 17, judged from the rows of one run: each is held to a floor measured in
 * the same rounds, so that the machine's mood cancels out. A target whose rows were not measured
 * (another `--scenario`, a failed check) is NOT RUN, never a pass.
 *
 * @example
 * for (const verdict of judge(rows)) process.stdout.write(`${verdict.line}\n`);
 */
import type { Row } from "./measure.ts";
import { MB, megabytes, signed } from "./report.ts";
import type { TargetName } from "./scenarios.ts";

export interface Verdict {
  id: string;
  /** The target as issue 17 states it. */
  goal: string;
  /** The hub's figure and the limit it is held to, in `unit`. */
  value: number | undefined;
  limit: number | undefined;
  unit: "×" | "ms" | "MB";
  pass: boolean | undefined;
  /** The figures behind the verdict, for the reader. */
  detail: string;
  line: string;
}

interface Goal {
  id: string;
  goal: string;
  value: number | undefined;
  limit: number | undefined;
  unit: Verdict["unit"];
  /** Throughput must reach its limit; everything else must stay under it. */
  atLeast?: boolean;
  /** A latency added over bare, shown with its sign like the table's +p50. */
  signed?: boolean;
  /** What a run must measure for the verdict, said when it did not. */
  needs: string;
  detail: () => string;
}

const IDLE_RSS_LIMIT_MB = 110;
const PEAK_RSS_MARGIN_MB = 50;
const FLOORS = ["floor-stream", "floor-buffered", "floor-row"] as const;

export function judge(rows: Row[]): Verdict[] {
  const find = (scenario: string, target: TargetName) =>
    rows.find(
      (row) => row.scenario === scenario && row.target === target && row.checked && row.rps > 0,
    );
  const cpu = (scenario: string, target: TargetName) => find(scenario, target)?.cpuMsPerRequest;
  const added = (target: TargetName) => find("S0c1", target)?.addedP50Ms;
  const idle = (target: TargetName) => rows.find((row) => row.target === target)?.idleRssBytes;
  const peak = (target: TargetName) => find("S2c64", target)?.memory?.peakBytes;
  const mb = (bytes: number | undefined) => (bytes === undefined ? undefined : bytes / MB);

  const s2 = {
    hub: find("S2", "image-hub"),
    buffered: find("S2", "floor-buffered"),
    stream: find("S2", "floor-stream"),
  };
  const s0Row = { hub: cpu("S0c1", "image-hub"), row: cpu("S0c1", "floor-row") };
  const highestFloorPeak = FLOORS.map((floor) => ({ floor, bytes: peak(floor) })).toSorted(
    (a, b) => (b.bytes ?? -1) - (a.bytes ?? -1),
  )[0];
  const s1 = { hub: cpu("S1", "image-hub"), s0: cpu("S0", "image-hub") };

  const goals: Goal[] = [
    {
      id: "S2 throughput",
      needs: "S2: image-hub, floor-buffered",
      goal: "S2 throughput ≥ 0.9× floor-buffered's",
      value: ratio(s2.hub?.rps, s2.buffered?.rps),
      limit: 0.9,
      unit: "×",
      atLeast: true,
      detail: () =>
        `image-hub ${perSecond(s2.hub?.rps)} req/s = ${times(s2.hub?.rps, s2.buffered?.rps)} floor-buffered ` +
        `(${perSecond(s2.buffered?.rps)}), ${times(s2.hub?.rps, s2.stream?.rps)} floor-stream ` +
        `(${perSecond(s2.stream?.rps)}), ${times(s2.hub?.rps, find("S2", "bare")?.rps)} bare` +
        portkey(times(find("S2", "portkey")?.rps, s2.buffered?.rps), "floor-buffered"),
    },
    {
      id: "S2 CPU",
      needs: "S2: image-hub, floor-buffered",
      goal: "S2 CPU/req ≤ 1.2× floor-buffered's",
      value: s2.hub?.cpuMsPerRequest,
      limit: scaled(s2.buffered?.cpuMsPerRequest, 1.2),
      unit: "ms",
      detail: () =>
        `image-hub ${ms(s2.hub?.cpuMsPerRequest)}: ${times(s2.hub?.cpuMsPerRequest, s2.buffered?.cpuMsPerRequest)} ` +
        `floor-buffered (${ms(s2.buffered?.cpuMsPerRequest)}), ` +
        `${times(s2.hub?.cpuMsPerRequest, s2.stream?.cpuMsPerRequest)} floor-stream (${ms(s2.stream?.cpuMsPerRequest)})` +
        portkey(ms(cpu("S2", "portkey"))),
    },
    {
      id: "S0 added p50",
      needs: "S0c1: image-hub, floor-row, bare",
      goal: "S0 added p50 at c=1 ≤ floor-row's + 0.1 ms",
      value: added("image-hub"),
      limit: offset(added("floor-row"), 0.1),
      unit: "ms",
      signed: true,
      detail: () =>
        `image-hub ${plusMs(added("image-hub"))} over bare (` +
        FLOORS.map((floor) => `${floor} ${plusMs(added(floor))}`).join(", ") +
        ")" +
        portkey(plusMs(added("portkey"))),
    },
    {
      id: "S0 CPU",
      needs: "S0c1: image-hub, floor-row",
      goal: "S0 CPU/req at c=1 ≤ 1.5× floor-row's",
      value: s0Row.hub,
      limit: scaled(s0Row.row, 1.5),
      unit: "ms",
      detail: () =>
        `image-hub ${ms(s0Row.hub)}: ${times(s0Row.hub, s0Row.row)} floor-row (${ms(s0Row.row)}; ` +
        `floor-buffered ${ms(cpu("S0c1", "floor-buffered"))}, floor-stream ${ms(cpu("S0c1", "floor-stream"))})` +
        portkey(ms(cpu("S0c1", "portkey"))),
    },
    {
      id: "idle RSS",
      needs: "image-hub running",
      goal: `image-hub idle RSS ≤ ${IDLE_RSS_LIMIT_MB} MB`,
      value: mb(idle("image-hub")),
      limit: IDLE_RSS_LIMIT_MB,
      unit: "MB",
      detail: () =>
        `image-hub ${megabytes(idle("image-hub"))} MB (` +
        FLOORS.map((floor) => `${floor} ${megabytes(idle(floor))} MB`).join(", ") +
        ")" +
        portkey(`${megabytes(idle("portkey"))} MB`),
    },
    {
      id: "S2c64 peak RSS",
      needs: "S2c64: image-hub and a floor",
      goal: `S2 peak RSS at c=64 ≤ the highest floor's + ${PEAK_RSS_MARGIN_MB} MB`,
      value: mb(peak("image-hub")),
      limit: offset(mb(highestFloorPeak?.bytes), PEAK_RSS_MARGIN_MB),
      unit: "MB",
      detail: () =>
        `image-hub ${megabytes(peak("image-hub"))} MB (` +
        FLOORS.map((floor) => `${floor} ${megabytes(peak(floor))} MB`).join(", ") +
        ")",
    },
    {
      // Both at 16 connections: re-hosting against passing through, like for like.
      id: "S1 CPU",
      needs: "S1 and S0: image-hub",
      goal: "S1 (url) CPU/req ≤ the hub's own S0 CPU/req + 0.5 ms, both at c=16",
      value: s1.hub,
      limit: offset(s1.s0, 0.5),
      unit: "ms",
      detail: () =>
        `image-hub ${ms(s1.hub)} (its S0: ${ms(s1.s0)}); ` +
        `${times(find("S1", "image-hub")?.rps, find("S1", "bare")?.rps)} bare's throughput`,
    },
  ];
  return goals.map(verdictOf);
}

function verdictOf(goal: Goal): Verdict {
  const { id, value, limit, unit } = goal;
  const measured = value !== undefined && limit !== undefined && !Number.isNaN(value);
  const pass = measured ? (goal.atLeast ? value >= limit : value <= limit) : undefined;
  const limitText =
    limit === undefined ? "" : ` (limit ${goal.signed ? plusMs(limit) : shown(limit, unit)})`;
  const detail = measured ? goal.detail() : `not measured (needs ${goal.needs})`;
  const result = pass === undefined ? "NOT RUN" : pass ? "PASS" : "FAIL";
  const line = `${result.padEnd(7)} ${goal.goal}${measured ? limitText : ""}: ${detail}`;
  return { id, goal: goal.goal, value, limit, unit, pass, detail, line };
}

function shown(value: number, unit: Verdict["unit"]): string {
  if (unit === "×") return `${value.toFixed(2)}×`;
  if (unit === "MB") return `${value.toFixed(0)} MB`;
  return `${value.toFixed(2)} ms`;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function times(a: number | undefined, b: number | undefined): string {
  const value = ratio(a, b);
  return value === undefined ? "?×" : `${value.toFixed(2)}×`;
}

function scaled(value: number | undefined, factor: number): number | undefined {
  return value === undefined ? undefined : value * factor;
}

function offset(value: number | undefined, by: number): number | undefined {
  return value === undefined ? undefined : value + by;
}

/** "?" for a target that did not run (`--targets`). */
function perSecond(value: number | undefined): string {
  return value === undefined ? "?" : value.toFixed(1);
}

function ms(value: number | undefined): string {
  return value === undefined ? "? ms" : `${value.toFixed(2)} ms`;
}

function plusMs(value: number | undefined): string {
  return value === undefined ? "? ms" : `${signed(value)} ms`;
}

/** Portkey's figure where it was measured, for scale; it is held to nothing. */
function portkey(text: string, suffix = ""): string {
  return text.startsWith("?") ? "" : `; portkey ${text}${suffix ? ` ${suffix}` : ""}`;
}
