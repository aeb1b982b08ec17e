import type { Sql } from "postgres";

type Db = Sql<Record<string, unknown>>;

/**
 * Pauses the active pg_cron jobs whose names match `pattern` (SQL `like`) and returns the undo,
 * which resumes them. pg_cron runs every kiln tick once a minute in the test cluster too: a file
 * that calls a tick itself and then reads what it did pauses it, or a minute run landing in
 * between takes the rows first (`skip locked`) and the file reads before that run commits.
 */
export async function pauseCronJobs(sql: Db, pattern: string): Promise<() => Promise<void>> {
  const paused = await sql<{ jobid: string }[]>`
    select jobid::text, cron.alter_job(jobid, active => false) from cron.job where jobname like ${pattern} and active`;
  return async () => {
    for (const { jobid } of paused) await sql`select cron.alter_job(${jobid}::bigint, active => true)`;
  };
}
