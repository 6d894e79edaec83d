/**
 * `npm run bench`: image-hub beside the fastest a Node.js gateway can be (bench/floor.ts, in its
 * streaming, buffered and buffered-with-a-SQLite-row modes), the bare upstream and a peer gateway
 * (Portkey), all driven by autocannon in one run and interleaved in short rounds so that drift of
 * the machine touches every target alike. Prints the table and the verdicts of issue 17's targets
 * (bench/verdicts.ts) and writes both to bench/results/latest.json; the targets' logs go to
 * bench/results/*.log. The scenarios are in bench/scenarios.ts.
 *
 * Options: `--quick` (one short round, a minute or two), `--scenario S2` (or `S0,S1`; `S0` also
 * selects S0c1, `S2` also S2c64).
 *
 * @example
 * npm run bench
 * node bench/run.ts --quick --scenario S2
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { commandLine, gitState, loggedErrors, machine, machineLine } from "./environment.ts";
import { load } from "./load.ts";
import { measureScenario, type Row, type Timing } from "./measure.ts";
import { readMemory } from "./proc.ts";
import { compare, LEGEND, MB, megabytes, table } from "./report.ts";
import {
  allScenarios,
  endpointOf,
  FLOOR_MODES,
  isFloor,
  onlyTargets,
  pidOf,
  type Running,
  selectScenarios,
  type TargetName,
  targetsOf,
} from "./scenarios.ts";
import {
  killAllNow,
  nodeFlagsOfStart,
  REPO_ROOT,
  startFloor,
  startHub,
  startPortkey,
  startUpstream,
  stopAll,
  unexpectedExits,
} from "./targets.ts";
import { noisyPng } from "./upstream.ts";
import { judge } from "./verdicts.ts";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    scenario: { type: "string" },
    /** Only these targets (bare is always kept: every ratio needs it), e.g. floor-buffered,image-hub. */
    targets: { type: "string" },
  },
});

const timing: Timing = flags.quick
  ? { warmupSeconds: 1, rounds: 1, maxRoundSeconds: 3 }
  : { warmupSeconds: 2, rounds: 3, maxRoundSeconds: undefined };
/** Requests each target serves at one connection before its idle RSS is read. */
const SETTLE_REQUESTS = 500;

const RESULTS_DIR = path.join(REPO_ROOT, "bench/results");
const logFile = (name: string) => path.join(RESULTS_DIR, `${name}.log`);

async function main(): Promise<void> {
  const started = performance.now();
  const git = gitState(REPO_ROOT);
  const scenarios = onlyTargets(selectScenarios(allScenarios(), flags.scenario), flags.targets);
  const edit = scenarios.find((scenario) => "image" in scenario.body);
  if (edit) edit.body.image = (await noisyPng(1200, 1200, 32)).toString("base64");
  const needed = targetsOf(scenarios);
  const warnings: string[] = [];
  mkdirSync(RESULTS_DIR, { recursive: true });
  // bare is the upstream, which has its own log
  const logged = ["upstream", ...needed.filter((target) => target !== "bare")];
  for (const name of logged) writeFileSync(logFile(name), "");

  const hubCommand = ["node", ...nodeFlagsOfStart(), "src/main.ts"].join(" ");
  process.stdout.write(`${machineLine()}\ncommand: ${commandLine()}\n`);
  if (needed.includes("image-hub")) process.stdout.write(`image-hub runs as: ${hubCommand}\n`);
  const running = await startTargets(needed);
  const startRss = rssOf(needed, running);
  const idleRss = await settle(needed, running);
  const images = running.upstream.imageBytes;
  const editBytes = edit ? String(edit.body.image).length : 0;
  const memory = needed.map(
    (target) => `${target} ${megabytes(idleRss[target])} (${megabytes(startRss[target])} at start)`,
  );
  process.stdout.write(
    `upstream PNGs: tiny ${images.tiny} B, large ${(images.large / MB).toFixed(2)} MB` +
      (edit ? `; edit input ${(editBytes / MB).toFixed(2)} MB of base64` : "") +
      `\nidle RSS after ${SETTLE_REQUESTS} tiny requests, MB: ${memory.join(", ")}` +
      `\n${timing.rounds} round(s) per target after ${timing.warmupSeconds} s of warm-up\n`,
  );

  const rows: Row[] = [];
  for (const scenario of scenarios) {
    const scenarioStarted = performance.now();
    rows.push(...(await measureScenario(scenario, running, { timing, warnings, idleRss })));
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
  const verdicts = judge(rows);
  const lifetimePeak = Object.fromEntries(
    needed.map((target) => {
      const pid = pidOf(target, running);
      return [target, pid === undefined ? undefined : readMemory(pid)?.hwmBytes];
    }),
  );
  const totalSeconds = (performance.now() - started) / 1000;

  process.stdout.write(`\n${table(rows)}\n\n${LEGEND}\n`);
  for (const name of logged) {
    const errors = loggedErrors(logFile(name));
    if (errors.count > 0) {
      process.stdout.write(
        `${name} logged ${errors.count} error lines (${errors.summary}); see ${path.relative(process.cwd(), logFile(name))}\n`,
      );
    }
  }
  process.stdout.write(
    `\nissue 17's targets:\n${verdicts.map((verdict) => verdict.line).join("\n")}\n`,
  );
  process.stdout.write(
    `\nlifetime peak RSS (VmHWM): ${needed.map((target) => `${target} ${megabytes(lifetimePeak[target])} MB`).join(", ")}\n`,
  );
  for (const warning of warnings) process.stdout.write(`\n!!! WARNING: ${warning}\n`);
  process.stdout.write(`\ntotal ${totalSeconds.toFixed(1)} s\n`);

  const report = {
    version: 2,
    date: new Date().toISOString(),
    command: commandLine(),
    machine: machine(),
    git,
    timing,
    hubCommand,
    upstream: { imageBytes: running.upstream.imageBytes },
    scenarios: scenarios.map((scenario) => ({
      id: scenario.id,
      title: scenario.title,
      connections: scenario.connections,
      request: { ...scenario.body, image: scenario.body.image ? "(base64 PNG)" : undefined },
      requestBytes: Buffer.byteLength(JSON.stringify(scenario.body)),
      results: rows.filter((row) => row.scenario === scenario.id),
    })),
    verdicts: verdicts.map(({ line: _line, ...verdict }) => verdict),
    idleRssBytes: idleRss,
    startRssBytes: startRss,
    lifetimePeakRssBytes: lifetimePeak,
    warnings,
    totalSeconds,
  };
  const file = path.join(RESULTS_DIR, "latest.json");
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
  if (warnings.length > 0) process.exitCode = 1;
}

async function startTargets(needed: TargetName[]): Promise<Running> {
  const upstream = await startUpstream({ logFile: logFile("upstream") });
  const floors: Running["floors"] = {};
  for (const target of needed.filter(isFloor)) {
    const mode = FLOOR_MODES[target];
    floors[target] = await startFloor({ upstream, mode, name: target, logFile: logFile(target) });
  }
  const hub = needed.includes("image-hub")
    ? await startHub({ upstream, logFile: logFile("image-hub") })
    : undefined;
  const peer = needed.includes("portkey")
    ? await startPortkey({ logFile: logFile("portkey") })
    : undefined;
  return { upstream, floors, hub, peer };
}

/**
 * Idle RSS as a deployed gateway has it: after its first requests have loaded the code they run
 * (lazy modules, JIT, connection pools), before any load. S0's tiny request, which every target
 * serves.
 */
async function settle(
  needed: TargetName[],
  running: Running,
): Promise<Partial<Record<TargetName, number>>> {
  const tiny = allScenarios().find((scenario) => scenario.id === "S0")?.body;
  const body = JSON.stringify(tiny);
  for (const target of needed) {
    await load(endpointOf(target, running), body, { connections: 1, amount: SETTLE_REQUESTS });
  }
  await sleep(1_000); // let the last replies' garbage go before reading
  return rssOf(needed, running);
}

function rssOf(needed: TargetName[], running: Running): Partial<Record<TargetName, number>> {
  return Object.fromEntries(
    needed.map((target) => {
      const pid = pidOf(target, running);
      return [target, pid === undefined ? undefined : readMemory(pid)?.rssBytes];
    }),
  );
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
