import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// Every refusal must change nothing. start_generation writes the job before it debits, so a
// KL020 proves the whole transaction is undone, not merely that validation ran first. Calls run
// as PostgREST runs them: one transaction per request, role and JWT claims set locally.
const sql = connect({ max: 2 });
const userId = randomUUID();
const claims = JSON.stringify({ sub: userId, role: "authenticated" });

async function asUser(query: string, parameters: unknown[] = []): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${claims}, true)`;
    await tx.unsafe(query, parameters as never[]);
  });
}

async function refusalCode(query: string, parameters: unknown[] = []): Promise<string> {
  try {
    await asUser(query, parameters);
  } catch (error) {
    return (error as { code?: string }).code ?? "no code";
  }
  throw new Error(`expected a refusal: ${query}`);
}

async function snapshot() {
  const [row] = await sql`
    select (select count(*)::int from public.generation_jobs) as jobs,
           (select count(*)::int from public.credit_ledger) as ledger_entries,
           (select credits from public.profiles where id = ${userId}) as credits,
           (select count(*)::int from public.profiles) as profiles,
           (select count(*)::int from net.http_request_queue) as queued_requests`;
  return row;
}

beforeAll(async () => {
  await sql`insert into auth.users (id, email) values (${userId}, ${`${userId}@refusals.kiln.local`})`;
  // One job that succeeds (for the idempotency conflict), then a balance of zero.
  await asUser(`select public.start_generation(prompt => 'a lighthouse', idempotency_key => 'refusals-1')`);
  await sql.begin(async (tx) => {
    await tx`set local role service_role`;
    const [{ credits }] = await tx`select credits from public.profiles where id = ${userId}`;
    await tx`select public.grant_credits(${userId}, ${-credits}, 'test: empty the balance')`;
  });
});

afterAll(async () => {
  await sql`delete from auth.users where id = ${userId}`;
  await sql.end();
});

describe("refused calls write nothing", () => {
  const cases: [string, string][] = [
    ["KL020", `select public.start_generation(prompt => 'a cat at dawn')`],
    ["KL019", `select public.start_generation(prompt => 'a different lighthouse', idempotency_key => 'refusals-1')`],
    ["KL010", `select public.start_generation(prompt => 'a cat', aspect_ratio => '7:3')`],
    ["KL003", `select public.start_generation(template_id => gen_random_uuid(), image_urls => array['https://img.test/a.png'])`],
    ["KL012", `select public.start_generation(prompt => E'\\u00a0\\n\\t')`],
    ["KL028", `select public.start_generation(prompt => repeat('a cat ', 20000))`],
    ["KL021", `select public.cancel_generation(gen_random_uuid())`],
  ];

  it.each(cases)("%s leaves every table as it was", async (code, query) => {
    const before = await snapshot();
    expect(await refusalCode(query)).toBe(code);
    expect(await snapshot()).toEqual(before);
  });

  it("a call that succeeds does change the snapshot (the check can see writes)", async () => {
    await sql.begin(async (tx) => {
      await tx`set local role service_role`;
      await tx`select public.grant_credits(${userId}, 1, 'test: one credit')`;
    });
    const before = await snapshot();
    await asUser(`select public.start_generation(prompt => 'a cat at dusk')`);
    const after = await snapshot();
    expect(after.jobs).toBe(before.jobs + 1);
    expect(after.ledger_entries).toBe(before.ledger_entries + 1);
    expect(after.credits).toBe(before.credits - 1);
  });
});
