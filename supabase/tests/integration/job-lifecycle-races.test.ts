import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asServiceRole, asUser, blockedOnALock, inTransaction, settle } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { dispatchTestBed } from "./support/dispatch.ts";
import { testPlan } from "./support/plans.ts";

// Two calls on the same job or account, each in its own transaction on its own connection, in a
// forced order: the first runs and stays open, the second starts and is seen waiting for a lock
// (pg_locks) or is seen finishing without one, and only then does the first commit. After each
// race: the job is in one state, charged once, refunded at most once (only if it failed), and the
// balance is the sum of its ledger.

const sql = connect({ max: 6 });
const plan = testPlan(sql, "lifecycle", "Lifecycle race test", 100);
const testBed = dispatchTestBed(sql, plan, {
  kie_api_key: "test-kie-key",
  functions_base_url: "https://fn.invalid/functions/v1",
  finalize_credential: "test-finalize",
});

type Db = Awaited<ReturnType<typeof sql.reserve>>;

beforeAll(() => testBed.setUp());
afterAll(() => testBed.tearDown().finally(() => sql.end({ timeout: 5 })));

/** Runs `work` with no create token free, so a job it starts stays waiting. */
async function withoutCreateTokens<T>(work: () => Promise<T>): Promise<T> {
  // As text: a free slot may be '-infinity', which a Date cannot hold.
  const saved = await sql<{ slot: number; available_at: string }[]>`
    select slot, available_at::text from private.rate_slots where bucket = 'create'`;
  await sql`update private.rate_slots set available_at = 'infinity' where bucket = 'create'`;
  try {
    return await work();
  } finally {
    for (const { slot, available_at } of saved) {
      await sql`update private.rate_slots set available_at = ${available_at}::text::timestamptz where bucket = 'create' and slot = ${slot}`;
    }
  }
}

async function start(owner: string, quality = "fast"): Promise<string> {
  const [job] = await sql.begin(async (tx) => {
    await asUser(tx, owner);
    return tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a kiln at night', quality => ${quality})`;
  });
  return job.id;
}

/** A job that waits for the dispatch tick: no create token was free when it started. */
function waitingJob(owner: string): Promise<string> {
  return withoutCreateTokens(() => start(owner));
}

/** A job KIE accepted (its createTask answered with task-<job id>), running in stage generating. */
async function generatingJob(owner: string): Promise<string> {
  await sql`update private.rate_slots set available_at = '-infinity' where bucket = 'create'`;
  const jobId = await start(owner);
  await sql`
    insert into net._http_response (id, status_code, content)
    select r.net_request_id, 200, json_build_object('code', 200, 'data', json_build_object('taskId', 'task-' || r.job_id))::text
      from private.requests r where r.job_id = ${jobId} and r.kind = 'create'`;
  await sql`select private.reconcile_tick()`;
  const [{ stage }] = await sql<{ stage: string }[]>`select stage from private.job_pipeline where job_id = ${jobId}`;
  if (stage !== "generating") throw new Error(`setup: job ${jobId} is ${stage}`);
  return jobId;
}

/** The job's state and money, and whether its owner's balance is the sum of their ledger. */
async function accountOf(jobId: string) {
  const [row] = await sql<{
    status: string;
    stage: string;
    pipeline: string;
    result_urls: string[];
    debits: number;
    refunds: number;
    creates: number;
    balanced: boolean;
  }[]>`
    select j.status, j.stage, p.stage as pipeline, j.result_urls,
           (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'debit') as debits,
           (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds,
           (select count(*)::int from private.requests r where r.job_id = j.id and r.kind = 'create') as creates,
           (select pr.credits = coalesce(sum(l.amount), 0) from public.credit_ledger l where l.user_id = pr.id) as balanced
      from public.generation_jobs j
      join private.job_pipeline p on p.job_id = j.id
      join public.profiles pr on pr.id = j.user_id
     where j.id = ${jobId}`;
  return row;
}

async function pidOf(db: Db): Promise<number> {
  const [{ pid }] = await db<{ pid: number }[]>`select pg_backend_pid() as pid`;
  return pid;
}

/**
 * `first` runs in a transaction on one connection and stays open; `second` starts on another and
 * is seen waiting for a lock; then `first` commits. Each side's outcome, value or error code.
 */
async function secondWaitsForFirst(first: (db: Db) => Promise<unknown>, second: (db: Db) => Promise<unknown>) {
  const [one, two] = [await sql.reserve(), await sql.reserve()];
  try {
    const twoPid = await pidOf(two);
    await one`begin`;
    const firstOutcome = await settle(first(one));
    if (!firstOutcome.ok) throw new Error(`the first call failed: ${firstOutcome.code} ${firstOutcome.message}`);
    const secondOutcome = settle(second(two));
    await blockedOnALock(sql, twoPid);
    await one`commit`;
    return { first: firstOutcome, second: await secondOutcome };
  } finally {
    await one`rollback`.catch(() => {}); // a no-op after the commit
    one.release();
    two.release();
  }
}

/**
 * `first` runs in a transaction on one connection and stays open; `second` runs on another with
 * a lock timeout, so if it waited for `first` it fails with 55P03 instead of hanging; then `first`
 * commits.
 */
async function secondPassesFirst(first: (db: Db) => Promise<unknown>, second: (db: Db) => Promise<unknown>) {
  const [one, two] = [await sql.reserve(), await sql.reserve()];
  try {
    await one`begin`;
    const firstOutcome = await settle(first(one));
    if (!firstOutcome.ok) throw new Error(`the first call failed: ${firstOutcome.code} ${firstOutcome.message}`);
    const secondOutcome = await settle(inTransaction(two, async () => {
      await two`set local lock_timeout = '3s'`;
      return second(two);
    }));
    await one`commit`;
    return { first: firstOutcome, second: secondOutcome };
  } finally {
    await one`rollback`.catch(() => {});
    one.release();
    two.release();
  }
}

describe("a cancel racing the dispatch tick's claim of the same waiting job", () => {
  it("the tick sends it first: the cancel waits, then gets KL023; no refund for a job KIE is given", async () => {
    const owner = await plan.signUp({ credits: 10 });
    const jobId = await waitingJob(owner);
    await sql`update private.rate_slots set available_at = '-infinity' where bucket = 'create'`;

    const outcome = await secondWaitsForFirst(
      (tick) => tick`select private.dispatch_tick() as sent`,
      (user) => inTransaction(user, () => user`select public.cancel_generation(${jobId})`, owner),
    );

    expect(outcome.first).toMatchObject({ ok: true });
    expect(outcome.second).toMatchObject({ ok: false, code: "KL023" });
    expect(await accountOf(jobId)).toEqual({
      status: "pending", stage: "queued", pipeline: "creating", result_urls: [],
      debits: 1, refunds: 0, creates: 1, balanced: true,
    });
  });

  it("the cancel claims it first: the tick passes over it without waiting; cancelled, refunded once, never sent", async () => {
    const owner = await plan.signUp({ credits: 10 });
    const jobId = await waitingJob(owner);
    await sql`update private.rate_slots set available_at = '-infinity' where bucket = 'create'`;

    const outcome = await secondPassesFirst(
      async (user) => {
        await asUser(user as never, owner);
        return user`select public.cancel_generation(${jobId})`;
      },
      (tick) => tick`select private.dispatch_tick() as sent`,
    );

    expect(outcome.second).toMatchObject({ ok: true });
    await sql`select private.dispatch_tick()`; // and a later tick does not send it either
    expect(await accountOf(jobId)).toEqual({
      status: "failed", stage: "cancelled", pipeline: "failed", result_urls: [],
      debits: 1, refunds: 1, creates: 0, balanced: true,
    });
  });
});

describe("the deadline sweep racing a late success callback of the same job", () => {
  /** A running job past its deadline whose final poll is long answered: the sweep fails it. */
  async function overdueJob(owner: string): Promise<string> {
    const jobId = await generatingJob(owner);
    await sql`update private.job_pipeline set deadline_at = now() - interval '1 hour', final_poll_at = now() - interval '1 hour'
               where job_id = ${jobId}`;
    return jobId;
  }

  it("the sweep times it out first: the callback waits, then is a duplicate; failed, refunded once, no results", async () => {
    const owner = await plan.signUp({ credits: 10 });
    const jobId = await overdueJob(owner);

    const outcome = await secondWaitsForFirst(
      (sweep) => sweep`select private.deadline_tick() as failed`,
      (callback) =>
        inTransaction(callback, () =>
          callback`select private.callback_complete(${jobId}, 1, ${`task-${jobId}`}, array[${`generated-images/${owner}/${jobId}/d/late.png`}]) as answer`),
    );

    expect(outcome.second).toEqual({ ok: true, value: [{ answer: "duplicate" }] });
    expect(await accountOf(jobId)).toEqual({
      status: "failed", stage: "failed", pipeline: "failed", result_urls: [],
      debits: 1, refunds: 1, creates: 1, balanced: true,
    });
    const late = await sql`select source, outcome from private.late_results where job_id = ${jobId}`;
    expect(late).toEqual([{ source: "complete", outcome: "success" }]);
  });

  it("the callback completes it first: the sweep passes over it without waiting; completed, never refunded", async () => {
    const owner = await plan.signUp({ credits: 10 });
    const jobId = await overdueJob(owner);
    const paths = [`generated-images/${owner}/${jobId}/d/0.png`];

    const outcome = await secondPassesFirst(
      (callback) => callback`select private.callback_complete(${jobId}, 1, ${`task-${jobId}`}, ${paths}) as answer`,
      (sweep) => sweep`select private.deadline_tick() as failed`,
    );

    expect(outcome.first).toEqual({ ok: true, value: [{ answer: "applied" }] });
    expect(outcome.second).toMatchObject({ ok: true });
    await sql`select private.deadline_tick()`; // and a later sweep leaves it completed
    expect(await accountOf(jobId)).toEqual({
      status: "completed", stage: "completed", pipeline: "completed", result_urls: paths,
      debits: 1, refunds: 0, creates: 1, balanced: true,
    });
  });
});

describe("an operator's change to an account racing the user's start", () => {
  /** What a fast text-to-image start costs, and the user's balance. */
  async function priceAndBalance(owner: string) {
    const [row] = await sql<{ price: number; balance: number }[]>`
      select (select credit_cost from public.models where mode = 'text-to-image' and quality = 'fast' and is_active) as price,
             (select credits from public.profiles where id = ${owner}) as balance`;
    return row;
  }

  it("a downgrade to free made first: the start waits for it, then is refused the paid quality (KL004), nothing charged", async () => {
    const owner = await plan.signUp({ credits: 10 });
    const { balance } = await priceAndBalance(owner);
    const outcome = await secondWaitsForFirst(
      async (operator) => {
        await asServiceRole(operator as never);
        return operator`select plan from public.set_plan(${owner}, 'free')`;
      },
      (user) =>
        inTransaction(user, () => user`select id from public.start_generation(prompt => 'a kiln at dawn', quality => 'standard')`, owner),
    );

    expect(outcome.first).toEqual({ ok: true, value: [{ plan: "free" }] });
    expect(outcome.second).toMatchObject({ ok: false, code: "KL004" });
    const [left] = await sql`
      select p.plan, p.credits, (select count(*)::int from public.generation_jobs j where j.user_id = p.id) as jobs,
             (select sum(amount)::int from public.credit_ledger l where l.user_id = p.id) as ledger
        from public.profiles p where p.id = ${owner}`;
    expect(left).toEqual({ plan: "free", credits: balance, jobs: 0, ledger: balance });
  });

  it("an adjustment down made first: the start waits for it, then is refused for the balance left (KL020); never below zero", async () => {
    const owner = await plan.signUp({ credits: 10 });
    const { price, balance } = await priceAndBalance(owner);
    const outcome = await secondWaitsForFirst(
      async (operator) => {
        await asServiceRole(operator as never);
        return operator`select balance_after from public.grant_credits(${owner}, ${-(balance - price + 1)}, 'Chargeback')`;
      },
      (user) => inTransaction(user, () => user`select id from public.start_generation(prompt => 'a kiln at noon')`, owner),
    );

    expect(outcome.first).toEqual({ ok: true, value: [{ balance_after: price - 1 }] });
    expect(outcome.second).toMatchObject({ ok: false, code: "KL020" });
    const [left] = await sql`
      select p.credits, (select count(*)::int from public.generation_jobs j where j.user_id = p.id) as jobs,
             (select sum(amount)::int from public.credit_ledger l where l.user_id = p.id) as ledger
        from public.profiles p where p.id = ${owner}`;
    expect(left).toEqual({ credits: price - 1, jobs: 0, ledger: price - 1 });
  });

  it("a start made first: an adjustment it leaves no room for waits for it, then is refused (KL020); the start keeps its job", async () => {
    const owner = await plan.signUp({ credits: 10 });
    const { price, balance } = await priceAndBalance(owner);
    const outcome = await secondWaitsForFirst(
      async (user) => {
        await asUser(user as never, owner);
        return user`select id from public.start_generation(prompt => 'a kiln at noon')`;
      },
      (operator) =>
        inTransaction(operator, async () => {
          await asServiceRole(operator as never);
          return operator`select balance_after from public.grant_credits(${owner}, ${-(balance - price + 1)}, 'Chargeback')`;
        }),
    );

    expect(outcome.first).toMatchObject({ ok: true });
    expect(outcome.second).toMatchObject({ ok: false, code: "KL020" });
    const [left] = await sql`
      select p.credits, (select count(*)::int from public.generation_jobs j where j.user_id = p.id) as jobs,
             (select sum(amount)::int from public.credit_ledger l where l.user_id = p.id) as ledger
        from public.profiles p where p.id = ${owner}`;
    expect(left).toEqual({ credits: balance - price, jobs: 1, ledger: balance - price });
  });
});

describe("an account deletion racing the results-retention tick over the account's expired results", () => {
  /** A user with one completed job whose results are due to expire. */
  async function accountWithExpiredResults(): Promise<{ owner: string; jobId: string }> {
    const owner = await plan.signUp({ credits: 10 });
    const jobId = await generatingJob(owner);
    await sql`select private.callback_complete(${jobId}, 1, ${`task-${jobId}`}, array[${`generated-images/${owner}/${jobId}/d/0.png`}])`;
    await sql`update private.job_pipeline set results_expire_at = now() - interval '1 minute' where job_id = ${jobId}`;
    return { owner, jobId };
  }

  async function whatIsLeftOf(owner: string) {
    const [left] = await sql<{ profiles: number; jobs: number; result_purges: number; account_purges: number }[]>`
      select (select count(*)::int from public.profiles where id = ${owner}) as profiles,
             (select count(*)::int from public.generation_jobs where user_id = ${owner}) as jobs,
             (select count(*)::int from private.result_purges where user_id = ${owner}) as result_purges,
             (select count(*)::int from private.storage_purges where user_id = ${owner} and reason = 'account_deleted') as account_purges`;
    return left;
  }

  const retentionErrorRaised = async () =>
    (await sql<{ raised: boolean }[]>`
      select exists (select from private.alerts where key = 'retention_error' and cleared_at is null) as raised`)[0].raised;

  it("the deletion runs first: the tick passes over the account's rows without waiting, and no part of it fails", async () => {
    const { owner } = await accountWithExpiredResults();
    await sql`select private.results_retention_tick()`; // anything else due now is handled before the race
    await sql`update private.job_pipeline p set results_expire_at = now() - interval '1 minute'
                from public.generation_jobs j where j.id = p.job_id and j.user_id = ${owner}`;
    expect(await retentionErrorRaised()).toBe(false);

    const outcome = await secondPassesFirst(
      (admin) => admin`delete from auth.users where id = ${owner}`,
      (tick) => tick`select private.results_retention_tick()`,
    );

    expect(outcome.second).toMatchObject({ ok: true });
    // Each part runs in a subtransaction of its own: one that had waited past the lock timeout
    // would show here, as the retention_error alert.
    expect(await retentionErrorRaised()).toBe(false);
    expect(await whatIsLeftOf(owner)).toEqual({ profiles: 0, jobs: 0, result_purges: 0, account_purges: 2 });
  });
});
