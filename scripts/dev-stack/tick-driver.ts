/**
 * Tick driver for the local stack: runs the registered ticks pg_cron cannot run at their cadence.
 *
 * The ticks are listed in `private.ticks` (name, every_seconds, command), and
 * `private.schedule_ticks()` derives one pg_cron job per tick. Hosted Supabase has pg_cron 1.6,
 * which takes `'N seconds'` schedules, so every tick runs at its cadence there. Debian's pg_cron
 * 1.4 takes minute schedules only, so a sub-minute tick is scheduled every minute. This driver
 * runs exactly those ticks — registered, joined to their `cron.job` row by name, and scheduled
 * by pg_cron less often than `every_seconds` asks — every `every_seconds`, the way pg_cron does:
 *
 *  - the job's command on a connection of its own, as the job's `username` (`set role`);
 *  - one row per run in `cron.job_run_details` (runid from `cron.runid_seq`, jobid, job_pid,
 *    database, username, command, status starting -> running -> succeeded | failed,
 *    return_message as pg_cron words it, start_time, end_time), so operators' queries work
 *    the same locally;
 *  - never two runs of one job at once (neither its own nor while pg_cron's run of that job is
 *    still going).
 *
 * Everything else (every job not in the registry, and ticks of a minute or more, which pg_cron
 * schedules exactly) is left to pg_cron. Development tool only; nothing here deploys.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";

export interface TickDriverOptions {
  databaseUrl: string;
  /** How often the driver looks for due ticks (ms, default 250). */
  intervalMs?: number;
  log?: (message: string) => void;
}

export interface TickDriver {
  /** Starts no new run, waits for the runs in progress, closes the connections. */
  stop(): Promise<void>;
}

export const TICK_DRIVER_APPLICATION_NAME = "kiln-tick-driver";

interface DueTick {
  jobid: string;
  jobname: string;
  command: string;
  username: string;
  database: string;
  every_seconds: number;
  /** pg_cron's own run of this job is in progress. */
  busy_in_pg_cron: boolean;
}

/** pg_cron's return_message for a command that succeeded: the last statement's status. */
function returnMessage(result: postgres.RowList<postgres.Row[]> | postgres.RowList<postgres.Row[]>[]): string {
  const last = Array.isArray(result) && Array.isArray(result.at(-1)) ? (result.at(-1) as postgres.RowList<postgres.Row[]>) : result;
  const { command, count } = last as postgres.RowList<postgres.Row[]>;
  if (command === "SELECT") return `${count} ${count === 1 ? "row" : "rows"}`;
  if (command === "INSERT") return `INSERT 0 ${count}`;
  if (["UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE"].includes(command)) return `${command} ${count}`;
  return command;
}

export async function startTickDriver(options: TickDriverOptions): Promise<TickDriver> {
  const intervalMs = options.intervalMs ?? 250;
  const log = options.log ?? (() => {});
  const connection = { application_name: TICK_DRIVER_APPLICATION_NAME };
  const sql = postgres(options.databaseUrl, { max: 2, onnotice: () => {}, connection });
  const running = new Map<string, Promise<void>>();
  const nextRun = new Map<string, number>();
  let stopped = false;
  let lastProblem: string | null = null;
  let lastHistoryProblem: string | null = null;

  /** Run history is best effort: without the right to write it, the tick still runs. */
  async function recordRun(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      const message = `cannot write cron.job_run_details: ${(error as Error).message}`;
      if (message !== lastHistoryProblem) log(message);
      lastHistoryProblem = message;
    }
  }

  async function runTick(tick: DueTick): Promise<void> {
    let runid: string | null = null;
    await recordRun(async () => {
      [{ runid }] = await sql<{ runid: string }[]>`
        insert into cron.job_run_details (jobid, database, username, command, status)
        values (${tick.jobid}, ${tick.database}, ${tick.username}, ${tick.command}, 'starting')
        returning runid`;
    });
    // A connection per run, as pg_cron opens one per job run.
    const job = postgres(options.databaseUrl, { max: 1, prepare: false, onnotice: () => {}, connection });
    let status = "failed";
    let message: string;
    try {
      await job`select set_config('role', ${tick.username}, false)`;
      const [{ pid }] = await job<{ pid: number }[]>`select pg_backend_pid() as pid`;
      if (runid !== null)
        await recordRun(async () => {
          await sql`
            update cron.job_run_details set status = 'running', job_pid = ${pid}, start_time = clock_timestamp()
             where runid = ${runid}`;
        });
      message = returnMessage(await job.unsafe(tick.command).simple());
      status = "succeeded";
    } catch (error) {
      const e = error as { severity?: string; message: string };
      message = `${e.severity ?? "ERROR"}:  ${e.message}\n`;
      log(`${tick.jobname} failed: ${e.message}`);
    } finally {
      await job.end({ timeout: 5 });
    }
    if (runid !== null)
      await recordRun(async () => {
        await sql`
          update cron.job_run_details set status = ${status}, return_message = ${message}, end_time = clock_timestamp()
           where runid = ${runid}`;
      });
  }

  async function look(): Promise<void> {
    const ticks = await sql<DueTick[]>`
      select j.jobid::text, j.jobname, j.command, j.username, j.database, t.every_seconds,
             exists (
               select from cron.job_run_details d join pg_catalog.pg_stat_activity a on a.pid = d.job_pid
                where d.jobid = j.jobid and d.status = 'running' and a.application_name <> ${TICK_DRIVER_APPLICATION_NAME}
             ) as busy_in_pg_cron
        from private.ticks t
        join cron.job j on j.jobname = t.name
       where j.active
         and j.database = current_database()
         -- pg_cron runs it at its cadence itself when the schedule says exactly that
         and j.schedule <> private.cron_schedule(t.every_seconds, true)`;
    const now = Date.now();
    for (const tick of ticks) {
      if (stopped || running.has(tick.jobid) || tick.busy_in_pg_cron) continue;
      if (now < (nextRun.get(tick.jobid) ?? 0)) continue;
      nextRun.set(tick.jobid, now + tick.every_seconds * 1000);
      const run = runTick(tick)
        .catch((error: Error) => log(`${tick.jobname}: ${error.message}`))
        .finally(() => running.delete(tick.jobid));
      running.set(tick.jobid, run);
    }
  }

  let looking: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    looking = looking
      .then(look)
      .then(() => {
        if (lastProblem !== null) log("recovered");
        lastProblem = null;
      })
      .catch((error: Error) => {
        if (error.message !== lastProblem) log(`cannot read the ticks: ${error.message}`);
        lastProblem = error.message;
      });
  }, intervalMs);

  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearInterval(timer);
        await looking;
        await Promise.all(running.values());
        await sql.end({ timeout: 5 });
      })();
      return stopping;
    },
  };
}

const USAGE = `Usage: tsx scripts/dev-stack/tick-driver.ts [options]

Runs the registered ticks (private.ticks) that the installed pg_cron schedules less often than
their cadence, every every_seconds, as their cron job's user, writing cron.job_run_details.
Runs until SIGINT or SIGTERM (it lets the runs in progress finish).

Options:
  --database-url URL   database (default: $DATABASE_URL, else postgresql://postgres@127.0.0.1:54322/postgres)
  --interval-ms N      how often to look for due ticks (default: 250)
  -h, --help           show this help
`;

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: { "database-url": { type: "string" }, "interval-ms": { type: "string" }, help: { type: "boolean", short: "h" } },
    }).values;
  } catch (error) {
    process.stderr.write(`tick-driver: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const intervalRaw = values["interval-ms"] ?? "250";
  if (!/^[1-9][0-9]*$/.test(intervalRaw)) {
    process.stderr.write(`tick-driver: --interval-ms must be a positive integer, got '${intervalRaw}'\n\n${USAGE}`);
    return 2;
  }
  const databaseUrl = values["database-url"] ?? process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:54322/postgres";
  const print = (message: string) => process.stderr.write(`[tick-driver] ${message}\n`);
  const driver = await startTickDriver({ databaseUrl, intervalMs: Number(intervalRaw), log: print });
  print(`running the registered sub-minute ticks on ${new URL(databaseUrl).host}`);
  return await new Promise<number>((resolve) => {
    const shutdown = () => void driver.stop().then(() => resolve(0), () => resolve(1));
    process.once("SIGINT", shutdown);
    process.once("SIGTERM", shutdown);
  });
}

function isMainModule(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      process.stderr.write(`tick-driver: ${error.message}\n`);
      process.exit(1);
    },
  );
}
