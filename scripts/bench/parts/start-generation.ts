/**
 * Part 1: start_generation throughput with pgbench, called the way PostgREST calls an RPC, at 1, 4
 * and 8 clients, interleaved with two baselines on the same cluster: one conditional balance
 * update per transaction, and the floor of this design (lock the profile, count active jobs
 * through the partial index, debit, insert a job row and a ledger row) behind the same PostgREST
 * wrapper (and once more in one plain statement, without it); and that wrapper around an RPC that
 * does nothing, the ceiling of any RPC called this way. Each wrapper script sends what PostgREST sends for POST /rpc/<fn>, in as many round trips
 * (see the comment at the top of scripts/bench/sql/start-generation.pgbench). Measured
 * with profiling off; one further run with pg_stat_statements and track_functions on says where
 * the time goes.
 */
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { pgbench, type PgbenchRun } from "../pgbench.ts";
import { median } from "../stats.ts";
import type { Row } from "../results.ts";
import { psqlFile } from "./psql.ts";
import type { Context, Part, PartResult } from "./types.ts";

const USERS = 5000;
const sqlDir = fileURLToPath(new URL("../sql/", import.meta.url));
const SUBJECTS = [
  { id: "one-update", name: "one-update baseline" },
  { id: "wrapper-only", name: "PostgREST wrapper only" },
  { id: "floor-one-statement", name: "floor baseline, one statement" },
  { id: "floor", name: "floor baseline" },
  { id: "start-generation", name: "start_generation" },
] as const;
type SubjectId = (typeof SUBJECTS)[number]["id"];


async function setProfiling(admin: postgres.Sql, on: boolean): Promise<void> {
  await admin.unsafe(`alter system set pg_stat_statements.track = '${on ? "all" : "none"}'`);
  await admin.unsafe(`alter system set track_functions = '${on ? "all" : "none"}'`);
  await admin`select pg_reload_conf()`;
  // The reload reaches backends at their next command; new pgbench connections read it at start.
  await new Promise((resolve) => setTimeout(resolve, 200));
}

function profileTable(headers: string[], rows: (string | number)[][]): string {
  return [`| ${headers.join(" | ")} |`, `|${headers.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/**
 * Samples what pgbench's backends wait on, every 50 ms while `run` lasts: a shared hot row shows
 * as lock or LWLock waits; no wait (on CPU) and ClientRead (waiting for pgbench) mean there is none.
 */
async function sampleWaitEvents<T>(adminUrl: string, run: Promise<T>): Promise<{ run: T; samples: number; rows: [string, number][] }> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  const counts = new Map<string, number>();
  let samples = 0, done = false;
  const finished = run.finally(() => { done = true; });
  try {
    while (!done) {
      const rows = await sql`
        select case when wait_event is null then 'on CPU' else wait_event_type || ': ' || wait_event end as event, count(*)::int as n
          from pg_stat_activity
         where application_name = 'pgbench' and backend_type = 'client backend'
         group by 1`;
      for (const r of rows) {
        counts.set(String(r.event), (counts.get(String(r.event)) ?? 0) + Number(r.n));
        samples += Number(r.n);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { run: await finished, samples, rows: [...counts].sort((a, b) => b[1] - a[1]) };
  } finally {
    await sql.end();
  }
}

export const startGeneration: Part = {
  id: "start-generation",
  title: "start_generation throughput",
  async run(context: Context): Promise<PartResult> {
    const seconds = context.quick ? 2 : 10;
    const rounds = context.quick ? 1 : 3;
    // Quick: the two ends only (the ratio line is the 8-client one), to stay under two minutes.
    const clientCounts = context.quick ? [1, 8] : [1, 4, 8];
    const admin = postgres(context.adminUrl, { max: 1, onnotice: () => {} });
    try {
      context.log(`start_generation: fixtures (${USERS} users)`);
      await psqlFile(context.adminUrl, `${sqlDir}start-generation-fixtures.sql`, { users: USERS });
      await setProfiling(admin, false);
      const bench = (id: SubjectId, clients: number, secs: number) =>
        pgbench({ databaseUrl: context.databaseUrl, script: `${sqlDir}${id}.pgbench`, clients, seconds: secs, variables: { users: USERS } });
      const counts = async () => {
        const [r] = await admin`select (select count(*) from public.generation_jobs)::int as jobs,
                                       (select count(*) from private.requests where kind = 'create')::int as creates`;
        return r as { jobs: number; creates: number };
      };

      for (const s of SUBJECTS) await bench(s.id, 8, 1); // warm-up: plans, caches
      await admin`call bench.finish_active()`;
      await admin`analyze`;

      const runs = new Map<string, PgbenchRun[]>();
      // WAL written per transaction: with durable commits every commit waits for its WAL to reach
      // disk, so the bytes a subject writes bound its rate at high client counts. Read from the
      // WAL position around each run (autovacuum's writes during the run included).
      const walPerTransaction = new Map<string, number[]>();
      const walPosition = async () => String((await admin`select pg_current_wal_lsn()::text as lsn`)[0].lsn);
      let starts = 0, created = 0, queuedCreates = 0, errors = 0;
      for (const clients of clientCounts) {
        for (let round = 1; round <= rounds; round++) {
          for (const subject of SUBJECTS) {
            await admin`call bench.finish_active()`;
            const before = await counts();
            const walBefore = await walPosition();
            const result = await bench(subject.id, clients, seconds);
            const [{ bytes }] = await admin`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${walBefore}::pg_lsn)::float8 as bytes`;
            const key = `${subject.id}/${clients}`;
            runs.set(key, [...(runs.get(key) ?? []), result]);
            walPerTransaction.set(key, [...(walPerTransaction.get(key) ?? []), Number(bytes) / Math.max(result.transactions, 1)]);
            errors += result.failed + result.abortedClients;
            if (subject.id === "start-generation") {
              const after = await counts();
              starts += result.transactions;
              created += after.jobs - before.jobs;
              queuedCreates += after.creates - before.creates;
            }
            context.log(`  ${subject.name}, ${clients} client(s), round ${round}: ${Math.round(result.tps)} TPS`);
          }
        }
      }

      const rows: Row[] = [];
      const summary: string[] = [];
      for (const clients of clientCounts) {
        const m = (id: SubjectId) => {
          const r = runs.get(`${id}/${clients}`) ?? [];
          return { tps: median(r.map((x) => x.tps)), p50: median(r.map((x) => x.p50Ms)), p99: median(r.map((x) => x.p99Ms)) };
        };
        const one = m("one-update"), wrapper = m("wrapper-only"), floor = m("floor"), start = m("start-generation");
        const floorOneStatement = m("floor-one-statement");
        const wal = (id: SubjectId) => `WAL ${Math.round(median(walPerTransaction.get(`${id}/${clients}`) ?? [0]))} B per transaction`;
        const base = { part: "1 start_generation", case: `${clients} client${clients > 1 ? "s" : ""}`, unit: "TPS" };
        rows.push({ ...base, subject: "one-update baseline", value: one.tps, p50Ms: one.p50, p99Ms: one.p99, note: wal("one-update") });
        rows.push({ ...base, subject: "PostgREST wrapper only", value: wrapper.tps, p50Ms: wrapper.p50, p99Ms: wrapper.p99,
                    baseline: { name: "one-update", value: one.tps },
                    note: `ceiling of any RPC called this way; it writes nothing, so its commit flushes nothing; ${wal("wrapper-only")}` });
        rows.push({ ...base, subject: "floor baseline, one statement", value: floorOneStatement.tps, p50Ms: floorOneStatement.p50,
                    p99Ms: floorOneStatement.p99, baseline: { name: "one-update", value: one.tps },
                    note: `autocommit, user passed in: no PostgREST transaction; ${wal("floor-one-statement")}` });
        rows.push({ ...base, subject: "floor baseline", value: floor.tps, p50Ms: floor.p50, p99Ms: floor.p99,
                    baseline: { name: "one-update", value: one.tps }, note: wal("floor") });
        rows.push({ ...base, subject: "start_generation", value: start.tps, p50Ms: start.p50, p99Ms: start.p99,
                    baseline: { name: "one-update", value: one.tps }, note: wal("start-generation") });
        rows.push({ ...base, subject: "start_generation", value: start.tps, baseline: { name: "floor", value: floor.tps },
                    note: "ratio to the floor" });
        rows.push({ ...base, subject: "start_generation", value: start.tps, baseline: { name: "wrapper", value: wrapper.tps },
                    note: "ratio to the wrapper only" });
        if (clients === 8) {
          summary.push(`start_generation ratio to the one-update baseline at 8 clients: ${(start.tps / one.tps).toFixed(2)}` +
            ` (to the floor: ${(start.tps / floor.tps).toFixed(2)}; the floor's own ratio: ${(floor.tps / one.tps).toFixed(2)}` +
            `, in one statement ${(floorOneStatement.tps / one.tps).toFixed(2)})`);
        }
      }
      rows.push({ part: "1 start_generation", case: "all runs", subject: "errors", value: errors + (starts - created),
                  note: `failed transactions + aborted clients + starts without a job row; ${created} jobs from ${starts} starts` });

      context.log("start_generation: profile run (pg_stat_statements, track_functions)");
      await admin`call bench.finish_active()`;
      await setProfiling(admin, true);
      await admin`select pg_stat_reset()`;
      await admin`select extensions.pg_stat_statements_reset()`;
      const waits = await sampleWaitEvents(context.adminUrl, bench("start-generation", 8, seconds));
      const profiled = waits.run;
      await setProfiling(admin, false);
      const functions = await admin`
        select schemaname || '.' || funcname as name, calls, self_time / greatest(${profiled.transactions}, 1) as self_ms,
               total_time / greatest(${profiled.transactions}, 1) as total_ms
          from pg_stat_user_functions where schemaname in ('public', 'private') and calls > 0
         order by self_time desc limit 15`;
      const statements = await admin`
        select calls, total_exec_time / greatest(${profiled.transactions}, 1) as ms,
               left(regexp_replace(query, '\\s+', ' ', 'g'), 110) as query
          from extensions.pg_stat_statements where calls > 0
         order by total_exec_time desc limit 15`;
      const per = (x: number) => (x * 1000).toFixed(0);
      const sections = [
        {
          title: "start_generation: what each start does",
          body: [
            `Dispatch trigger on, KIE key and functions URL in Vault, create budget ${"18"} per 10 s window: ` +
              `${queuedCreates} of ${created} starts queued a createTask; the others found the window's budget spent and only ` +
              "inserted a waiting pipeline row. That is the burst case measured here on purpose: at any rate above the " +
              "budget (1.8 starts/s) almost every start takes this path.",
            "",
            `pgbench: ${USERS} users on a plan checked on every start (50 active jobs, 600 starts a minute) with ` +
              "credits for the whole run; between runs every active job is finished, so a user holds a handful of active jobs. " +
              `${seconds} s per run, ${rounds} round(s) per client count, order one-update, wrapper only, floor in one statement, floor, start_generation; medians. ` +
              "Each wrapper script is PostgREST's transaction for POST /rpc/<fn> statement for statement, in its four round " +
              "trips: `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE`; one `select set_config(...), ...` (search_path, the " +
              "role's statement_timeout, role, the JWT claims, method, path, headers, cookies); the call wrapped in " +
              "`WITH pgrst_source AS (...)` with the JSON body as its argument record; `COMMIT`. The wrapper-only run calls an " +
              "RPC declared like ours that does nothing: what any RPC called this way costs before it does anything. " +
              "Scripts: `scripts/bench/sql/*.pgbench` (`--protocol=prepared`).",
          ].join("\n"),
        },
        {
          title: "start_generation wait events (8 clients, the profile run, sampled every 50 ms)",
          body: [
            `${waits.samples} backend samples. Lock and LWLock waits would show a row or page every start contends ` +
              "for; `ClientRead` is a backend waiting for pgbench's next statement (pgbench shares the cores).",
            "",
            profileTable(["wait event", "share"],
              waits.rows.map(([event, n]) => [event, `${((100 * n) / Math.max(waits.samples, 1)).toFixed(1)} %`])),
          ].join("\n"),
        },
        {
          title: "start_generation profile (8 clients, per start, µs)",
          body: [
            `${Math.round(profiled.tps)} TPS with profiling on (it slows nested statements).`,
            "",
            profileTable(["function", "calls per start", "self µs", "total µs"],
              functions.map((f) => [f.name, (Number(f.calls) / Math.max(profiled.transactions, 1)).toFixed(1), per(f.self_ms), per(f.total_ms)])),
            "",
            profileTable(["statement (nested ones included)", "calls per start", "µs"],
              statements.map((s) => ["`" + String(s.query).replaceAll("|", "\\|") + "`",
                (Number(s.calls) / Math.max(profiled.transactions, 1)).toFixed(1), per(s.ms)])),
          ].join("\n"),
        },
      ];
      return { rows, sections, summary };
    } finally {
      await admin.end();
    }
  },
};
