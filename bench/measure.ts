/**
 * Measures one scenario: every target is checked once, warmed up, then driven in rounds that
 * take the targets in turn (round 1 of each, round 2 of each, …), so that the machine's drift
 * touches them alike. Per round it reads the target process's CPU time from /proc; through the
 * whole scenario it samples each target's resident memory.
 *
 * Throughput is `connections ÷ mean latency` of each round (Little's law for a closed loop),
 * averaged over the rounds: unlike completed ÷ elapsed it does not count the ramp-up and the
 * requests cut off when a short round ends against a target, which matters when a reply takes a
 * second and a round a few. Completed ÷ elapsed is in the JSON too.
 *
 * @example
 * const rows = await measureScenario(scenario, running, { timing, warnings, idleRss });
 */
import { type Check, checkOnce, explain, load } from "./load.ts";
import { type MemorySampler, readCpuMs, sampleMemory } from "./proc.ts";
import {
  type Endpoint,
  endpointOf,
  pidOf,
  type Running,
  type Scenario,
  type TargetName,
} from "./scenarios.ts";

export interface Timing {
  warmupSeconds: number;
  rounds: number;
  maxRoundSeconds: number | undefined;
}

export interface Round {
  seconds: number;
  ok: number;
  /** Completed 2xx replies ÷ elapsed seconds. */
  completedPerSecond: number;
  /** Connections ÷ mean latency of the 2xx replies. */
  rps: number;
  /** CPU the target's process used in the round, per 2xx reply. */
  cpuMsPerRequest: number | undefined;
}

export interface Row {
  scenario: string;
  target: TargetName;
  connections: number;
  checked: boolean;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of the target's own process (bare: the upstream's) per 2xx reply, over all rounds. */
  cpuMsPerRequest: number | undefined;
  /** p50 over the bare upstream's in the same scenario. */
  addedP50Ms: number | undefined;
  /** This row's req/s ÷ the named target's in the same scenario. */
  ratios: { bare?: number; floorBuffered?: number; floorStream?: number };
  /** Hub-only scenarios: against the hub in the reference scenario. */
  reference: { scenario: string; addedP50Ms: number; ratio: number } | undefined;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  replyBytes: number;
  /** VmRSS after start and warm-up, before any scenario's load. */
  idleRssBytes: number | undefined;
  /** Resident memory of this target's process through the whole scenario. */
  memory: { startBytes: number; peakBytes: number } | undefined;
  rounds: Round[];
}

interface Measurement {
  target: TargetName;
  endpoint: Endpoint;
  pid: number | undefined;
  check: Check;
  rounds: Round[];
  latencies: number[];
  cpuMs: number;
  cpuMeasured: boolean;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
}

export async function measureScenario(
  scenario: Scenario,
  running: Running,
  options: {
    timing: Timing;
    warnings: string[];
    idleRss: Partial<Record<TargetName, number>>;
  },
): Promise<Row[]> {
  const { timing, warnings } = options;
  const plural = scenario.connections === 1 ? "" : "s";
  process.stdout.write(
    `\n${scenario.id} ${scenario.title}, ${scenario.connections} connection${plural}\n`,
  );
  const body = JSON.stringify(scenario.body);
  const measurements: Measurement[] = [];
  for (const target of scenario.targets) {
    const endpoint = endpointOf(target, running);
    const check = await checkOnce(scenario.expect, endpoint, body);
    if (!check.ok) {
      warnings.push(
        `${scenario.id} ${target}: the check request failed, not measured: ${check.detail}`,
      );
      process.stdout.write(`  !!! ${target} check FAILED: ${check.detail}\n`);
    }
    measurements.push({
      target,
      endpoint,
      pid: pidOf(target, running),
      check,
      rounds: [],
      latencies: [],
      cpuMs: 0,
      cpuMeasured: false,
      non2xx: 0,
      errors: 0,
      timeouts: 0,
      statusCodes: {},
    });
  }
  const live = measurements.filter((measurement) => measurement.check.ok);
  const samplers = new Map<TargetName, MemorySampler>();
  for (const { target, pid } of measurements) {
    if (pid !== undefined) samplers.set(target, sampleMemory(pid));
  }

  const { connections } = scenario;
  for (const measurement of live) {
    await load(measurement.endpoint, body, { connections, seconds: timing.warmupSeconds });
  }
  const roundSeconds = Math.min(scenario.roundSeconds, timing.maxRoundSeconds ?? Infinity);
  for (let round = 0; round < timing.rounds; round++) {
    for (const measurement of live) {
      const entry = await measureRound(measurement, body, connections, roundSeconds);
      process.stdout.write(
        `  round ${round + 1} ${measurement.target.padEnd(14)} ${entry.rps.toFixed(1)} req/s ` +
          `(${entry.ok} replies in ${entry.seconds} s)\n`,
      );
    }
  }

  const memory = new Map([...samplers].map(([target, sampler]) => [target, sampler.stop()]));
  const rows: Row[] = [];
  for (const measurement of measurements) {
    const empty = measurement.rounds.filter((round) => round.ok === 0).length;
    if (empty > 0) {
      warnings.push(
        `${scenario.id} ${measurement.target}: no reply completed in ${empty} of ${measurement.rounds.length} round(s) of ${roundSeconds} s`,
      );
    }
    const trouble = measurement.non2xx + measurement.errors + measurement.timeouts;
    if (trouble > 0) {
      const detail = await explain(measurement.endpoint, body);
      warnings.push(
        `${scenario.id} ${measurement.target}: ${measurement.non2xx} non-2xx, ${measurement.errors} errors, ` +
          `${measurement.timeouts} timeouts (status codes ${JSON.stringify(measurement.statusCodes)}); ` +
          `one request now answers: ${detail}`,
      );
    }
    const idleRssBytes = options.idleRss[measurement.target];
    rows.push(summarise(scenario, measurement, memory.get(measurement.target), idleRssBytes));
  }
  return rows;
}

/** One round against one target, added to its measurement. */
async function measureRound(
  measurement: Measurement,
  body: string,
  connections: number,
  seconds: number,
): Promise<Round> {
  const { pid } = measurement;
  const cpuBefore = pid === undefined ? undefined : readCpuMs(pid);
  const { result, latencies } = await load(measurement.endpoint, body, { connections, seconds });
  const cpuAfter = pid === undefined ? undefined : readCpuMs(pid);
  const ok = latencies.length;
  const meanMs = ok > 0 ? latencies.reduce((sum, value) => sum + value, 0) / ok : Number.NaN;
  const cpuMs =
    cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
  const round: Round = {
    seconds: result.duration,
    ok,
    completedPerSecond: ok / result.duration,
    rps: ok > 0 ? connections / (meanMs / 1000) : 0,
    cpuMsPerRequest: cpuMs === undefined || ok === 0 ? undefined : cpuMs / ok,
  };
  measurement.rounds.push(round);
  if (cpuMs !== undefined) {
    measurement.cpuMs += cpuMs;
    measurement.cpuMeasured = true;
  }
  for (const latency of latencies) measurement.latencies.push(latency);
  measurement.non2xx += result.non2xx;
  measurement.errors += result.errors;
  measurement.timeouts += result.timeouts;
  for (const [status, { count }] of Object.entries(result.statusCodeStats)) {
    measurement.statusCodes[status] = (measurement.statusCodes[status] ?? 0) + count;
  }
  return round;
}

function summarise(
  scenario: Scenario,
  measurement: Measurement,
  memory: { startBytes: number; peakBytes: number } | undefined,
  idleRssBytes: number | undefined,
): Row {
  const sorted = measurement.latencies.toSorted((a, b) => a - b);
  const rounds = measurement.rounds;
  return {
    scenario: scenario.id,
    target: measurement.target,
    connections: scenario.connections,
    checked: measurement.check.ok,
    rps: rounds.length ? rounds.reduce((sum, round) => sum + round.rps, 0) / rounds.length : 0,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    // CPU over all rounds ÷ all replies, so that a short round weighs no more than its replies.
    cpuMsPerRequest:
      measurement.cpuMeasured && sorted.length > 0 ? measurement.cpuMs / sorted.length : undefined,
    addedP50Ms: undefined,
    ratios: {},
    reference: undefined,
    non2xx: measurement.non2xx,
    errors: measurement.errors,
    timeouts: measurement.timeouts,
    statusCodes: measurement.statusCodes,
    replyBytes: measurement.check.replyBytes,
    idleRssBytes,
    memory: memory && { startBytes: memory.startBytes, peakBytes: memory.peakBytes },
    rounds,
  };
}

/** Nearest rank; NaN for no values. */
function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(fraction * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] as number;
}
