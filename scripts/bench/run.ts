/**
 * npm run bench: runs the benchmark parts against the bench cluster that scripts/bench/bench.sh
 * prepared, prints one table and writes it to bench/RESULTS.md.
 */
import { cpus, totalmem } from "node:os";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import postgres from "postgres";
import { z } from "zod";
import { callbackPath } from "./parts/callback-path.ts";
import { dispatchBurst } from "./parts/dispatch-burst.ts";
import { engineOverhead } from "./parts/engine-overhead.ts";
import { memory } from "./parts/memory.ts";
import { ruleCost } from "./parts/rule-cost.ts";
import { startGeneration } from "./parts/start-generation.ts";
import { tickCost } from "./parts/tick-cost.ts";
import type { Part } from "./parts/types.ts";
import { type Machine, renderMarkdown, renderText, type Report } from "./results.ts";

export const PARTS: Part[] = [startGeneration, tickCost, dispatchBurst, engineOverhead, callbackPath, memory, ruleCost];
const defaultOut = fileURLToPath(new URL("../../bench/RESULTS.md", import.meta.url));

export const usage = `usage: npm run bench -- [--quick] [--only PART[,PART...]] [--out FILE]

Starts a throwaway Postgres cluster (port KILN_BENCH_PORT, default 54351), prepares it like the
test cluster, runs the benchmark parts, prints one table and writes it to bench/RESULTS.md.

  --quick         short runs: under two minutes; 1 and 8 clients, the cost-growth part stops at 100k jobs
  --only PARTS    run only these parts (${PARTS.map((p) => p.id).join(", ")});
                  ${PARTS.filter((p) => p.optIn).map((p) => p.id).join(", ")} runs only when named here
  --out FILE      write the results here instead of bench/RESULTS.md
  --check-args    validate the arguments and exit (used by the wrapper before it starts a cluster)
  -h, --help      this text

Parts: ${PARTS.map((p) => `${p.id} (${p.title})`).join("; ")}.`;

const Options = z.object({
  quick: z.boolean(),
  only: z.array(z.enum(PARTS.map((p) => p.id) as [string, ...string[]])).optional(),
  out: z.string().min(1),
  checkArgs: z.boolean(),
});
export type Options = z.infer<typeof Options>;

export function parseArgs(argv: string[]): Options | "help" {
  const raw: Record<string, unknown> = { quick: false, out: defaultOut, checkArgs: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "-h" || flag === "--help") return "help";
    else if (flag === "--quick") raw.quick = true;
    else if (flag === "--check-args") raw.checkArgs = true;
    else if (flag === "--only") raw.only = (argv[++i] ?? "").split(",").filter(Boolean);
    else if (flag === "--out") raw.out = argv[++i];
    else throw new Error(`unknown argument: ${flag}`);
  }
  const parsed = Options.safeParse(raw);
  if (!parsed.success) throw new Error(parsed.error.issues.map((e) => `${e.path.join(".")}: ${e.message}`).join("; "));
  return parsed.data;
}

/** The parts to run, in PARTS' order: the ones named with --only, or every part but the opt-in ones. */
export function selectedParts(only?: string[]): Part[] {
  return PARTS.filter((p) => (only ? only.includes(p.id) : !p.optIn));
}

async function machine(databaseUrl: string): Promise<Machine> {
  const sql = postgres(databaseUrl, { max: 1 });
  try {
    const [{ version, durable }] = await sql`
      select split_part(version(), ' on ', 1) as version,
             current_setting('fsync')::boolean and current_setting('synchronous_commit') <> 'off'
               and current_setting('full_page_writes')::boolean as durable`;
    // The wrapper knows which pg_net the cluster loads (scripts/lib/local-stack.sh, has_real_pg_net).
    const pgNet = process.env.KILN_PG_NET === "real" ? "real" : "look-alike";
    return { cores: cpus().length, memoryGiB: totalmem() / 2 ** 30, postgres: String(version), pgNet, durableCommits: Boolean(durable) };
  } finally {
    await sql.end();
  }
}

async function main(): Promise<number> {
  let options: Options | "help";
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  if (options === "help") {
    console.log(usage);
    return 0;
  }
  if (options.checkArgs) return 0;
  const env = z.object({ DATABASE_URL: z.string().url(), ADMIN_DATABASE_URL: z.string().url() }).safeParse(process.env);
  if (!env.success) {
    console.error("DATABASE_URL and ADMIN_DATABASE_URL must name the bench cluster: run this through npm run bench");
    return 2;
  }
  // The wrapper's start time, so the stated duration includes making the cluster.
  const startedMs = Number(process.env.KILN_BENCH_STARTED_MS) || Date.now();
  const started = new Date(startedMs);
  const context = {
    databaseUrl: env.data.DATABASE_URL,
    adminUrl: env.data.ADMIN_DATABASE_URL,
    quick: options.quick,
    log: (message: string) => console.error(`[bench] ${message}`),
  };
  const report: Report = {
    mode: options.quick ? "quick" : "full",
    startedAt: started.toISOString().replace(/\.\d+Z$/, "Z"),
    durationSeconds: 0,
    machine: await machine(context.databaseUrl),
    rows: [],
    sections: [],
  };
  const summary: string[] = [];
  for (const part of selectedParts(options.only)) {
    const partStarted = Date.now();
    const result = await part.run(context);
    context.log(`${part.id}: ${((Date.now() - partStarted) / 1000).toFixed(0)} s`);
    report.rows.push(...result.rows);
    report.sections.push(...result.sections);
    summary.push(...result.summary);
  }
  report.durationSeconds = (Date.now() - startedMs) / 1000;
  console.log(renderText(report));
  console.log("");
  for (const line of summary) console.log(line);
  await mkdir(dirname(options.out), { recursive: true });
  await writeFile(options.out, renderMarkdown(report));
  console.log(`written to ${options.out}`);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().then((code) => process.exit(code), (error: Error) => {
    console.error(`benchmark failed: ${error.stack ?? error.message}`);
    process.exit(1);
  });
}
