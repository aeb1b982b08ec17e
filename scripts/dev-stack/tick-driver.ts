/**
 * Tick driver for the local stack: runs the pipeline's pg_cron jobs every second.
 *
 * Hosted Supabase has pg_cron 1.6, which accepts `'N seconds'` schedules; Debian's 1.4 accepts
 * only minute schedules, so locally a seconds job can exist only as an every-minute job. This
 * driver runs the *same* job commands from `cron.job` on a short interval so the dev stack
 * behaves like production: jobs scheduled every N seconds run every N seconds, and every-minute
 * jobs (the 1.4 fallback for seconds jobs) run every second. Anything slower ('0 3 * * *') is
 * left to pg_cron itself. Development tool only; nothing here deploys.
 */
import postgres from "postgres";
import { pathToFileURL } from "node:url";

export interface TickDriverOptions {
  databaseUrl: string;
  /** How often the driver looks for due jobs (ms). */
  intervalMs?: number;
  log?: (message: string) => void;
}

export interface TickDriver {
  /** Completed runs per job name (for status output and tests). */
  runs: Map<string, number>;
  stop(): Promise<void>;
}

interface CronJob {
  jobid: number;
  jobname: string | null;
  schedule: string;
  command: string;
}

/** The local interval for a pg_cron schedule, or null when pg_cron should keep running it. */
export function localIntervalSeconds(schedule: string): number | null {
  const seconds = /^\s*(\d+)\s+seconds?\s*$/i.exec(schedule);
  if (seconds) return Math.max(1, Number(seconds[1]));
  if (schedule.trim() === "* * * * *") return 1;
  return null;
}

export async function startTickDriver(options: TickDriverOptions): Promise<TickDriver> {
  const intervalMs = options.intervalMs ?? 250;
  const log = options.log ?? (() => {});
  const sql = postgres(options.databaseUrl, {
    max: 4,
    onnotice: () => {},
    connection: { application_name: "kiln-tick-driver" },
  });
  const lastRun = new Map<number, number>();
  const running = new Set<number>();
  const runs = new Map<string, number>();
  let stopped = false;
  let pass: Promise<void> = Promise.resolve();

  async function runJob(job: CronJob): Promise<void> {
    running.add(job.jobid);
    const name = job.jobname ?? `job ${job.jobid}`;
    try {
      await sql.unsafe(job.command);
      runs.set(name, (runs.get(name) ?? 0) + 1);
    } catch (error) {
      log(`${name} failed: ${(error as Error).message}`);
    } finally {
      running.delete(job.jobid);
    }
  }

  async function tick(): Promise<void> {
    const jobs = await sql<CronJob[]>`
      select jobid, jobname, schedule, command from cron.job where active and database = current_database()`;
    const now = Date.now();
    const due: Promise<void>[] = [];
    for (const job of jobs) {
      const every = localIntervalSeconds(job.schedule);
      if (every === null || running.has(job.jobid)) continue;
      if (now - (lastRun.get(job.jobid) ?? 0) < every * 1000) continue;
      lastRun.set(job.jobid, now);
      due.push(runJob(job));
    }
    await Promise.all(due);
  }

  const timer = setInterval(() => {
    if (stopped) return;
    pass = pass.then(tick).catch((error: Error) => log(`tick failed: ${error.message}`));
  }, intervalMs);

  return {
    runs,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await pass;
      await sql.end({ timeout: 5 });
    },
  };
}

const usage = `usage: tsx scripts/dev-stack/tick-driver.ts [--interval-ms N]

Runs the local database's fast pg_cron jobs every second (see the file header).
Reads DATABASE_URL (default postgresql://postgres@127.0.0.1:54322/postgres). Stops on SIGINT/SIGTERM.`;

async function main(argv: string[]): Promise<void> {
  let intervalMs = 250;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(usage);
      return;
    } else if (arg === "--interval-ms" && /^\d+$/.test(argv[i + 1] ?? "")) {
      intervalMs = Number(argv[++i]);
    } else {
      console.error(`unknown or incomplete argument: ${arg}\n\n${usage}`);
      process.exit(2);
    }
  }
  const databaseUrl = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:54322/postgres";
  const driver = await startTickDriver({
    databaseUrl,
    intervalMs,
    log: (message) => console.error(`[tick-driver] ${message}`),
  });
  console.error(`[tick-driver] running fast pg_cron jobs on ${new URL(databaseUrl).host}`);
  const shutdown = async () => {
    await driver.stop();
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).catch((error: Error) => {
    console.error(`[tick-driver] ${error.message}`);
    process.exit(1);
  });
}
