import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asUser, barrier } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { dispatchTestBed } from "./support/dispatch.ts";
import { testPlan } from "./support/plans.ts";

// Racing transitions on one job over real connections: the deadline sweep, a late callback
// (complete_job), a provider failure and the reconcile of a poll that found the result all hit
// the same jobs at the same instant. Every job must end in exactly one terminal state, with a
// refund if and only if it failed, and never two.

const JOBS = 15;
const TICKS = 2; // each of deadline_tick and reconcile_tick runs this many times in the race
const sql = connect({ max: JOBS * 2 + TICKS * 2 + 2 });
const plan = testPlan(sql, "race", "Race test", 1000);
const testBed = dispatchTestBed(sql, plan, {
  kie_api_key: "test-kie-key",
  functions_base_url: "https://fn.invalid/functions/v1",
  finalize_credential: "test-finalize",
});
const jobIds: string[] = [];

beforeAll(async () => {
  await testBed.setUp();
  await sql`update private.rate_slots set available_at = '-infinity'`;
  const id = await plan.signUp({ credits: 1000 });
  for (let i = 0; i < JOBS; i++) {
    const [job] = await sql.begin(async (tx) => {
      await asUser(tx, id);
      return tx<{ id: string }[]>`select id from public.start_generation(prompt => ${`race ${i}`})`;
    });
    jobIds.push(job.id);
  }
  // Every job accepted by "KIE", then past its deadline with the final poll long answered...
  await sql`
    insert into net._http_response (id, status_code, content)
    select r.net_request_id, 200, json_build_object('code', 200, 'data', json_build_object('taskId', 'task-' || r.job_id))::text
      from private.requests r where r.job_id = any(${jobIds}::uuid[]) and r.kind = 'create'`;
  await sql`select private.reconcile_tick()`;
  // ...and a poll whose success answer is waiting to be reconciled.
  await sql`select private.send_poll(job_id) from private.job_pipeline where job_id = any(${jobIds}::uuid[])`;
  await sql`
    insert into net._http_response (id, status_code, content)
    select r.net_request_id, 200, json_build_object('code', 200, 'data', json_build_object(
             'taskId', 'task-' || r.job_id, 'state', 'success', 'resultJson', '{"resultUrls":["https://kie.invalid/r.png"]}'))::text
      from private.requests r where r.job_id = any(${jobIds}::uuid[]) and r.kind = 'poll'`;
  await sql`update private.job_pipeline set deadline_at = now() - interval '1 hour', final_poll_at = now() - interval '1 hour'
             where job_id = any(${jobIds}::uuid[])`;
  const stages = await sql`select distinct stage from private.job_pipeline where job_id = any(${jobIds}::uuid[])`;
  if (stages.length !== 1 || stages[0].stage !== "generating") throw new Error(`setup: jobs are ${JSON.stringify(stages)}`);
});

afterAll(() => testBed.tearDown().finally(() => sql.end({ timeout: 5 })));

describe("racing transitions on one job", () => {
  it("end in one terminal state and at most one refund per job", async () => {
    type Db = Awaited<ReturnType<typeof sql.reserve>>;
    const racers: ((db: Db) => Promise<unknown>)[] = [
      ...Array.from({ length: TICKS }, () => (db: Db) => db`select private.deadline_tick()`),
      ...Array.from({ length: TICKS }, () => (db: Db) => db`select private.reconcile_tick()`),
      ...jobIds.flatMap((jobId) => [
        (db: Db) => db`select private.complete_job(${jobId}, 1, ${`task-${jobId}`}, array['u/race.png'])`,
        (db: Db) => db`select private.fail_job_from_provider(${jobId}, 1, ${`task-${jobId}`}, '500', 'generation failed')`,
      ]),
    ];
    // Each racer on its own connection, all released at once.
    const go = barrier(racers.length);
    const outcomes = await Promise.allSettled(
      racers.map(async (race) => {
        const db = await sql.reserve();
        try {
          await go();
          return await race(db);
        } finally {
          db.release();
        }
      }),
    );
    expect(outcomes.filter((o) => o.status === "rejected")).toEqual([]);

    const rows = await sql<{ status: string; stage: string; refunds: number; debits: number; credits_charged: number }[]>`
      select j.status, p.stage, j.credits_charged,
             (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds,
             (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'debit') as debits
        from public.generation_jobs j join private.job_pipeline p on p.job_id = j.id
       where j.id = any(${jobIds}::uuid[])`;
    expect(rows).toHaveLength(JOBS);
    for (const row of rows) {
      expect(["completed", "failed"]).toContain(row.status);
      expect(row.stage).toBe(row.status);
      expect(row.debits).toBe(1);
      expect(row.refunds).toBe(row.status === "failed" && row.credits_charged > 0 ? 1 : 0);
    }
    // The balance equals its ledger (the deferred check would have refused otherwise, but say it).
    const [balance] = await sql<{ credits: number; ledger: number }[]>`
      select p.credits, (select sum(amount)::int from public.credit_ledger l where l.user_id = p.id) as ledger
        from public.profiles p where p.id = ${plan.users[0]}`;
    expect(balance.credits).toBe(balance.ledger);
  });
});
