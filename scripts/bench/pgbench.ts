/** Runs pgbench with a custom script and reads throughput, latency percentiles and errors. */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { percentile } from "./stats.ts";

const run = promisify(execFile);

export interface PgbenchRun {
  tps: number;
  transactions: number;
  failed: number;
  abortedClients: number;
  p50Ms: number;
  p99Ms: number;
}

export interface PgbenchOptions {
  databaseUrl: string;
  script: string;
  clients: number;
  seconds: number;
  variables: Record<string, string | number>;
}

/** pgbench's summary: tps, processed and failed transactions, aborted clients. */
export function parseSummary(output: string): Omit<PgbenchRun, "p50Ms" | "p99Ms"> {
  const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? Number.NaN);
  return {
    tps: num(/^tps = ([\d.]+)/m),
    transactions: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/) || 0,
    abortedClients: (output.match(/client \d+ script \d+ aborted/g) ?? []).length,
  };
}

export async function pgbench(options: PgbenchOptions): Promise<PgbenchRun> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-pgbench-"));
  try {
    const args = [
      "--no-vacuum", "--protocol=prepared", `--client=${options.clients}`, `--jobs=${Math.min(options.clients, 2)}`,
      `--time=${options.seconds}`, `--file=${options.script}`, "--log", `--log-prefix=${join(dir, "tx")}`,
      ...Object.entries(options.variables).map(([k, v]) => `--define=${k}=${v}`),
      options.databaseUrl,
    ];
    // pgbench exits 2 when a client aborted; the summary still says what happened.
    const { stdout, stderr } = await run("pgbench", args, { maxBuffer: 64 * 1024 * 1024 }).catch(
      (error: { stdout?: string; stderr?: string }) => ({ stdout: error.stdout ?? "", stderr: error.stderr ?? "" }),
    );
    const summary = parseSummary(`${stdout}\n${stderr}`);
    if (Number.isNaN(summary.tps)) throw new Error(`pgbench gave no result:\n${stderr.slice(-2000)}`);
    // Per-transaction log: client, transaction number, latency in microseconds (or "failed"), ...
    const latencies: number[] = [];
    for (const file of await readdir(dir)) {
      for (const line of (await readFile(join(dir, file), "utf8")).split("\n")) {
        const micros = Number(line.split(" ")[2]);
        if (Number.isFinite(micros)) latencies.push(micros / 1000);
      }
    }
    latencies.sort((a, b) => a - b);
    return { ...summary, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
