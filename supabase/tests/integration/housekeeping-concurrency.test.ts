import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asUser } from "./support/concurrency.ts";
import { pauseCronJobs } from "./support/cron.ts";
import { connect } from "./support/db.ts";
import { testPlan } from "./support/plans.ts";

// Two releases of orphaned rate tokens at once (an operator's housekeeping run beside pg_cron's):
// together they free only the held tokens no request stands for, never a token of a request
// still on its way to KIE.
const sql = connect({ max: 4 });
const plan = testPlan(sql, "orphantokens", "Orphaned tokens test", 10);
// The file plays both runs itself; the other ticks would take and hold tokens in between.
let resumeCronJobs = async () => {};
let savedSlots: { slot: number; available_at: string }[] = [];

beforeAll(async () => {
  resumeCronJobs = await pauseCronJobs(sql, "kiln-%");
  await plan.create();
  savedSlots = await sql<{ slot: number; available_at: string }[]>`
    select slot, available_at::text from private.rate_slots where bucket = 'poll'`;
});

afterAll(async () => {
  try {
    await sql`
      update private.rate_slots s set available_at = v.available_at::timestamptz
        from jsonb_to_recordset(${sql.json(savedSlots)}) as v (slot integer, available_at text)
       where s.bucket = 'poll' and s.slot = v.slot`;
    await sql`delete from private.requests where kind = 'poll' and net_request_id between -2000000 and -1000000`;
    await plan.drop();
  } finally {
    try {
      await resumeCronJobs();
    } finally {
      await sql.end();
    }
  }
});

/** Held poll tokens, and what stands for them (release_orphaned_tokens' own count). */
async function pollTokens(): Promise<{ held: number; standing: number }> {
  const [row] = await sql<{ held: number; standing: number }[]>`
    select (select count(*)::int from private.rate_slots where bucket = 'poll' and available_at = 'infinity') as held,
           (select count(*)::int from private.requests where kind = 'poll' and resolved_at is null)
         + (select count(*)::int from net.http_request_queue nq
             where private.kie_request_kind(nq.url) = 'poll'
               and not exists (select 1 from private.requests q
                                where q.net_request_id = nq.id and q.kind = 'poll' and q.resolved_at is null)) as standing`;
  return row;
}

describe("overlapping releases of orphaned tokens", () => {
  it("a second release waits for the first and frees nothing a live request holds", async () => {
    const userId = await plan.signUp({ credits: 10 });
    const [job] = await sql.begin(async (tx) => {
      await asUser(tx, userId);
      return tx<{ id: string }[]>`select id from public.start_generation(prompt => 'an orphaned token race')`;
    });
    // Two polls of the job still unanswered (queued in a far future, so no tick declares them lost).
    await sql`
      insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms)
      select ${job.id}, 1, 'poll', -1000000 - g, '2100-01-01 00:00:00+00', 5000 from generate_series(1, 2) g`;
    const { standing } = await pollTokens();
    expect(standing).toBeGreaterThanOrEqual(2);
    // Two more tokens held than requests stand for.
    await sql`update private.rate_slots set available_at = '-infinity' where bucket = 'poll'`;
    await sql`update private.rate_slots set available_at = 'infinity' where bucket = 'poll' and slot <= ${standing + 2}`;

    let second: Promise<{ released: number }[]> | undefined;
    const first = await sql.begin(async (tx) => {
      const [{ released }] = await tx<{ released: number }[]>`select private.release_orphaned_tokens() as released`;
      // The second run starts while the first has not committed: it either waits for the first
      // (seen as an ungranted advisory lock) or finishes on its own.
      const [{ pid }] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const running = sql<{ released: number }[]>`select private.release_orphaned_tokens() as released`.execute();
      second = running;
      let finished = false;
      running.then(() => (finished = true), () => (finished = true));
      for (;;) {
        if (finished) break;
        const [{ waiting }] = await sql<{ waiting: boolean }[]>`
          select exists (select from pg_catalog.pg_locks l
                          where l.locktype = 'advisory' and not l.granted and l.pid <> ${pid}) as waiting`;
        if (waiting) break;
      }
      return released;
    });
    const [{ released: secondReleased }] = await second!;

    expect(first).toBe(2);
    expect(secondReleased).toBe(0);
    expect(await pollTokens()).toEqual({ held: standing, standing });
  });
});
