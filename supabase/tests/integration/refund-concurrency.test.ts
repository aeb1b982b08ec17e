import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asServiceRole, asUser, atOnce, errorCodes, signUp } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";

// A failed job is refunded exactly once even when every path that can refund it (the timeout
// tick, a late callback, a poll) calls private.refund_job at the same instant: one refund entry,
// the balance right, and no caller sees an error (an error would abort a whole tick batch).

const CALLS = 30;
const sql = connect({ max: CALLS + 1 });
const users: string[] = [];
// A plan of our own whose limits never get in the way of starting many jobs for one user.
const planId = `refundtest_${randomUUID().replaceAll("-", "").slice(0, 12)}`;

beforeAll(async () => {
  const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
  await sql`
    insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
    values (${planId}, 'Refund test', ${rank}, 100000, 100000, 0, true)`;
});

afterAll(async () => {
  try {
    if (users.length > 0) await sql`delete from auth.users where id = any(${users}::uuid[])`;
    await sql`delete from public.plans where id = ${planId}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
});

/** A started job that the pipeline has marked failed, not refunded yet. */
async function failedJob(userId: string): Promise<{ id: string; charged: number }> {
  const [job] = await sql.begin(async (tx) => {
    await asUser(tx, userId);
    return tx<{ id: string; credits_charged: number }[]>`select * from public.start_generation(prompt => 'a refund race')`;
  });
  // As the pipeline does (it runs as the database owner): the job fails; the refund is separate.
  await sql`
    update public.generation_jobs
       set status = 'failed', stage = 'cancelled', error_code = 'provider_failed',
           error_message = 'The provider failed.', completed_at = now()
     where id = ${job.id}`;
  return { id: job.id, charged: job.credits_charged };
}

/** A signed-up user on our plan with `credits` to spend. */
async function customer(credits: number): Promise<string> {
  const userId = await signUp(sql, "refund");
  users.push(userId);
  await sql.begin(async (tx) => {
    await asServiceRole(tx);
    await tx`select public.set_plan(${userId}, ${planId})`;
    await tx`select public.grant_credits(${userId}, ${credits}, 'Refund test credits')`;
  });
  return userId;
}

async function balance(userId: string): Promise<{ credits: number; ledger_sum: number }> {
  const [row] = await sql<{ credits: number; ledger_sum: number }[]>`
    select p.credits, (select sum(amount)::int from public.credit_ledger where user_id = p.id) as ledger_sum
      from public.profiles p where p.id = ${userId}`;
  return row;
}

describe("refund_job under concurrency", () => {
  it(`refunds once when ${CALLS} transactions refund the same failed job at once`, async () => {
    const userId = await customer(10);
    const job = await failedJob(userId);
    expect(job.charged).toBeGreaterThan(0);
    const [{ credits: before }] = await sql<{ credits: number }[]>`select credits from public.profiles where id = ${userId}`;

    const results = await atOnce(sql, CALLS, (tx) => tx`select private.refund_job(${job.id}, 'Refund: provider failed')`);

    expect(errorCodes(results)).toEqual([]);
    const refunds = await sql<{ amount: number; balance_after: number }[]>`
      select amount, balance_after from public.credit_ledger where job_id = ${job.id} and kind = 'refund'`;
    expect(refunds).toEqual([{ amount: job.charged, balance_after: before + job.charged }]);
    expect(await balance(userId)).toEqual({ credits: before + job.charged, ledger_sum: before + job.charged });
  });

  it(`refunds each of ${CALLS} failed jobs of one user refunded at once, every credit accounted for`, async () => {
    const userId = await customer(CALLS * 5);
    const jobs: { id: string; charged: number }[] = [];
    for (let i = 0; i < CALLS; i++) jobs.push(await failedJob(userId));
    const before = await balance(userId);
    const charged = jobs.reduce((sum, job) => sum + job.charged, 0);

    const results = await atOnce(sql, CALLS, (tx, i) => tx`select private.refund_job(${jobs[i].id}, 'Refund: provider failed')`);

    expect(errorCodes(results)).toEqual([]);
    const [{ refunds }] = await sql<{ refunds: number }[]>`
      select count(*)::int as refunds from public.credit_ledger where user_id = ${userId} and kind = 'refund'`;
    expect(refunds).toBe(CALLS);
    expect(await balance(userId)).toEqual({ credits: before.credits + charged, ledger_sum: before.credits + charged });
  });
});
