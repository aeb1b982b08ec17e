/**
 * Part 4: cost growth. One call of every registered tick (private.ticks), timed with 10k, 100k
 * and 1M finished jobs (quick: 10k and 100k) beside the same 1k active ones, each call inside a
 * transaction that is rolled back so every size sees the same work to do; the ratio to the 10k
 * time should stay near 1. The plans of the largest size come from auto_explain (nested
 * statements, actual rows and buffers). Last, one start with a free create token beside 0, 10k and
 * 100k jobs backing off (quick: 0 and 10k), then beside as many more due jobs of a lower plan: the
 * start's queue check must read only due jobs of its own plan rank or higher; beside the jobs
 * backing off, also the dispatch tick with none due (a KIE outage). And at each size, the
 * WAL a start writes right after a checkpoint: a key that lands on random index pages makes each
 * start write more whole pages the bigger the tables grow.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { pgbench } from "../pgbench.ts";
import { median } from "../stats.ts";
import type { Row } from "../results.ts";
import { psqlFile } from "./psql.ts";
import type { Context, Part, PartResult } from "./types.ts";

const PLANS_PER_TICK = 3;
const sqlDir = fileURLToPath(new URL("../sql/", import.meta.url));
const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);

interface Tick {
  name: string;
  fn: string;
}

export const tickCost: Part = {
  id: "tick-cost",
  title: "tick cost growth with finished jobs",
  async run(context: Context): Promise<PartResult> {
    const sizes = context.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
    const repeats = context.quick ? 5 : 9;
    const admin = postgres(context.adminUrl, { max: 1, onnotice: () => {} });
    const owner = postgres(context.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const [{ ready }] = await admin`select to_regnamespace('bench') is not null as ready`;
      if (!ready) await psqlFile(context.adminUrl, `${sqlDir}start-generation-fixtures.sql`, { users: 5000 });
      const [{ exists }] = await admin`select to_regprocedure('bench.add_active(timestamptz)') is not null as exists`;
      if (!exists) await psqlFile(context.adminUrl, `${sqlDir}tick-cost-fixtures.sql`);
      const ticks = (await admin`select name, command from private.ticks order by name`).map((t) => ({
        name: String(t.name),
        fn: /^select (private\.[a-z_0-9]+)\(\)$/.exec(String(t.command))?.[1] ?? "",
      })) as Tick[];
      if (ticks.some((t) => !t.fn)) throw new Error("a tick command is not `select private.<function>()`");

      // One instant for all sizes: the active jobs are due (or not) alike every time.
      const [{ t }] = await admin`select date_trunc('second', now()) as t`;
      context.log("tick cost: reset, 1k active jobs");
      await admin`call bench.tick_reset(${t})`;
      await admin`call bench.add_active(${t})`;

      const times = new Map<string, number>(); // `${tick}/${size}` -> median ms
      const wal = new Map<number, WalPerStart>();
      let finished = 0;
      let plans = "";
      for (const size of sizes) {
        const t0 = performance.now();
        await admin`call bench.add_finished(${size - finished}, ${t})`;
        finished = size;
        await admin.unsafe("vacuum analyze public.generation_jobs, private.job_pipeline, private.requests, public.credit_ledger");
        context.log(`tick cost: ${label(size)} finished jobs written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
        for (const tick of ticks) {
          const samples: number[] = [];
          for (let i = 0; i < repeats; i++) {
            const reserved = await owner.reserve();
            try {
              await reserved`begin`;
              const s0 = performance.now();
              await reserved.unsafe(`select ${tick.fn}($1)`, [t]);
              samples.push(performance.now() - s0);
            } finally {
              await reserved`rollback`;
              reserved.release();
            }
          }
          times.set(`${tick.name}/${size}`, median(samples));
        }
        if (size === sizes[sizes.length - 1]) plans = await explainAll(context.adminUrl, ticks, t);
        wal.set(size, await walPerStart(context, admin));
        context.log(`tick cost: ${label(size)} finished jobs, ${Math.round(wal.get(size)?.bytes ?? 0)} B of WAL per start`);
      }

      const backlog = await startBesideBacklog(context, admin, owner, t, repeats);

      const rows: Row[] = [];
      for (const tick of ticks) {
        const base = times.get(`${tick.name}/${sizes[0]}`) ?? Number.NaN;
        for (const size of sizes) {
          rows.push({
            part: "4 cost growth", case: `${label(size)} finished + 1k active`, subject: tick.fn, unit: "ms",
            value: times.get(`${tick.name}/${size}`),
            baseline: size === sizes[0] ? undefined : { name: `${label(sizes[0])} finished`, value: base },
            note: size === sizes[sizes.length - 1] && size !== sizes[0] ? `ratio ${label(size)} / ${label(sizes[0])}` : undefined,
          });
        }
      }
      const walBase = wal.get(sizes[0]);
      for (const size of sizes) {
        const w = wal.get(size);
        if (!w || !walBase) continue;
        const last = size === sizes[sizes.length - 1] && size !== sizes[0];
        rows.push({
          part: "4 cost growth", case: `${label(size)} finished + 1k active`, subject: "start_generation, WAL per start after a checkpoint",
          unit: "B", value: w.bytes,
          baseline: size === sizes[0] ? undefined : { name: `${label(sizes[0])} finished`, value: walBase.bytes },
          note: `${last ? `ratio ${label(size)} / ${label(sizes[0])}; ` : ""}full-page images ${Math.round(w.fpiBytes)} B of it; ` +
            `${w.starts} starts, 4 clients, each rolled back`,
        });
      }
      const [none] = backlog;
      for (const { size, idleTickMs, lastOfSeries } of backlog) {
        if (idleTickMs === undefined) continue;
        rows.push({
          part: "4 cost growth", case: `${size ? label(size) : "no"} jobs backing off, none due`, subject: "private.dispatch_tick",
          unit: "ms", value: idleTickMs,
          baseline: size ? { name: "none backing off", value: none.idleTickMs ?? Number.NaN } : undefined,
          note: `${size && lastOfSeries ? `ratio ${label(size)} / none; ` : ""}one session, calls 6 to ${5 + repeats} (a generic plan may be used)`,
        });
      }
      for (const { size, ms, lowerRankDue, lastOfSeries } of backlog) {
        rows.push({
          part: "4 cost growth",
          case: lowerRankDue
            ? `${label(size)} due jobs of a lower plan waiting, beside the jobs backing off`
            : `${size ? label(size) : "no"} jobs backing off`,
          subject: "start_generation, create token free",
          unit: "ms", value: ms,
          baseline: size ? { name: "none backing off", value: none.ms } : undefined,
          note: size && lastOfSeries ? `ratio ${label(size)} / none` : undefined,
        });
      }
      const sections = [{
        title: `Tick plans with ${label(sizes[sizes.length - 1])} finished jobs`,
        body: [
          `Each tick's median of ${repeats} calls, each in a transaction rolled back afterwards (same work at every size): ` +
            "100 waiting jobs (10 past their deadline), 100 creating (50 responses to reconcile), 800 generating " +
            "(about half due for a poll, 10 past their deadline). Finished jobs: 9 in 10 completed, 1 in 10 failed " +
            "and refunded, each with its pipeline row, ledger entries and two resolved requests; 4 in 5 from the last 7 days, " +
            "1 in 5 owned by users on a 365-day retention plan and 30 to 360 days old (kept, past the shortest retention). " +
            "Plans from auto_explain (nested statements, actual rows, buffers), one call per tick:",
          "",
          "<details><summary>plans</summary>",
          "",
          "```",
          plans.trim(),
          "```",
          "",
          "</details>",
        ].join("\n"),
      }];
      return { rows, sections, summary: [] };
    } finally {
      await admin.end();
      await owner.end();
    }
  },
};

interface WalPerStart {
  bytes: number;
  /** Bytes of full-page images per start. */
  fpiBytes: number;
  starts: number;
}

/**
 * WAL per start in the first seconds after a checkpoint, when the first change to each page writes
 * the whole page (full_page_writes). Part 1's pgbench script with ROLLBACK for its COMMIT, so every
 * size sees the same jobs: a rolled-back start still writes its records and page images (only the
 * commit record is missing). Read from the WAL itself between the two positions (pg_walinspect),
 * so whatever else wrote meanwhile (autovacuum, the checkpointer) counts too.
 */
async function walPerStart(context: Context, admin: postgres.Sql): Promise<WalPerStart> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-bench-wal-"));
  try {
    const script = join(dir, "start-generation-rolled-back.pgbench");
    const text = await readFile(`${sqlDir}start-generation.pgbench`, "utf8");
    if (!/^COMMIT;$/m.test(text)) throw new Error("start-generation.pgbench: no COMMIT line to replace");
    await writeFile(script, text.replace(/^COMMIT;$/m, "ROLLBACK;"));
    await admin`checkpoint`;
    const [{ start }] = await admin`select pg_current_wal_lsn()::text as start`;
    const run = await pgbench({ databaseUrl: context.databaseUrl, script, clients: 4, seconds: context.quick ? 2 : 8, variables: { users: 5000 } });
    if (run.failed + run.abortedClients > 0 || run.transactions === 0) {
      throw new Error(`WAL per start: ${run.transactions} starts, ${run.failed} failed, ${run.abortedClients} clients aborted`);
    }
    // Rolled-back work is flushed by the WAL writer, not by a commit; pg_walinspect reads only
    // flushed WAL, so wait for the flush to pass the end.
    const [{ end }] = await admin`select pg_current_wal_insert_lsn()::text as end`;
    for (let i = 0; i < 100 && !(await admin`select pg_current_wal_flush_lsn() >= ${end}::pg_lsn as ok`)[0].ok; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const [wal] = await admin`
      select pg_wal_lsn_diff(${end}::pg_lsn, ${start}::pg_lsn)::float8 as bytes, sum(s.fpi_size)::float8 as fpi
        from extensions.pg_get_wal_stats(${start}::pg_lsn, ${end}::pg_lsn) s`;
    return { bytes: Number(wal.bytes) / run.transactions, fpiBytes: Number(wal.fpi) / run.transactions, starts: run.transactions };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * One start with a free create token, the path that checks the queue before sending, beside a
 * growing backlog of jobs backing off (KIE down), then beside a growing number of due jobs of a
 * lower plan (a burst of free users' starts). Each start runs as the app's user in a transaction
 * rolled back afterwards; it must have been sent at once, or the timed path is not this one.
 */
async function startBesideBacklog(context: Context, admin: postgres.Sql, owner: postgres.Sql, t: Date, repeats: number) {
  const sizes = context.quick ? [0, 10_000] : [0, 10_000, 100_000];
  const claims = JSON.stringify({ sub: (await admin`select bench.user_id(5000) as id`)[0].id, role: "authenticated" });
  /** The median of `repeats` starts, each rolled back; each must have been sent at once. */
  async function startMs(): Promise<number> {
    const samples: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const reserved = await owner.reserve();
      try {
        await reserved`begin`;
        await reserved`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
        const s0 = performance.now();
        const [{ id }] = await reserved`select (public.start_generation(prompt => 'a lighthouse at dusk')).id`;
        samples.push(performance.now() - s0);
        await reserved`reset role`;
        const [{ stage }] = await reserved`select stage from private.job_pipeline where job_id = ${id}`;
        if (stage !== "creating") throw new Error(`start beside a backlog: the job is ${stage}, not sent at once`);
      } finally {
        await reserved`rollback`;
        reserved.release();
      }
    }
    return median(samples);
  }
  /**
   * The dispatch tick with nothing due, as the tick driver runs it: one session, calls 6 and on
   * (PL/pgSQL may switch to a generic plan after five). The fixture's own waiting jobs are put off
   * in the transaction, rolled back afterwards.
   */
  async function idleDispatchTickMs(): Promise<number> {
    const reserved = await owner.reserve();
    try {
      await reserved`begin`;
      await reserved`update private.job_pipeline set next_run_at = ${t}::timestamptz + interval '1 day'
                      where stage = 'waiting' and next_run_at <= ${t}::timestamptz`;
      const samples: number[] = [];
      for (let i = 0; i < 5 + repeats; i++) {
        const s0 = performance.now();
        const [{ sent }] = await reserved`select private.dispatch_tick(${t}::timestamptz) as sent`;
        if (i >= 5) samples.push(performance.now() - s0);
        if (Number(sent) !== 0) throw new Error(`idle dispatch tick: it sent ${sent} jobs`);
      }
      return median(samples);
    } finally {
      await reserved`rollback`;
      reserved.release();
    }
  }
  const out: { size: number; ms: number; idleTickMs?: number; lowerRankDue: boolean; lastOfSeries: boolean }[] = [];
  const series = [
    { lowerRankDue: false, steps: sizes, add: (n: number) => admin`call bench.add_backing_off(${n}, ${t})` },
    { lowerRankDue: true, steps: sizes.slice(1), add: (n: number) => admin`call bench.add_due_lower_rank(${n}, ${t})` },
  ];
  for (const { lowerRankDue, steps, add } of series) {
    let added = 0;
    for (const size of steps) {
      await add(size - added);
      added = size;
      await admin.unsafe("vacuum analyze public.generation_jobs, private.job_pipeline, public.credit_ledger");
      const ms = await startMs();
      const idleTickMs = lowerRankDue ? undefined : await idleDispatchTickMs();
      context.log(`tick cost: a start beside ${size} ${lowerRankDue ? "due jobs of a lower plan" : "jobs backing off"}`);
      out.push({ size, ms, idleTickMs, lowerRankDue, lastOfSeries: size === steps[steps.length - 1] });
    }
  }
  return out;
}

/** Every statement each tick runs, with its actual plan, from auto_explain's notices. */
async function explainAll(adminUrl: string, ticks: Tick[], t: Date): Promise<string> {
  const notices: string[] = [];
  const sql = postgres(adminUrl, { max: 1, onnotice: (n) => notices.push(String(n.message)) });
  const out: string[] = [];
  try {
    await sql.unsafe(`load 'auto_explain'`);
    for (const setting of ["log_min_duration = 0", "log_analyze = on", "log_buffers = on", "log_nested_statements = on",
                           "log_level = notice", "log_timing = on"]) {
      await sql.unsafe(`set auto_explain.${setting}`);
    }
    for (const tick of ticks) {
      notices.length = 0;
      await sql.begin(async (tx) => {
        await tx.unsafe(`select ${tick.fn}($1)`, [t]);
        throw new RollbackSignal();
      }).catch((error) => {
        if (!(error instanceof RollbackSignal)) throw error;
      });
      // The slowest statements inside the tick; the outermost ones (the call itself, and the
      // calls of the functions it is made of) only repeat what their statements cost.
      const duration = (n: string) => Number(/^duration: ([\d.]+) ms/.exec(n)?.[1] ?? 0);
      const nested = notices
        .filter((n) => !/Query Text: (select|SELECT) (private\.[a-z_]+\([^)]*\)|\* +from private\.[a-z_]+\([^)]*\))\s*$/m.test(n))
        .sort((a, b) => duration(b) - duration(a))
        .slice(0, PLANS_PER_TICK);
      out.push(`=== ${tick.fn}: its ${PLANS_PER_TICK} slowest statements ===`, ...nested, "");
    }
  } finally {
    await sql.end();
  }
  return out.join("\n");
}

class RollbackSignal extends Error {}
