import { randomUUID } from "node:crypto";
import type { TransactionSql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// The dispatch trigger under real concurrency: a tick that holds every createTask token (an open
// transaction with the bucket's slots locked) must not make starts wait. Each start skips the
// busy slots (`skip locked`), commits at once and leaves its job to the dispatch tick.

const STARTS = 40;
const sql = connect({ max: STARTS + 2 });
const suffix = randomUUID().replaceAll("-", "").slice(0, 12);
const planId = `dispatch_${suffix}`;
const users: string[] = [];
const SECRETS = ["kie_api_key", "functions_base_url"] as const;
let savedSettings: { key: string; value: unknown }[] = [];
/** Secrets of these names that existed before (the local stack's), put back afterwards. */
let savedSecrets: { name: string; secret: string; description: string }[] = [];

type Tx = TransactionSql<Record<string, unknown>>;

/** Resolves for everyone once `parties` callers are waiting. */
function barrier(parties: number, timeoutMs = 15_000): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  let fail!: (error: Error) => void;
  const open = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  open.catch(() => {});
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

async function createUser(): Promise<string> {
  const id = randomUUID();
  users.push(id);
  await sql`
    insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values (${id}, 'authenticated', 'authenticated', ${`dispatch-${id}@test.kiln.local`}, '{}', '{}', now(), now())`;
  await sql.begin(async (tx) => {
    await tx`set local role service_role`;
    await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
    await tx`select public.set_plan(${id}, ${planId})`;
    await tx`select public.grant_credits(${id}, 100, 'dispatch test credits')`;
  });
  return id;
}

/** `STARTS` users each start a generation at the same instant, as PostgREST would; ms per start. */
async function startAtOnce(userIds: string[]): Promise<{ id: string; ms: number }[]> {
  const allOpen = barrier(userIds.length);
  return Promise.all(
    userIds.map(
      (userId) =>
        sql.begin(async (tx: Tx) => {
          await tx`set local role authenticated`;
          await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
          await allOpen();
          const started = performance.now();
          const [job] = await tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a quiet harbour')`;
          return { id: job.id, ms: performance.now() - started };
        }) as Promise<{ id: string; ms: number }>,
    ),
  );
}

beforeAll(async () => {
  const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
  await sql`
    insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
    values (${planId}, 'Dispatch test', ${rank}, 1000, 1000, 0, true)`;
  savedSettings = await sql`select key, value from private.settings where key in ('kie.base_url', 'dispatch.create_per_window')`;
  // Nothing listens there: no pg_net worker runs in this file, the requests are only queued.
  await sql`update private.settings set value = '"https://kie.invalid"' where key = 'kie.base_url'`;
  await sql`update private.settings set value = '200' where key = 'dispatch.create_per_window'`;
  savedSecrets = await sql`select name, secret, description from vault.secrets where name = any(${SECRETS as unknown as string[]})`;
  await sql`delete from vault.secrets where name = any(${SECRETS as unknown as string[]})`;
  await sql`select vault.create_secret('test-kie-key', 'kie_api_key'), vault.create_secret('https://fn.invalid/functions/v1', 'functions_base_url')`;
  for (let i = 0; i < STARTS; i++) await createUser();
});

afterAll(async () => {
  try {
    // Requests a background tick may have queued with our settings (nothing sends them here).
    await sql`delete from net.http_request_queue where url like 'https://kie.invalid/%' or url like 'https://fn.invalid/%'`;
    await sql`delete from vault.secrets where name = any(${SECRETS as unknown as string[]})`;
    for (const { name, secret, description } of savedSecrets) await sql`select vault.create_secret(${secret}, ${name}, ${description})`;
    for (const { key, value } of savedSettings) await sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
    await sql`
      delete from net.http_request_queue q
       using private.requests r join public.generation_jobs j on j.id = r.job_id
       where r.net_request_id = q.id and j.user_id = any(${users}::uuid[])`;
    if (users.length > 0) await sql`delete from auth.users where id = any(${users}::uuid[])`;
    await sql`delete from public.plans where id = ${planId}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
});

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

    const wallStart = performance.now();
    const results = await startAtOnce(users.slice(0, STARTS));
    const wallMs = performance.now() - wallStart;
    // Only now does the tick's transaction end: every start above ran while it held the bucket.
    release();
    await tick;

    expect(results).toHaveLength(STARTS);
    // With the bucket held, nobody waited on it: every start finished well under a second.
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(2_000);
    expect(wallMs).toBeLessThan(10_000);

    const stages = await sql<{ stage: string; n: number }[]>`
      select p.stage, count(*)::int as n from private.job_pipeline p
       where p.job_id = any(${results.map((r) => r.id)}::uuid[]) group by p.stage`;
    expect(stages).toEqual([{ stage: "waiting", n: STARTS }]);

    // Once the tick lets go, the dispatch tick sends them within the budget.
    const [{ sent }] = await sql<{ sent: number }[]>`select private.dispatch_tick() as sent`;
    const [{ creating }] = await sql<{ creating: number }[]>`
      select count(*)::int as creating from private.job_pipeline p
       where p.job_id = any(${results.map((r) => r.id)}::uuid[]) and p.stage = 'creating'`;
    expect(creating).toBe(STARTS);
    expect(sent).toBeLessThanOrEqual(STARTS);
  });

  it("hands simultaneous starts distinct tokens when the budget is free, never more than the budget", async () => {
    await sql`update private.rate_slots set available_at = '-infinity' where bucket = 'create'`;
    await sql`update private.settings set value = '10' where key = 'dispatch.create_per_window'`;
    const fresh: string[] = [];
    for (let i = 0; i < 20; i++) fresh.push(await createUser());
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
