import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asServiceRole, asUser, blockedOnALock, inTransaction, settle, type Tx } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { dispatchTestBed } from "./support/dispatch.ts";
import { testPlan } from "./support/plans.ts";

// A finished job's results are kept for its owner's plan's result_retention_days, and the expiry
// is stored when the job finishes (track_results_expiry reads the plan then). A plan change
// (set_plan) or a change of a plan's retention moves the stored expiry of the kept results. A job
// that finished while either change was open fell between the two: it read the plan as it was
// before the change, and the change, which had not seen the job finished, moved nothing. Each
// race is made deterministic over two connections: one side is left open while the other runs.

const sql = connect({ max: 6 });
const plan = testPlan(sql, "expiryrace", "Results expiry race test", 100);
const testBed = dispatchTestBed(sql, plan, {
  kie_api_key: "test-kie-key",
  functions_base_url: "https://fn.invalid/functions/v1",
  finalize_credential: "test-finalize",
});

type Db = Awaited<ReturnType<typeof sql.reserve>>;

/** A job of `owner`'s that KIE accepted (attempt 1, task `task-<job id>`): generating. */
async function generatingJob(owner: string): Promise<string> {
  const [job] = await sql.begin(async (tx) => {
    await asUser(tx, owner);
    return tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a windmill at dawn')`;
  });
  const [request] = await sql<{ net_request_id: string }[]>`
    select net_request_id::text from private.requests where job_id = ${job.id} and kind = 'create'`;
  expect(request).toBeDefined(); // sent at once: the test bed's budget is free
  await sql`delete from net.http_request_queue where id = ${request.net_request_id}::bigint`;
  await sql`insert into net._http_response (id, status_code, content)
            values (${request.net_request_id}::bigint, 200, ${JSON.stringify({ code: 200, data: { taskId: `task-${job.id}` } })})`;
  await sql`select private.reconcile_tick()`;
  await sql`delete from net._http_response where id = ${request.net_request_id}::bigint`;
  const [{ stage }] = await sql<{ stage: string }[]>`select stage from private.job_pipeline where job_id = ${job.id}`;
  expect(stage).toBe("generating");
  return job.id;
}

/** What the callback function does once the images are stored (in the job's delivery folder d). */
function complete(db: Db, jobId: string) {
  return db`select private.callback_complete(${jobId}, 1, ${`task-${jobId}`},
              array['generated-images/' || j.user_id || '/' || j.id || '/d/0.png']) as result
              from public.generation_jobs j where j.id = ${jobId}`;
}

/** How long the job's results are kept: its stored expiry less its completion time, in days. */
async function keptDays(jobId: string): Promise<number | null> {
  const [row] = await sql<{ days: number | null }[]>`
    select extract(day from p.results_expire_at - j.completed_at)::int as days
      from public.generation_jobs j join private.job_pipeline p on p.job_id = j.id where j.id = ${jobId}`;
  return row.days;
}

/**
 * `open` runs in a transaction left open on one connection; then `other` runs (in a transaction of
 * its own) on a second connection until it waits for a lock or is done; then `open` commits.
 */
async function whileOpen(open: (db: Db) => Promise<unknown>, other: (db: Db) => Promise<unknown>) {
  const [first, second] = [await sql.reserve(), await sql.reserve()];
  try {
    const [{ pid }] = await second<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await first`begin`;
    await open(first);
    const outcome = settle(inTransaction(second, () => other(second)));
    await blockedOnALock(sql, pid, outcome);
    await first`commit`;
    return await outcome;
  } finally {
    await first`rollback`.catch(() => {}); // a no-op after the commit
    first.release();
    second.release();
  }
}

beforeAll(() => testBed.setUp());

afterAll(() => testBed.tearDown().finally(() => sql.end({ timeout: 5 })));

describe("a job that finishes while its owner's plan changes", () => {
  it("completes after an open upgrade: its results are kept for the new plan's retention", async () => {
    const user = await plan.signUp({ credits: 100 }); // the test plan keeps results 30 days
    const jobId = await generatingJob(user);
    const outcome = await whileOpen(
      async (billing) => {
        await asServiceRole(billing as unknown as Tx);
        await billing`select public.set_plan(${user}, 'pro')`;
      },
      (callback) => complete(callback, jobId),
    );
    expect(outcome).toMatchObject({ ok: true, value: [{ result: "applied" }] });
    expect(await keptDays(jobId)).toBe(365);
  });

  it("completes while an upgrade runs: the upgrade moves the new result's expiry too", async () => {
    const user = await plan.signUp({ credits: 100 });
    const jobId = await generatingJob(user);
    const outcome = await whileOpen(
      (callback) => complete(callback, jobId),
      async (billing) => {
        await asServiceRole(billing as unknown as Tx);
        return billing`select plan from public.set_plan(${user}, 'pro')`;
      },
    );
    expect(outcome).toMatchObject({ ok: true, value: [{ plan: "pro" }] });
    expect(await keptDays(jobId)).toBe(365);
  });

  it("completes after an open change of its plan's retention: its results are kept for the new retention", async () => {
    const user = await plan.signUp({ credits: 100 });
    const jobId = await generatingJob(user);
    try {
      const outcome = await whileOpen(
        (operator) => operator`update public.plans set result_retention_days = 45 where id = ${plan.id}`,
        (callback) => complete(callback, jobId),
      );
      expect(outcome).toMatchObject({ ok: true, value: [{ result: "applied" }] });
      expect(await keptDays(jobId)).toBe(45);
    } finally {
      await sql`update public.plans set result_retention_days = 30 where id = ${plan.id}`;
    }
  });

  it("completes while its plan's retention changes: the change moves the new result's expiry too", async () => {
    const user = await plan.signUp({ credits: 100 });
    const jobId = await generatingJob(user);
    try {
      const outcome = await whileOpen(
        (callback) => complete(callback, jobId),
        (operator) => operator`update public.plans set result_retention_days = 45 where id = ${plan.id}`,
      );
      expect(outcome).toMatchObject({ ok: true });
      expect(await keptDays(jobId)).toBe(45);
    } finally {
      await sql`update public.plans set result_retention_days = 30 where id = ${plan.id}`;
    }
  });
});

describe("a user moved onto a plan while that plan's retention changes", () => {
  // A second plan of the file's own, keeping results 60 days until the operator changes it.
  const target = `${plan.id}_to`;
  beforeAll(async () => {
    await sql`insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, result_retention_days)
              select ${target}, 'Results expiry race target', max(rank) + 1, 100, 100, 60 from public.plans`;
  });
  afterAll(async () => {
    await sql`delete from auth.users where id in (select id from public.profiles where plan = ${target})`;
    await sql`delete from public.plans where id = ${target}`;
  });

  /** A user of the file's plan with one completed job, kept 30 days. */
  async function userWithAResult(): Promise<{ user: string; jobId: string }> {
    const user = await plan.signUp({ credits: 100 });
    const jobId = await generatingJob(user);
    await complete(sql as unknown as Db, jobId);
    expect(await keptDays(jobId)).toBe(30);
    return { user, jobId };
  }

  const move = async (billing: Db, user: string) => {
    await asServiceRole(billing as unknown as Tx);
    return billing`select plan from public.set_plan(${user}, ${target})`;
  };

  it("moved after an open retention change: the result is kept for the new retention", async () => {
    const { user, jobId } = await userWithAResult();
    const outcome = await whileOpen(
      (operator) => operator`update public.plans set result_retention_days = 45 where id = ${target}`,
      (billing) => move(billing, user),
    );
    expect(outcome).toMatchObject({ ok: true, value: [{ plan: target }] });
    expect(await keptDays(jobId)).toBe(45);
  });

  it("moved while the retention changes: the change moves the result's expiry too", async () => {
    const { user, jobId } = await userWithAResult();
    await sql`update public.plans set result_retention_days = 60 where id = ${target}`;
    const outcome = await whileOpen(
      (billing) => move(billing, user),
      (operator) => operator`update public.plans set result_retention_days = 45 where id = ${target}`,
    );
    expect(outcome).toMatchObject({ ok: true });
    expect(await keptDays(jobId)).toBe(45);
  });
});
