/**
 * Where and how a run was made, for the report: the machine, the command, the commit, and the
 * error lines the targets logged meanwhile.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export function machine() {
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

export function machineLine(): string {
  const { cpu, cores, memoryBytes, os: system, node } = machine();
  return `machine: ${cpu}, ${cores} cores, ${(memoryBytes / 1024 ** 3).toFixed(0)} GB, ${system}, Node ${node}`;
}

export function commandLine(): string {
  const args = process.argv.slice(2).join(" ");
  if (process.env.npm_lifecycle_event === "bench")
    return `npm run bench${args ? ` -- ${args}` : ""}`;
  return `node ${path.relative(process.cwd(), process.argv[1] ?? "bench/run.ts")}${args ? ` ${args}` : ""}`;
}

/** Read at the start: src/ may change while the bench runs. */
export function gitState(root: string): { commit: string; dirty: boolean } | undefined {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: "pipe" }).trim();
    return {
      commit: git("rev-parse", "HEAD"),
      dirty: git("status", "--porcelain", "src", "bench").length > 0,
    };
  } catch {
    return undefined;
  }
}

/** Lines at pino's error level or above, counted by message. */
export function loggedErrors(file: string): { count: number; summary: string } {
  const messages = new Map<string, number>();
  let count = 0;
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {}
  for (const line of text.split("\n")) {
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
