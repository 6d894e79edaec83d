/**
 * `npm run bench`: image-hub against the bare upstream (the floor) and a peer gateway (Portkey),
 * all driven by autocannon in one run, interleaved in short rounds so that drift of the machine
 * touches every target alike.
 *
 *   S1c1 tiny  dall-e-2 256x256 b64_json, a PNG of a few KB, one connection: the gateway's own
 *              overhead per request, without queueing
 *   S1 tiny    the same at 16 connections: how many such requests it serves
 *   S2 large   dall-e-2 1024x1024 b64_json, a PNG of about 1.5 MB
 *   S3 many    dall-e-2 n=4 1024x1024 b64_json (about 8 MB of JSON per reply)
 *   S4 hosted  gpt-image-1 1024x1024 response_format url: the hub stores the image (hub only,
 *              compared with the hub in S2)
 *   S5 edit    gpt-image-1 with a 4 MB base64 input image (hub only, compared with the hub in S2)
 *
 * Throughput is `connections ÷ mean latency` of each round (Little's law for a closed loop),
 * averaged over the rounds: unlike completed ÷ elapsed it does not count the ramp-up and the
 * requests cut off when a short round ends against a target, which matters when a reply takes a
 * second and a round a few. Completed ÷ elapsed is in the JSON too.
 *
 * Options: `--quick` (one short round, about a minute), `--scenario S2` (or `S1,S3`; `S1` also
 * selects S1c1). Prints a table and writes bench/results/latest.json; the targets' logs go to
 * bench/results/*.log.
 *
 * @example
 * npm run bench
 * node bench/run.ts --quick --scenario S2
 */

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import type { Result } from "autocannon";
import autocannon from "autocannon";
import {
  type Child,
  type HubTarget,
  killAllNow,
  type MemorySampler,
  REPO_ROOT,
  readCpuMs,
  readMemory,
  sampleMemory,
  startHub,
  startPortkey,
  startUpstream,
  stopAll,
  type UpstreamTarget,
  unexpectedExits,
} from "./targets.ts";
import { noisyPng } from "./upstream.ts";

type TargetName = "floor" | "image-hub" | "portkey";

interface Scenario {
  id: string;
  title: string;
  connections: number;
  /** Seconds per measured round; longer where replies take long, so a round holds many. */
  roundSeconds: number;
  targets: TargetName[];
  body: Record<string, unknown>;
  expect: { images: number; kind: "b64_json" | "url" };
  /** Hub-only scenarios are compared with the hub's numbers in this scenario. */
  reference?: string;
}

interface Endpoint {
  url: string;
  headers: Record<string, string>;
}

interface Round {
  seconds: number;
  ok: number;
  /** Completed 2xx replies ÷ elapsed seconds. */
  completedPerSecond: number;
  /** Connections ÷ mean latency of the 2xx replies. */
  rps: number;
  /** CPU the target's process used in the round, per 2xx reply. */
  cpuMsPerRequest: number | undefined;
}

interface Measurement {
  target: TargetName;
  check: { ok: boolean; status: number; replyBytes: number; detail: string };
  rounds: Round[];
  latencies: number[];
  cpuMs: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
}

interface Row {
  scenario: string;
  target: TargetName;
  connections: number;
  checked: boolean;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of the target's process (the upstream for the floor) per 2xx reply. */
  cpuMsPerRequest: number | undefined;
  /** Against the floor, or for hub-only scenarios against the hub in the reference scenario. */
  comparedWith: string | undefined;
  addedP50Ms: number | undefined;
  throughputRatio: number | undefined;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  replyBytes: number;
  /** Resident memory of this target's process during the whole scenario, in bytes. */
  memory: { startBytes: number; peakBytes: number } | undefined;
  rounds: Round[];
}

const PROMPT = "A photorealistic image of a cat programming on a laptop, warm evening light";
const MB = 1024 * 1024;
/** A check request that takes longer than this means the target is stuck, not slow. */
const CHECK_TIMEOUT_MS = 30_000;

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    scenario: { type: "string" },
  },
});

const timing = flags.quick
  ? { warmupSeconds: 1, rounds: 1, maxRoundSeconds: 3 as number | undefined }
  : { warmupSeconds: 2, rounds: 3, maxRoundSeconds: undefined };

const RESULTS_DIR = path.join(REPO_ROOT, "bench/results");

async function main(): Promise<void> {
  const started = performance.now();
  const git = gitState(); // at the start: src/ may change while the bench runs
  const editImage = (await noisyPng(1200, 1200, 32)).toString("base64");
  const scenarios = selectScenarios(allScenarios(editImage), flags.scenario);
  const warnings: string[] = [];
  mkdirSync(RESULTS_DIR, { recursive: true });
  const logFile = (name: string) => path.join(RESULTS_DIR, `${name}.log`);
  for (const name of ["upstream", "image-hub", "portkey"]) writeFileSync(logFile(name), "");

  process.stdout.write(`${machineLine()}\ncommand: ${commandLine()}\n`);
  const upstream = await startUpstream({ logFile: logFile("upstream") });
  const hub = await startHub({ upstream, logFile: logFile("image-hub") });
  const needsPeer = scenarios.some((scenario) => scenario.targets.includes("portkey"));
  const peer = needsPeer ? await startPortkey({ logFile: logFile("portkey") }) : undefined;
  const idle = {
    "image-hub": readMemory(hub.pid)?.rssBytes,
    portkey: peer ? readMemory(peer.pid)?.rssBytes : undefined,
  };
  process.stdout.write(
    `upstream PNGs: tiny ${upstream.imageBytes.tiny} B, large ${(upstream.imageBytes.large / MB).toFixed(2)} MB; ` +
      `edit input ${(editImage.length / MB).toFixed(2)} MB of base64; ` +
      `idle RSS: image-hub ${megabytes(idle["image-hub"])} MB` +
      (peer ? `, portkey ${megabytes(idle.portkey)} MB; ` : "; ") +
      `${timing.rounds} round(s) per target after ${timing.warmupSeconds} s of warm-up\n`,
  );

  const rows: Row[] = [];
  for (const scenario of scenarios) {
    const scenarioStarted = performance.now();
    const measured = await runScenario(scenario, { upstream, hub, peer }, warnings);
    rows.push(...measured);
    const seconds = ((performance.now() - scenarioStarted) / 1000).toFixed(1);
    process.stdout.write(`  ${scenario.id} done in ${seconds} s\n`);
    for (const exit of unexpectedExits.splice(0)) {
      const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
      const message = `${exit.name} exited during ${scenario.id} (${how}); the end of ${path.relative(process.cwd(), exit.logFile)}:\n${exit.logTail}`;
      warnings.push(message);
      process.stdout.write(`  !!! ${message}\n`);
    }
  }
  compare(rows, scenarios);

  const hubMemory = readMemory(hub.pid);
  const peerMemory = peer ? readMemory(peer.pid) : undefined;
  const totalSeconds = (performance.now() - started) / 1000;
  const verdicts = judge(rows);

  process.stdout.write(`\n${table(rows)}\n`);
  process.stdout.write(
    "req/s: connections ÷ mean latency per round, mean over rounds; +p50 and × req/s against the floor " +
      "(S4, S5: against image-hub in S2); CPU ms/req: the target's process (the floor's: the upstream's); " +
      "peak RSS: VmRSS sampled every 100 ms through the scenario, from its value at the start.\n",
  );
  for (const name of ["image-hub", "portkey"]) {
    const errors = loggedErrors(logFile(name));
    if (errors.count > 0) {
      process.stdout.write(
        `${name} logged ${errors.count} error lines (${errors.summary}); see ${path.relative(process.cwd(), logFile(name))}\n`,
      );
    }
  }
  process.stdout.write(`\n${verdicts.map((verdict) => verdict.line).join("\n")}\n`);
  process.stdout.write(
    `\nlifetime peak RSS (VmHWM): image-hub ${megabytes(hubMemory?.hwmBytes)} MB` +
      (peerMemory ? `, portkey ${megabytes(peerMemory.hwmBytes)} MB` : "") +
      "\n",
  );
  for (const warning of warnings) process.stdout.write(`\n!!! WARNING: ${warning}\n`);
  process.stdout.write(`\ntotal ${totalSeconds.toFixed(1)} s\n`);

  const report = {
    version: 1,
    date: new Date().toISOString(),
    command: commandLine(),
    machine: machine(),
    git,
    timing,
    upstream: { imageBytes: upstream.imageBytes },
    scenarios: scenarios.map((scenario) => ({
      id: scenario.id,
      title: scenario.title,
      connections: scenario.connections,
      request: { ...scenario.body, image: scenario.body.image ? "(base64 PNG)" : undefined },
      requestBytes: Buffer.byteLength(JSON.stringify(scenario.body)),
      results: rows.filter((row) => row.scenario === scenario.id),
    })),
    targets: verdicts.map(({ line: _line, ...verdict }) => verdict),
    idleRssBytes: idle,
    lifetimePeakRssBytes: { "image-hub": hubMemory?.hwmBytes, portkey: peerMemory?.hwmBytes },
    warnings,
    totalSeconds,
  };
  const file = path.join(RESULTS_DIR, "latest.json");
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
  if (warnings.length > 0) process.exitCode = 1;
}

function allScenarios(editImage: string): Scenario[] {
  const dallE2 = { model: "dall-e-2", prompt: PROMPT, response_format: "b64_json" };
  const gateways: TargetName[] = ["floor", "image-hub", "portkey"];
  const tiny = { ...dallE2, n: 1, size: "256x256" };
  return [
    {
      id: "S1c1",
      title: "tiny: dall-e-2 256x256 b64_json (a PNG of a few KB), no queueing",
      connections: 1,
      roundSeconds: 2,
      targets: gateways,
      body: tiny,
      expect: { images: 1, kind: "b64_json" },
    },
    {
      id: "S1",
      title: "tiny: dall-e-2 256x256 b64_json (a PNG of a few KB)",
      connections: 16,
      roundSeconds: 3,
      targets: gateways,
      body: tiny,
      expect: { images: 1, kind: "b64_json" },
    },
    {
      id: "S2",
      title: "large: dall-e-2 1024x1024 b64_json (about 1.5 MB)",
      connections: 16,
      roundSeconds: 4,
      targets: gateways,
      body: { ...dallE2, n: 1, size: "1024x1024" },
      expect: { images: 1, kind: "b64_json" },
    },
    {
      id: "S3",
      title: "many: dall-e-2 n=4 1024x1024 b64_json",
      connections: 32,
      roundSeconds: 6,
      targets: gateways,
      body: { ...dallE2, n: 4, size: "1024x1024" },
      expect: { images: 4, kind: "b64_json" },
    },
    {
      id: "S4",
      title: "hosted: gpt-image-1 1024x1024 response_format url",
      connections: 16,
      roundSeconds: 4,
      targets: ["image-hub"],
      body: { model: "gpt-image-1", prompt: PROMPT, size: "1024x1024", response_format: "url" },
      expect: { images: 1, kind: "url" },
      reference: "S2",
    },
    {
      id: "S5",
      title: "edit: gpt-image-1, 4 MB base64 input, b64_json",
      connections: 8,
      roundSeconds: 6,
      targets: ["image-hub"],
      body: {
        model: "gpt-image-1",
        prompt: PROMPT,
        image: editImage,
        size: "1024x1024",
        response_format: "b64_json",
      },
      expect: { images: 1, kind: "b64_json" },
      reference: "S2",
    },
  ];
}

function selectScenarios(scenarios: Scenario[], wanted: string | undefined): Scenario[] {
  if (wanted === undefined) return scenarios;
  const ids = wanted.split(",").map((id) => id.trim().toUpperCase());
  const unknown = ids.filter((id) => !scenarios.some((scenario) => scenario.id.startsWith(id)));
  if (unknown.length > 0) {
    throw new Error(`Unknown scenario ${unknown.join(", ")}; there are S1 to S5.`);
  }
  // S1 also selects S1c1: the two halves of one question.
  return scenarios.filter((scenario) => ids.some((id) => scenario.id.startsWith(id)));
}

function endpointOf(
  target: TargetName,
  children: { upstream: UpstreamTarget; hub: HubTarget; peer: Child | undefined },
): Endpoint {
  const json = { "content-type": "application/json" };
  const { upstream, hub, peer } = children;
  if (target === "floor") {
    return {
      url: `${upstream.origin}/v1/images/generations`,
      headers: { ...json, authorization: `Bearer ${upstream.apiKey}` },
    };
  }
  if (target === "image-hub") {
    return {
      url: `${hub.origin}/v1/images/generations`,
      headers: { ...json, authorization: `Bearer ${hub.clientKey}` },
    };
  }
  if (peer === undefined) throw new Error("portkey is not running");
  return {
    url: `${peer.origin}/v1/images/generations`,
    headers: {
      ...json,
      authorization: `Bearer ${upstream.apiKey}`,
      "x-portkey-provider": "openai",
      "x-portkey-custom-host": `${upstream.origin}/v1`,
    },
  };
}

async function runScenario(
  scenario: Scenario,
  children: { upstream: UpstreamTarget; hub: HubTarget; peer: Child | undefined },
  warnings: string[],
): Promise<Row[]> {
  process.stdout.write(
    `\n${scenario.id} ${scenario.title}, ${scenario.connections} connection${scenario.connections === 1 ? "" : "s"}\n`,
  );
  const body = JSON.stringify(scenario.body);
  const endpoints = new Map(scenario.targets.map((t) => [t, endpointOf(t, children)]));
  const samplers = new Map<TargetName, MemorySampler>([
    ["image-hub", sampleMemory(children.hub.pid)],
  ]);
  if (children.peer && scenario.targets.includes("portkey")) {
    samplers.set("portkey", sampleMemory(children.peer.pid));
  }

  const pids: Partial<Record<TargetName, number>> = {
    floor: children.upstream.pid,
    "image-hub": children.hub.pid,
    portkey: children.peer?.pid,
  };
  const measurements: Measurement[] = [];
  for (const [target, endpoint] of endpoints) {
    const check = await checkOnce(scenario, endpoint, body);
    if (!check.ok) {
      warnings.push(
        `${scenario.id} ${target}: the check request failed, not measured: ${check.detail}`,
      );
      process.stdout.write(`  !!! ${target} check FAILED: ${check.detail}\n`);
    }
    measurements.push({
      target,
      check,
      rounds: [],
      latencies: [],
      cpuMs: 0,
      non2xx: 0,
      errors: 0,
      timeouts: 0,
      statusCodes: {},
    });
  }
  const live = measurements.filter((measurement) => measurement.check.ok);

  for (const measurement of live) {
    await load(endpoints.get(measurement.target) as Endpoint, body, scenario, timing.warmupSeconds);
  }
  const roundSeconds = Math.min(scenario.roundSeconds, timing.maxRoundSeconds ?? Infinity);
  for (let round = 0; round < timing.rounds; round++) {
    for (const measurement of live) {
      const endpoint = endpoints.get(measurement.target) as Endpoint;
      const entry = await measureRound(measurement, endpoint, body, scenario, {
        seconds: roundSeconds,
        pid: pids[measurement.target],
      });
      process.stdout.write(
        `  round ${round + 1} ${measurement.target.padEnd(9)} ${entry.rps.toFixed(1)} req/s ` +
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
      const detail = await explain(endpoints.get(measurement.target) as Endpoint, body);
      warnings.push(
        `${scenario.id} ${measurement.target}: ${measurement.non2xx} non-2xx, ${measurement.errors} errors, ` +
          `${measurement.timeouts} timeouts (status codes ${JSON.stringify(measurement.statusCodes)}); ` +
          `one request now answers: ${detail}`,
      );
    }
    rows.push(summarise(scenario, measurement, memory.get(measurement.target)));
  }
  return rows;
}

/** One round against one target, added to its measurement. */
async function measureRound(
  measurement: Measurement,
  endpoint: Endpoint,
  body: string,
  scenario: Scenario,
  options: { seconds: number; pid: number | undefined },
): Promise<Round> {
  const { pid } = options;
  const cpuBefore = pid === undefined ? undefined : readCpuMs(pid);
  const { result, latencies } = await load(endpoint, body, scenario, options.seconds);
  const cpuAfter = pid === undefined ? undefined : readCpuMs(pid);
  const ok = latencies.length;
  const meanMs = ok > 0 ? latencies.reduce((sum, value) => sum + value, 0) / ok : Number.NaN;
  const cpuMs =
    cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
  const round: Round = {
    seconds: result.duration,
    ok,
    completedPerSecond: ok / result.duration,
    rps: ok > 0 ? scenario.connections / (meanMs / 1000) : 0,
    cpuMsPerRequest: cpuMs === undefined || ok === 0 ? undefined : cpuMs / ok,
  };
  measurement.rounds.push(round);
  measurement.cpuMs += cpuMs ?? 0;
  for (const latency of latencies) measurement.latencies.push(latency);
  measurement.non2xx += result.non2xx;
  measurement.errors += result.errors;
  measurement.timeouts += result.timeouts;
  for (const [status, { count }] of Object.entries(result.statusCodeStats)) {
    measurement.statusCodes[status] = (measurement.statusCodes[status] ?? 0) + count;
  }
  return round;
}

/** One request, before any load: the target answers 200 with the images the scenario expects. */
async function checkOnce(
  scenario: Scenario,
  endpoint: Endpoint,
  body: string,
): Promise<Measurement["check"]> {
  const failed = (status: number, detail: string) => ({ ok: false, status, replyBytes: 0, detail });
  let response: Response;
  let text: string;
  try {
    const signal = AbortSignal.timeout(CHECK_TIMEOUT_MS);
    response = await fetch(endpoint.url, {
      method: "POST",
      headers: endpoint.headers,
      body,
      signal,
    });
    text = await response.text();
  } catch (error) {
    const reason =
      error instanceof Error ? `${error.message} (${String(error.cause ?? "")})` : String(error);
    return failed(0, reason);
  }
  const replyBytes = Buffer.byteLength(text);
  if (response.status !== 200)
    return failed(response.status, `${response.status} ${text.slice(0, 500)}`);
  let data: unknown;
  try {
    data = (JSON.parse(text) as { data?: unknown }).data;
  } catch {
    return failed(200, `200 but not JSON: ${text.slice(0, 200)}`);
  }
  const { images, kind } = scenario.expect;
  if (!Array.isArray(data) || data.length !== images) {
    return failed(200, `expected ${images} images, got ${JSON.stringify(data)?.slice(0, 200)}`);
  }
  for (const item of data as Record<string, unknown>[]) {
    const value = item[kind];
    if (typeof value !== "string" || value.length === 0) {
      return failed(200, `an image without ${kind}: ${JSON.stringify(item).slice(0, 200)}`);
    }
    if (kind === "b64_json" && !value.startsWith("iVBORw0KGgo")) {
      return failed(200, `${kind} is not a PNG: ${value.slice(0, 40)}…`);
    }
    if (kind === "url") {
      const image = await fetch(value);
      const bytes = Buffer.from(await image.arrayBuffer());
      if (image.status !== 200 || bytes.subarray(1, 4).toString() !== "PNG") {
        return failed(200, `its hosted image ${value} answers ${image.status}`);
      }
    }
  }
  return { ok: true, status: 200, replyBytes, detail: "" };
}

/** After a run with failures: what one request answers now, to show the error's shape. */
async function explain(endpoint: Endpoint, body: string): Promise<string> {
  try {
    const signal = AbortSignal.timeout(CHECK_TIMEOUT_MS);
    const response = await fetch(endpoint.url, {
      method: "POST",
      headers: endpoint.headers,
      body,
      signal,
    });
    const text = await response.text();
    return `${response.status} ${text.slice(0, response.ok ? 80 : 500)}`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** One autocannon run; the latencies of 2xx replies, in milliseconds with sub-ms precision. */
function load(
  endpoint: Endpoint,
  body: string,
  scenario: Scenario,
  seconds: number,
): Promise<{ result: Result; latencies: number[] }> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: endpoint.url,
        method: "POST",
        headers: endpoint.headers,
        body,
        connections: scenario.connections,
        duration: seconds,
        timeout: 30,
      },
      (error, result) => (error ? reject(error) : resolve({ result, latencies })),
    );
    // autocannon's own histogram keeps whole milliseconds: too coarse for S1.
    instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

function summarise(
  scenario: Scenario,
  measurement: Measurement,
  memory: { startBytes: number; peakBytes: number } | undefined,
): Row {
  const sorted = measurement.latencies.toSorted((a, b) => a - b);
  const rounds = measurement.rounds;
  const cpuRounds = rounds.filter((round) => round.cpuMsPerRequest !== undefined);
  return {
    scenario: scenario.id,
    target: measurement.target,
    connections: scenario.connections,
    checked: measurement.check.ok,
    rps: rounds.length ? rounds.reduce((sum, round) => sum + round.rps, 0) / rounds.length : 0,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpuMsPerRequest:
      cpuRounds.length > 0 && sorted.length > 0 ? measurement.cpuMs / sorted.length : undefined,
    comparedWith: undefined,
    addedP50Ms: undefined,
    throughputRatio: undefined,
    non2xx: measurement.non2xx,
    errors: measurement.errors,
    timeouts: measurement.timeouts,
    statusCodes: measurement.statusCodes,
    replyBytes: measurement.check.replyBytes,
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

/** Fills in each row's added latency and throughput ratio against its baseline. */
function compare(rows: Row[], scenarios: Scenario[]): void {
  for (const row of rows) {
    const scenario = scenarios.find((candidate) => candidate.id === row.scenario);
    const base = scenario?.reference
      ? rows.find((other) => other.scenario === scenario.reference && other.target === "image-hub")
      : rows.find((other) => other.scenario === row.scenario && other.target === "floor");
    if (base === undefined || base === row || !base.checked || !row.checked) continue;
    if (Number.isNaN(row.p50Ms) || Number.isNaN(base.p50Ms)) continue;
    row.comparedWith = scenario?.reference ? `${scenario.reference} image-hub` : "floor";
    row.addedP50Ms = row.p50Ms - base.p50Ms;
    row.throughputRatio = row.rps / base.rps;
  }
}

interface Verdict {
  id: string;
  target: string;
  value: number | undefined;
  pass: boolean | undefined;
  line: string;
}

function judge(rows: Row[]): Verdict[] {
  const find = (scenario: string, target: TargetName) =>
    rows.find((row) => row.scenario === scenario && row.target === target && row.checked);
  const verdict = (
    id: string,
    target: string,
    value: number | undefined,
    pass: (value: number) => boolean,
    shown: (value: number) => string,
    peer: number | undefined,
  ): Verdict => {
    const passed = value === undefined || Number.isNaN(value) ? undefined : pass(value);
    const result = passed === undefined ? "NOT RUN" : passed ? "PASS" : "FAIL";
    const measured = value === undefined ? "" : `: ${shown(value)}`;
    const peerText = peer === undefined || Number.isNaN(peer) ? "" : ` (portkey ${shown(peer)})`;
    return {
      id,
      target,
      value,
      pass: passed,
      line: `${id} ${target}${measured}${peerText}  ${result}`,
    };
  };
  const s3 = find("S3", "image-hub");
  const signedMs = (value: number) => `${value >= 0 ? "+" : ""}${value.toFixed(2)} ms`;
  return [
    verdict(
      "S1",
      "image-hub adds ≤ 0.5 ms at p50 over the floor (1 connection; S1c1)",
      find("S1c1", "image-hub")?.addedP50Ms,
      (value) => value <= 0.5,
      signedMs,
      find("S1c1", "portkey")?.addedP50Ms,
    ),
    verdict(
      "S2",
      "image-hub ≥ 0.6× the floor's throughput",
      find("S2", "image-hub")?.throughputRatio,
      (value) => value >= 0.6,
      (value) => `${value.toFixed(2)}×`,
      find("S2", "portkey")?.throughputRatio,
    ),
    verdict(
      "S3",
      `image-hub peak RSS < 300 MB at concurrency ${s3?.connections ?? 32}`,
      s3?.memory ? s3.memory.peakBytes / MB : undefined,
      (value) => value < 300,
      (value) => `${value.toFixed(0)} MB`,
      (() => {
        const peak = find("S3", "portkey")?.memory?.peakBytes;
        return peak === undefined ? undefined : peak / MB;
      })(),
    ),
  ];
}

function table(rows: Row[]): string {
  const header = [
    "scenario",
    "target",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "+p50 ms",
    "× req/s",
    "vs",
    "CPU ms/req",
    "non-2xx",
    "peak RSS MB",
    "reply",
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
    row.addedP50Ms === undefined
      ? ""
      : `${row.addedP50Ms >= 0 ? "+" : ""}${row.addedP50Ms.toFixed(2)}`,
    row.throughputRatio === undefined ? "" : row.throughputRatio.toFixed(2),
    row.comparedWith ?? "",
    row.cpuMsPerRequest === undefined ? "" : row.cpuMsPerRequest.toFixed(2),
    String(row.non2xx + row.errors + row.timeouts),
    row.memory
      ? `${megabytes(row.memory.peakBytes)} (from ${megabytes(row.memory.startBytes)})`
      : "",
    bytes(row.replyBytes),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] ?? "").length)),
  );
  const numeric = new Set([2, 3, 4, 5, 6, 7, 9, 10]);
  const format = (cells: string[]) =>
    cells
      .map((cell, column) =>
        numeric.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join("  ")
      .trimEnd();
  return [
    format(header),
    format(widths.map((width) => "-".repeat(width))),
    ...lines.map(format),
  ].join("\n");
}

/** Lines at pino's error level or above, counted by message. */
function loggedErrors(file: string): { count: number; summary: string } {
  const messages = new Map<string, number>();
  let count = 0;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const entry = JSON.parse(line) as {
        level?: number;
        msg?: string;
        err?: { message?: string };
      };
      if ((entry.level ?? 0) < 50) continue;
      count++;
      const key = `${entry.msg ?? ""}: ${entry.err?.message ?? ""}`;
      messages.set(key, (messages.get(key) ?? 0) + 1);
    } catch {}
  }
  const summary = [...messages].map(([message, times]) => `${times}× ${message}`).join("; ");
  return { count, summary };
}

function fixed(value: number, digits: number): string {
  return Number.isNaN(value) ? "" : value.toFixed(digits);
}

function megabytes(value: number | undefined): string {
  return value === undefined ? "?" : (value / MB).toFixed(0);
}

function bytes(value: number): string {
  if (value === 0) return "";
  return value >= MB ? `${(value / MB).toFixed(2)} MB` : `${(value / 1024).toFixed(1)} KB`;
}

function machine() {
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpu;
  } catch {
    cpu = os.cpus()[0]?.model ?? cpu;
  }
  return {
    cpu,
    cores: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

function machineLine(): string {
  const { cpu, cores, memoryBytes, os: system, node } = machine();
  return `machine: ${cpu}, ${cores} cores, ${(memoryBytes / 1024 ** 3).toFixed(0)} GB, ${system}, Node ${node}`;
}

function commandLine(): string {
  const args = process.argv.slice(2).join(" ");
  if (process.env.npm_lifecycle_event === "bench")
    return `npm run bench${args ? ` -- ${args}` : ""}`;
  return `node ${path.relative(process.cwd(), process.argv[1] ?? "bench/run.ts")}${args ? ` ${args}` : ""}`;
}

function gitState(): { commit: string; dirty: boolean } | undefined {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8", stdio: "pipe" }).trim();
    return {
      commit: git("rev-parse", "HEAD"),
      dirty: git("status", "--porcelain", "src").length > 0,
    };
  } catch {
    return undefined;
  }
}

let stopping = false;
async function shutDown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.race([stopAll(), sleep(10_000)]);
  process.exit(code);
}

process.on("exit", killAllNow);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping the targets\n`);
    void shutDown(130);
  });
}

try {
  await main();
  await shutDown(process.exitCode === undefined ? 0 : Number(process.exitCode));
} catch (error) {
  process.stderr.write(
    `\nbench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  await shutDown(1);
}
