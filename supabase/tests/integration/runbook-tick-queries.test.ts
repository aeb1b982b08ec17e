import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// Step 4 of "A job seems stuck" is read when something is already wrong, on a project whose
// cron.job_run_details holds a week of runs (about two million rows at the default cadences).
// Its queries read only the newest runs, an index range on runid (as private.silent_ticks does),
// and on a history inside that range they answer what a scan of the whole history answers.
const root = fileURLToPath(new URL("../../..", import.meta.url));

/** The statements of the SQL block under step 4 of "A job seems stuck". */
function stepFourStatements(readme: string): string[] {
  const step = readme.slice(readme.indexOf("**4. Are the ticks running?**"));
  const block = step.match(/```sql\n([\s\S]*?)```/)?.[1] ?? "";
  return block
    .split(/;\s*(?:--[^\n]*)?\n/)
    .map((statement) => statement.replace(/--[^\n]*/g, "").trim())
    .filter((statement) => statement !== "");
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Cond"?: string;
  Plans?: PlanNode[];
}

/** Every read of cron.job_run_details in a plan, with the index condition that bounds it. */
function historyReads(node: PlanNode): { node: string; bound: string }[] {
  const children = node.Plans ?? [];
  const own =
    node["Relation Name"] === "job_run_details"
      ? [{
        node: node["Node Type"],
        // A bitmap heap scan is bounded by the bitmap index scan below it.
        bound: node["Index Cond"] ?? children.map((child) => child["Index Cond"] ?? "").join(" "),
      }]
      : [];
  return [...own, ...children.flatMap(historyReads)];
}

// The queries step 4 had, which scan the whole history: the reference answers.
const WHOLE_HISTORY = [
  `select j.jobname, j.schedule, j.active, max(d.start_time) as last_run,
          count(*) filter (where d.status = 'failed') as failed_runs
     from cron.job j
     left join cron.job_run_details d on d.jobid = j.jobid
    group by j.jobid, j.jobname, j.schedule, j.active
    order by j.jobname`,
  `select j.jobname, d.status, d.return_message, d.start_time
     from cron.job_run_details d
     join cron.job j on j.jobid = d.jobid
    where d.status <> 'succeeded'
    order by d.start_time desc
    limit 20`,
];

class Rollback extends Error {}

describe("README step 4: are the ticks running?", () => {
  const sql = connect({ max: 1 });
  afterAll(() => sql.end());
  const statements = stepFourStatements(readFileSync(join(root, "README.md"), "utf8"));

  it("has the two queries", () => {
    expect(statements).toHaveLength(2);
  });

  it("reads cron.job_run_details only through a runid range", async () => {
    await sql.begin(async (tx) => {
      // On a small test table a sequential scan is cheaper; what matters is that a bound exists.
      await tx`set local enable_seqscan = off`;
      for (const statement of statements) {
        const [{ "QUERY PLAN": [{ Plan }] }] = await tx.unsafe(`explain (format json) ${statement}`);
        const reads = historyReads(Plan as PlanNode);
        expect(reads.length, statement).toBeGreaterThan(0);
        for (const read of reads) expect(read.bound, `${read.node} in: ${statement}`).toMatch(/\brunid\b/);
      }
    });
  });

  it("answers as a scan of the whole history does, on runs inside its range", async () => {
    await expect(
      sql.begin(async (tx) => {
        // Keep pg_cron's own runs out until the rollback.
        await tx`lock table cron.job_run_details in exclusive mode`;
        await tx`delete from cron.job_run_details`;
        // An hour of runs of every job, one a minute, a few failed, and a run still going.
        await tx`
          insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time)
          select j.jobid, 980000 + row_number() over (order by m.minute, j.jobid), j.username, j.command,
                 case when (m.minute + j.jobid) % 7 = 0 then 'failed' else 'succeeded' end,
                 case when (m.minute + j.jobid) % 7 = 0 then 'ERROR:  simulated fault ' || m.minute else '1 row' end,
                 now() - make_interval(mins => 60 - m.minute), now() - make_interval(mins => 60 - m.minute, secs => -1)
            from cron.job j, generate_series(0, 59) as m (minute)
           where j.username = current_user`;
        await tx`
          insert into cron.job_run_details (jobid, runid, username, command, status, start_time)
          select j.jobid, 990000, j.username, j.command, 'running', now()
            from cron.job j where j.jobname = 'kiln-dispatch' and j.username = current_user`;
        for (const [index, statement] of statements.entries()) {
          const answer = await tx.unsafe(statement);
          const reference = await tx.unsafe(WHOLE_HISTORY[index]);
          expect(answer.length, statement).toBeGreaterThan(0);
          expect([...answer], statement).toEqual([...reference]);
        }
        throw new Rollback();
      }),
    ).rejects.toBeInstanceOf(Rollback);
  });
});
