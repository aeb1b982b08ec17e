import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asUser, barrier, type Tx } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { dispatchTestBed } from "./support/dispatch.ts";
import { testPlan } from "./support/plans.ts";

// The dispatch trigger under real concurrency: a tick that holds every createTask token (an open
// transaction with the bucket's slots locked) must not make starts wait. Each start skips the
// busy slots (`skip locked`), commits at once and leaves its job to the dispatch tick.

const STARTS = 40;
const sql = connect({ max: STARTS + 2 });
const plan = testPlan(sql, "dispatch", "Dispatch test", 1000);
const testBed = dispatchTestBed(sql, plan, {
  kie_api_key: "test-kie-key",
  functions_base_url: "https://fn.invalid/functions/v1",
});

/**
 * The users each start a generation at the same instant, as PostgREST would. A start that waits
 * for a lock longer than `lock_timeout` fails (55P03) instead of finishing late: the test asserts
 * on waiting, never on elapsed time, which a busy machine stretches.
 */
async function startAtOnce(userIds: string[]): Promise<{ id: string }[]> {
  const allOpen = barrier(userIds.length);
  return Promise.all(
    userIds.map(
      (userId) =>
        sql.begin(async (tx: Tx) => {
          await asUser(tx, userId);
          await tx`set local lock_timeout = '5s'`;
          await allOpen();
          const [job] = await tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a quiet harbour')`;
          return { id: job.id };
        }) as Promise<{ id: string }>,
    ),
  );
}

beforeAll(async () => {
  await testBed.setUp();
  for (let i = 0; i < STARTS; i++) await plan.signUp({ credits: 100 });
});

afterAll(() => testBed.tearDown().finally(() => sql.end({ timeout: 5 })));

describe("dispatch trigger under concurrency", () => {
  it(`never makes ${STARTS} simultaneous starts wait while a tick holds the whole create budget`, async () => {
    await sql`update private.rate_slots set available_at = '-infinity' where bucket = 'create'`;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    // The "tick": every create slot locked in an open transaction until we release it.
    const tick = sql.begin(async (tx) => {
      await tx`select slot from private.rate_slots where bucket = 'create' for update`;
      locked();
      await held;
    });
    await lockTaken;

    // The tick's transaction ends only after every start returned: a start that waited for the
    // bucket would wait for good, and fails on its lock_timeout instead.
    const results = await startAtOnce(plan.users.slice(0, STARTS)).finally(release);
    await tick;

    expect(results).toHaveLength(STARTS);

    const stages = await sql<{ stage: string; n: number }[]>`
      select p.stage, count(*)::int as n from private.job_pipeline p
       where p.job_id = any(${results.map((r) => r.id)}::uuid[]) group by p.stage`;
    expect(stages).toEqual([{ stage: "waiting", n: STARTS }]);

    // Once the tick lets go, the dispatch tick sends them, one createTask each. (The tick may also
    // send other suites' waiting jobs: count only ours.)
    await sql`select private.dispatch_tick()`;
    const [{ creating }] = await sql<{ creating: number }[]>`
      select count(*)::int as creating from private.job_pipeline p
       where p.job_id = any(${results.map((r) => r.id)}::uuid[]) and p.stage = 'creating'`;
    expect(creating).toBe(STARTS);
    const [{ creates }] = await sql<{ creates: number }[]>`
      select count(*)::int as creates from private.requests r
       where r.job_id = any(${results.map((r) => r.id)}::uuid[]) and r.kind = 'create'`;
    expect(creates).toBe(STARTS);
  });

  it("hands simultaneous starts distinct tokens when the budget is free, never more than the budget", async () => {
    await sql`update private.rate_slots set available_at = '-infinity' where bucket = 'create'`;
    await sql`update private.settings set value = '10' where key = 'dispatch.create_per_window'`;
    const fresh: string[] = [];
    for (let i = 0; i < 20; i++) fresh.push(await plan.signUp({ credits: 100 }));
    const results = await startAtOnce(fresh);
    await sql`update private.settings set value = '200' where key = 'dispatch.create_per_window'`;

    const [{ creating, waiting }] = await sql<{ creating: number; waiting: number }[]>`
      select count(*) filter (where p.stage = 'creating')::int as creating,
             count(*) filter (where p.stage = 'waiting')::int as waiting
        from private.job_pipeline p where p.job_id = any(${results.map((r) => r.id)}::uuid[])`;
    // Each sent job took its own slot: at most the budget went out, the rest wait for the tick.
    expect(creating).toBeGreaterThan(0);
    expect(creating).toBeLessThanOrEqual(10);
    expect(creating + waiting).toBe(20);
    const [{ used }] = await sql<{ used: number }[]>`
      select count(*)::int as used from private.rate_slots where bucket = 'create' and available_at > now()`;
    expect(used).toBe(creating);
  });
});
