/**
 * What Linux's /proc tells about a target's process: its CPU time and its resident memory. Every
 * target is its own process, so these figures are the target's own, whatever else shares the
 * machine (the load generator, the upstream, the other targets).
 *
 * @example
 * const before = readCpuMs(pid); // … load …
 * const cpuMs = (readCpuMs(pid) ?? 0) - (before ?? 0);
 * const memory = sampleMemory(pid); // … load …
 * const { peakBytes } = memory.stop();
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export interface Memory {
  /** Resident set size now (VmRSS), in bytes. */
  rssBytes: number;
  /** The process's high-water mark of resident memory since it started (VmHWM), in bytes. */
  hwmBytes: number;
}

/** VmRSS and VmHWM of a Linux process; undefined where /proc is not there. */
export function readMemory(pid: number): Memory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kilobytes = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rssBytes: kilobytes("VmRSS"), hwmBytes: kilobytes("VmHWM") };
}

export interface MemorySampler {
  stop(): { startBytes: number; peakBytes: number; samples: number };
}

/**
 * Samples VmRSS every `intervalMs` and keeps the highest. VmHWM alone cannot give a peak per
 * scenario: it is the high-water mark over the whole life of the process.
 */
export function sampleMemory(pid: number, intervalMs = 100): MemorySampler {
  const startBytes = readMemory(pid)?.rssBytes ?? 0;
  let peakBytes = startBytes;
  let samples = 1;
  const timer = setInterval(() => {
    const memory = readMemory(pid);
    if (memory === undefined) return;
    samples++;
    if (memory.rssBytes > peakBytes) peakBytes = memory.rssBytes;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const last = readMemory(pid)?.rssBytes ?? 0;
      return { startBytes, peakBytes: Math.max(peakBytes, last), samples: samples + 1 };
    },
  };
}

let clockTicks: number | undefined;

/** CPU time (user + system, all threads) a Linux process has used so far, in milliseconds. */
export function readCpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name in parentheses may hold spaces; the fields after it are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}
