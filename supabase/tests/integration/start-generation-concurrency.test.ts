import { randomUUID } from "node:crypto";
import type { TransactionSql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// start_generation under real concurrency: many transactions, each on its own connection, call it
// at the same instant exactly as PostgREST would (`set local role authenticated` plus the JWT
// claims). The balance must never be spent twice and an idempotency key must never make two jobs.

const CALLS = 100;
const AFFORDABLE = 10;
const SAME_KEY_CALLS = 20;

// One connection per simultaneous transaction, plus one for setup and checks.
const sql = connect({ max: CALLS + 1 });

const suffix = randomUUID().replaceAll("-", "").slice(0, 12);
// A plan of our own with limits that never get in the way, so only the balance decides.
const planId = `loadtest_${suffix}`;
const users: string[] = [];
let price = 0;

type Settled<T> = PromiseSettledResult<T>;

/** Resolves for everyone once `parties` callers are waiting; rejects them all after the deadline. */
function barrier(parties: number, timeoutMs = 15_000): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  let fail!: (error: Error) => void;
  const open = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  open.catch(() => {}); // observed by each waiter
  const timer = setTimeout(() => fail(new Error(`only ${arrived} of ${parties} transactions started`)), timeoutMs);
  return async () => {
    arrived += 1;
    if (arrived === parties) {
      clearTimeout(timer);
      release();
    }
    await open;
  };
}

/** A signed-up user (the signup trigger gives the profile and welcome grant) on our plan. */
async function createUser(): Promise<string> {
  const id = randomUUID();
  users.push(id);
  await sql`
    insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values (${id}, 'authenticated', 'authenticated', ${`load-${id}@test.kiln.local`},
            '{"provider": "email", "providers": ["email"]}', '{}', now(), now())`;
  await asServiceRole((tx) => tx`select public.set_plan(${id}, ${planId})`);
  return id;
}

/** Runs `work` in a transaction as the service role (an operator), as PostgREST would. */
async function asServiceRole<T>(work: (tx: TransactionSql<Record<string, unknown>>) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    await tx`set local role service_role`;
    await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
    return work(tx);
  })) as T;
}

/** Brings the balance to exactly `target` through the ledger (grant_credits), never by hand. */
async function setBalance(userId: string, target: number): Promise<void> {
  const [{ credits }] = await sql<{ credits: number }[]>`select credits from public.profiles where id = ${userId}`;
  if (credits !== target) {
    await asServiceRole((tx) => tx`select public.grant_credits(${userId}, ${target - credits}, 'Load test balance')`);
  }
}

/** `count` transactions that each start a generation for the user at the same instant. */
async function startAtOnce(
  userId: string,
  count: number,
  args: (i: number) => { prompt: string; idempotencyKey?: string },
): Promise<Settled<{ id: string }>[]> {
  const claims = JSON.stringify({ sub: userId, role: "authenticated", aud: "authenticated" });
  const allStarted = barrier(count);
  return Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      sql.begin(async (tx) => {
        await tx`set local role authenticated`;
        await tx`select set_config('request.jwt.claims', ${claims}, true)`;
        await allStarted(); // every transaction is open on its own connection before anyone calls
        const { prompt, idempotencyKey = null } = args(i);
        const [job] = await tx<{ id: string }[]>`
          select * from public.start_generation(prompt => ${prompt}, idempotency_key => ${idempotencyKey})`;
        return job;
      }) as Promise<{ id: string }>
    ),
  );
}

function errorCodes(results: Settled<unknown>[]): string[] {
  return results
    .filter((result): result is PromiseRejectedResult => result.status === "rejected")
    .map((result) => String((result.reason as { code?: string }).code ?? result.reason));
}

function jobIds(results: Settled<{ id: string }>[]): string[] {
  return results
    .filter((result): result is PromiseFulfilledResult<{ id: string }> => result.status === "fulfilled")
    .map((result) => result.value.id);
}

beforeAll(async () => {
  const [model] = await sql<{ credit_cost: number }[]>`
    select credit_cost from public.models where mode = 'text-to-image' and quality = 'fast' and is_active`;
  if (!model) throw new Error("no active text-to-image fast model to start generations with");
  price = model.credit_cost;
  const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
  await sql`
    insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
    values (${planId}, 'Load test', ${rank}, 100000, 100000, 0, true)`;
});

afterAll(async () => {
  try {
    // Deleting the accounts removes their profiles, jobs and ledgers (the cascade the ledger allows).
    if (users.length > 0) await sql`delete from auth.users where id = any(${users}::uuid[])`;
    await sql`delete from public.plans where id = ${planId}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
});

describe("start_generation under concurrency", () => {
  it(`lets exactly ${AFFORDABLE} of ${CALLS} simultaneous starts spend a balance worth ${AFFORDABLE}`, async () => {
    const userId = await createUser();
    await setBalance(userId, AFFORDABLE * price);

    const results = await startAtOnce(userId, CALLS, (i) => ({ prompt: `load test ${i}` }));

    const created = jobIds(results);
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
    const userId = await createUser();
    await setBalance(userId, 5 * price);
    const key = `same-key-${suffix}`;

    const results = await startAtOnce(userId, SAME_KEY_CALLS, () => ({ prompt: "one lighthouse", idempotencyKey: key }));

    expect(errorCodes(results)).toEqual([]);
    const returned = jobIds(results);
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
