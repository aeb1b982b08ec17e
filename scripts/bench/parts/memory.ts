/**
 * Part 6: peak RSS of the callback function (Deno) and the dev workers (pg_net look-alike worker,
 * tick driver), sampled from /proc while parts 2 and 5 run. Each process's baseline is its RSS
 * when idle, just before the load of that part starts.
 */
import { readdir, readFile } from "node:fs/promises";
import type { Row } from "../results.ts";
import type { Part } from "./types.ts";

export interface MemoryRecord {
  during: string;
  process: string;
  idleKiB: number;
  peakSampledKiB: number;
  /** VmHWM at the end: the kernel's own peak since the process started. */
  hwmKiB: number;
  samples: number;
}

/** Filled by the parts that run the stack (2 and 5); read by part 6. */
export const memoryRecords: MemoryRecord[] = [];

async function status(pid: number): Promise<{ rss: number; hwm: number } | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
    return { rss: field("VmRSS"), hwm: field("VmHWM") };
  } catch {
    return null;
  }
}

/** Descendants of `root` whose command line contains `needle` (the Deno function under the gateway). */
export async function findDescendant(root: number, needle: string): Promise<number | null> {
  const parents = new Map<number, number>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  const isDescendant = (pid: number): boolean => {
    for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p)) if (p === root) return true;
    return false;
  };
  for (const pid of parents.keys()) {
    if (!isDescendant(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(needle)) return pid;
  }
  return null;
}

/** Samples VmRSS of the named processes every `everyMs` until stopped; then records the peaks. */
export async function sampleMemory(during: string, pids: Record<string, number | null>, everyMs = 100) {
  const live = Object.entries(pids).filter((e): e is [string, number] => e[1] !== null);
  const idle = new Map<string, number>();
  const peak = new Map<string, number>();
  let samples = 0;
  for (const [name, pid] of live) idle.set(name, (await status(pid))?.rss ?? NaN);
  const take = async () => {
    samples++;
    for (const [name, pid] of live) {
      const s = await status(pid);
      if (s) peak.set(name, Math.max(peak.get(name) ?? 0, s.rss));
    }
  };
  const timer = setInterval(() => void take(), everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await take();
      for (const [name, pid] of live) {
        memoryRecords.push({
          during,
          process: name,
          idleKiB: idle.get(name)!,
          peakSampledKiB: peak.get(name) ?? NaN,
          hwmKiB: (await status(pid))?.hwm ?? NaN,
          samples,
        });
      }
    },
  };
}

const MiB = (kib: number) => kib / 1024;

export const memory: Part = {
  id: "memory",
  title: "peak RSS of the function and the dev workers during parts 2 and 5",
  run() {
    const rows: Row[] = memoryRecords.map((m) => ({
      part: "6 memory",
      case: m.during,
      subject: `${m.process} peak RSS`,
      value: MiB(m.peakSampledKiB),
      unit: "MiB",
      baseline: { name: "idle before the load", value: MiB(m.idleKiB) },
      note: `VmRSS sampled every 100 ms (${m.samples} samples); VmHWM at the end ${MiB(m.hwmKiB).toFixed(1)} MiB`,
    }));
    if (!rows.length) rows.push({ part: "6 memory", case: "", subject: "peak RSS", note: "run with parts dispatch-burst and callback-path" });
    return Promise.resolve({ rows, sections: [], summary: [] });
  },
};
