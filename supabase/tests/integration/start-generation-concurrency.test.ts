import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asServiceRole, asUser, atOnce, blockedOnALock, errorCodes, fulfilled, type Tx } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { testPlan } from "./support/plans.ts";

// start_generation under real concurrency: many transactions, each on its own connection, call it
// at the same instant exactly as PostgREST would (`set local role authenticated` plus the JWT
// claims). The balance must never be spent twice, an idempotency key must never make two jobs,
// and the plan's limits hold exactly.

const CALLS = 100;
const AFFORDABLE = 10;
const SAME_KEY_CALLS = 20;
const LIMIT_CALLS = 40;

// One connection per simultaneous transaction, plus one for setup and checks.
const sql = connect({ max: CALLS + 1 });

// A plan of our own with limits that never get in the way, so only the balance decides.
const plan = testPlan(sql, "loadtest", "Load test", 100000);
let price = 0;
let free = { maxActiveJobs: 0, startsPerMinute: 0 };

/** Brings the balance to exactly `target` through the ledger (grant_credits), never by hand. */
async function setBalance(userId: string, target: number): Promise<void> {
  const [{ credits }] = await sql<{ credits: number }[]>`select credits from public.profiles where id = ${userId}`;
  if (credits !== target) {
    await sql.begin(async (tx) => (await asServiceRole(tx), tx`select public.grant_credits(${userId}, ${target - credits}, 'Load test balance')`));
  }
}

/** `count` transactions that each start a generation for the user at the same instant. */
function startAtOnce(userId: string, count: number, args: (i: number) => { prompt: string; idempotencyKey?: string }) {
  return atOnce(
    sql,
    count,
    async (tx, i) => {
      const { prompt, idempotencyKey = null } = args(i);
      const [job] = await tx<{ id: string }[]>`
        select * from public.start_generation(prompt => ${prompt}, idempotency_key => ${idempotencyKey})`;
      return job;
    },
    (tx) => asUser(tx, userId),
  );
}

async function startAndCancel(userId: string, prompt: string): Promise<void> {
  await sql.begin(async (tx) => {
    await asUser(tx, userId);
    const [job] = await tx<{ id: string }[]>`select * from public.start_generation(prompt => ${prompt})`;
    await tx`select public.cancel_generation(${job.id})`;
  });
}

beforeAll(async () => {
  const [model] = await sql<{ credit_cost: number }[]>`
    select credit_cost from public.models where mode = 'text-to-image' and quality = 'fast' and is_active`;
  if (!model) throw new Error("no active text-to-image fast model to start generations with");
  price = model.credit_cost;
  const [limits] = await sql<{ max_active_jobs: number; starts_per_minute: number }[]>`
    select max_active_jobs, starts_per_minute from public.plans where id = 'free'`;
  free = { maxActiveJobs: limits.max_active_jobs, startsPerMinute: limits.starts_per_minute };
  await plan.create();
});

afterAll(async () => {
  try {
    await plan.drop();
  } finally {
    await sql.end({ timeout: 5 });
  }
});

describe("start_generation under concurrency", () => {
  it(`lets exactly ${AFFORDABLE} of ${CALLS} simultaneous starts spend a balance worth ${AFFORDABLE}`, async () => {
    const userId = await plan.signUp();
    await setBalance(userId, AFFORDABLE * price);

    const results = await startAtOnce(userId, CALLS, (i) => ({ prompt: `load test ${i}` }));

    const created = fulfilled(results).map((job) => job.id);
    const codes = errorCodes(results);
    expect(created).toHaveLength(AFFORDABLE);
    expect(new Set(created).size).toBe(AFFORDABLE);
    expect(codes).toHaveLength(CALLS - AFFORDABLE);
    expect(new Set(codes)).toEqual(new Set(["KL020"]));

    const [profile] = await sql<{ credits: number; ledger_sum: number; debits: number }[]>`
      select p.credits,
             (select sum(amount)::int from public.credit_ledger where user_id = p.id) as ledger_sum,
             (select count(*)::int from public.credit_ledger where user_id = p.id and kind = 'debit') as debits
        from public.profiles p where p.id = ${userId}`;
    expect(profile).toEqual({ credits: 0, ledger_sum: 0, debits: AFFORDABLE });

    const jobs = await sql<{ id: string; credits_charged: number; status: string }[]>`
      select id, credits_charged, status from public.generation_jobs where user_id = ${userId} order by id`;
    expect(jobs.map((job) => job.id)).toEqual([...created].sort());
    expect(jobs.every((job) => job.credits_charged === price && job.status === "pending")).toBe(true);

    // Each debit names one of the jobs and the chain has no gaps: balances fall by one price each time.
    const debits = await sql<{ job_id: string; balance_after: number }[]>`
      select job_id, balance_after from public.credit_ledger where user_id = ${userId} and kind = 'debit' order by id`;
    expect(debits.map((debit) => debit.job_id).sort()).toEqual([...created].sort());
    expect(debits.map((debit) => debit.balance_after)).toEqual(
      Array.from({ length: AFFORDABLE }, (_, i) => (AFFORDABLE - 1 - i) * price),
    );
  });

  it(`makes one job and one debit from ${SAME_KEY_CALLS} simultaneous starts with the same idempotency key`, async () => {
    const userId = await plan.signUp();
    await setBalance(userId, 5 * price);
    const key = `same-key-${plan.id}`; // unique to this run, as the plan id is

    const results = await startAtOnce(userId, SAME_KEY_CALLS, () => ({ prompt: "one lighthouse", idempotencyKey: key }));

    expect(errorCodes(results)).toEqual([]);
    const returned = fulfilled(results).map((job) => job.id);
    expect(returned).toHaveLength(SAME_KEY_CALLS);
    expect(new Set(returned).size).toBe(1);

    const jobs = await sql<{ id: string }[]>`select id from public.generation_jobs where user_id = ${userId}`;
    expect(jobs.map((job) => job.id)).toEqual([returned[0]]);
    const [ledger] = await sql<{ credits: number; debits: number; ledger_sum: number }[]>`
      select p.credits,
             (select count(*)::int from public.credit_ledger where user_id = p.id and kind = 'debit') as debits,
             (select sum(amount)::int from public.credit_ledger where user_id = p.id) as ledger_sum
        from public.profiles p where p.id = ${userId}`;
    expect(ledger).toEqual({ credits: 4 * price, debits: 1, ledger_sum: 4 * price });
  });
});

// The free plan's real limits (read from plans, not lifted), raced by one free user with credits
// to spare, so only the limit under test can decide.
describe("the free plan's limits under concurrency", () => {
  it(`lets exactly max_active_jobs of ${LIMIT_CALLS} simultaneous starts through; the rest get KL017`, async () => {
    expect(free.maxActiveJobs).toBeLessThan(free.startsPerMinute); // else the window would decide
    const userId = await plan.signUp({ plan: "free" });
    await setBalance(userId, LIMIT_CALLS * price);

    const results = await startAtOnce(userId, LIMIT_CALLS, (i) => ({ prompt: `active limit ${i}` }));

    expect(fulfilled(results)).toHaveLength(free.maxActiveJobs);
    expect(errorCodes(results)).toEqual(Array(LIMIT_CALLS - free.maxActiveJobs).fill("KL017"));
    const [counts] = await sql<{ active: number; debits: number }[]>`
      select (select count(*)::int from public.generation_jobs where user_id = ${userId} and status in ('pending', 'generating')) as active,
             (select count(*)::int from public.credit_ledger where user_id = ${userId} and kind = 'debit') as debits`;
    expect(counts).toEqual({ active: free.maxActiveJobs, debits: free.maxActiveJobs });
  });

  it(`lets the last start of the minute's window through once among ${LIMIT_CALLS}; the rest get KL018`, async () => {
    // Cancelled starts still count in the window but not as active, so the window decides.
    const userId = await plan.signUp({ plan: "free" });
    await setBalance(userId, LIMIT_CALLS * price);
    for (let i = 0; i < free.startsPerMinute - 1; i++) await startAndCancel(userId, `earlier start ${i}`);

    const results = await startAtOnce(userId, LIMIT_CALLS, (i) => ({ prompt: `window limit ${i}` }));

    expect(fulfilled(results)).toHaveLength(1);
    expect(errorCodes(results)).toEqual(Array(LIMIT_CALLS - 1).fill("KL018"));
    const [{ in_window }] = await sql<{ in_window: number }[]>`
      select count(*)::int as in_window from public.generation_jobs
       where user_id = ${userId} and created_at > now() - interval '1 minute'`;
    expect(in_window).toBe(free.startsPerMinute);
  });
});

// A second retry of one failed job, asked while the first is still open, waits for it and then
// returns the same retry (retry_generation locks the failed job), rather than racing it into the
// one-retry-per-job unique index. Deterministic: the second call starts only once the first has
// made its retry, and the first commits only once the second waits for a lock.
describe("retry_generation under concurrency", () => {
  it("a retry asked while another is open waits and returns the same retry", async () => {
    const userId = await plan.signUp();
    await setBalance(userId, 5 * price);
    const [failed] = await sql.begin(async (tx) => {
      await asUser(tx, userId);
      const [job] = await tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a retried lighthouse')`;
      await tx`select public.cancel_generation(${job.id})`;
      return [job];
    });
    const first = await sql.reserve();
    const second = await sql.reserve();
    try {
      const [{ pid }] = await second<{ pid: number }[]>`select pg_backend_pid() as pid`;
      await first`begin`;
      await asUser(first as unknown as Tx, userId);
      const [retry] = await first<{ id: string }[]>`select id from public.retry_generation(${failed.id})`;
      const secondCall = (async () => {
        await second`begin`;
        try {
          await asUser(second as unknown as Tx, userId);
          const [row] = await second<{ id: string }[]>`select id from public.retry_generation(${failed.id})`;
          await second`commit`;
          return { id: row.id, code: null as string | null };
        } catch (error) {
          await second`rollback`;
          return { id: null, code: (error as { code?: string }).code ?? "?" };
        }
      })();
      await blockedOnALock(sql, pid); // until the second call waits for the first's lock
      await first`commit`;
      expect(await secondCall).toEqual({ id: retry.id, code: null });
    } finally {
      await first`rollback`.catch(() => {}); // a no-op after the commit
      first.release();
      second.release();
    }
    const retries = await sql`select id from public.generation_jobs where retry_of = ${failed.id}`;
    expect(retries).toHaveLength(1);
  });
});
