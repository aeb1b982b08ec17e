import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// Racing transitions on one job over real connections: the deadline sweep, a late callback
// (complete_job), a provider failure and the reconcile of a poll that found the result all hit
// the same jobs at the same instant. Every job must end in exactly one terminal state, with a
// refund if and only if it failed, and never two.

const JOBS = 15;
const TICKS = 2; // each of deadline_tick and reconcile_tick runs this many times in the race
const sql = connect({ max: JOBS * 2 + TICKS * 2 + 2 });
const suffix = randomUUID().replaceAll("-", "").slice(0, 12);
const planId = `race_${suffix}`;
const users: string[] = [];
const SECRETS = ["kie_api_key", "functions_base_url", "finalize_credential"];
let savedSettings: { key: string; value: unknown }[] = [];
/** Secrets of these names that existed before (the local stack's), put back afterwards. */
let savedSecrets: { name: string; secret: string; description: string }[] = [];
let jobIds: string[] = [];

function barrier(parties: number, timeoutMs = 15_000): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  let fail!: (error: Error) => void;
  const open = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  open.catch(() => {});
  const timer = setTimeout(() => fail(new Error(`only ${arrived} of ${parties} racers started`)), timeoutMs);
  return async () => {
    arrived += 1;
    if (arrived === parties) {
      clearTimeout(timer);
      release();
    }
    await open;
  };
}

beforeAll(async () => {
  const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
  await sql`insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
            values (${planId}, 'Race test', ${rank}, 1000, 1000, 0, true)`;
  savedSettings = await sql`select key, value from private.settings where key in ('kie.base_url', 'dispatch.create_per_window')`;
  await sql`update private.settings set value = '"https://kie.invalid"' where key = 'kie.base_url'`;
  await sql`update private.settings set value = '200' where key = 'dispatch.create_per_window'`;
  await sql`update private.rate_slots set available_at = '-infinity'`;
  savedSecrets = await sql`select name, secret, description from vault.secrets where name = any(${SECRETS as unknown as string[]})`;
  await sql`delete from vault.secrets where name = any(${SECRETS})`;
  await sql`select vault.create_secret('test-kie-key', 'kie_api_key'),
                   vault.create_secret('https://fn.invalid/functions/v1', 'functions_base_url'),
                   vault.create_secret('test-finalize', 'finalize_credential')`;
  const id = randomUUID();
  users.push(id);
  await sql`insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
            values (${id}, 'authenticated', 'authenticated', ${`race-${id}@test.kiln.local`}, '{}', '{}', now(), now())`;
  await sql.begin(async (tx) => {
    await tx`set local role service_role`;
    await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
    await tx`select public.set_plan(${id}, ${planId})`;
    await tx`select public.grant_credits(${id}, 1000, 'race test credits')`;
  });
  const claims = JSON.stringify({ sub: id, role: "authenticated" });
  for (let i = 0; i < JOBS; i++) {
    const [job] = await sql.begin(async (tx) => {
      await tx`set local role authenticated`;
      await tx`select set_config('request.jwt.claims', ${claims}, true)`;
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

afterAll(async () => {
  try {
    // Requests a background tick may have queued with our settings (nothing sends them here).
    await sql`delete from net.http_request_queue where url like 'https://kie.invalid/%' or url like 'https://fn.invalid/%'`;
    await sql`delete from vault.secrets where name = any(${SECRETS})`;
    for (const { name, secret, description } of savedSecrets) await sql`select vault.create_secret(${secret}, ${name}, ${description})`;
    for (const { key, value } of savedSettings) await sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
    await sql`delete from net.http_request_queue q using private.requests r
               where r.net_request_id = q.id and r.job_id = any(${jobIds}::uuid[])`;
    await sql`delete from net._http_response h using private.requests r
               where r.net_request_id = h.id and r.job_id = any(${jobIds}::uuid[])`;
    if (users.length > 0) await sql`delete from auth.users where id = any(${users}::uuid[])`;
    await sql`delete from public.plans where id = ${planId}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
});

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
        from public.profiles p where p.id = ${users[0]}`;
    expect(balance.credits).toBe(balance.ledger);
  });
});
