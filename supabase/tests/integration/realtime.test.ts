import { randomBytes, randomUUID } from "node:crypto";
import type { TransactionSql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";
import { type Change, type ChangeStream, openChangeStream, receives } from "./support/wal2json.ts";

// The Realtime contract: the app follows a job with `postgres_changes` on public.generation_jobs
// (filter id=eq.<id>) until it completes or fails. Hosted Realtime reads the `supabase_realtime`
// publication through a wal2json slot; these tests read it through the same plugin with the same
// options (support/wal2json.ts), so what they see is what Realtime would receive, and they replay
// Realtime's per-subscriber checks (filters, then RLS as the subscriber) on it.

type Db = ReturnType<typeof connect>;

/** Column names whose presence in a published table would leak something a client must not see. */
const SECRET_COLUMN = /secret|token|password|api_?key|signature|callback|task_?id|credential|service_role/i;

/** LSNs ("16/B374D848") as numbers, to compare their order. */
function lsnValue(lsn: string): bigint {
  const [high, low] = lsn.split("/");
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** The id a change concerns. */
const idOf = (change: Change) => change.record.id ?? change.oldRecord.id;

let sql: Db;

/** A signed-up user (the auth service's insert; the trigger makes the profile and welcome grant). */
async function signUp(): Promise<string> {
  const id = randomUUID();
  await sql`
    insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values (${id}, 'authenticated', 'authenticated', ${`realtime-${id}@test.kiln.local`},
            '{"provider": "email", "providers": ["email"]}', '{}', now(), now())`;
  return id;
}

/** A transaction as the signed-in user, exactly as PostgREST runs an RPC. */
async function asUser<T>(user: string, work: (tx: TransactionSql<Record<string, unknown>>) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
    return work(tx);
  })) as T;
}

/** The app's two calls: start a job, then cancel it (two transactions). Returns the job id. */
async function startAndCancel(user: string, prompt: string): Promise<string> {
  const [started] = await asUser(user, (tx) => tx<{ id: string; status: string }[]>`
    select * from public.start_generation(prompt => ${prompt})`);
  expect(started.status).toBe("pending");
  const [cancelled] = await asUser(user, (tx) => tx<{ status: string }[]>`select * from public.cancel_generation(${started.id})`);
  expect(cancelled.status).toBe("failed");
  return started.id;
}

async function tableColumns(table: string): Promise<string[]> {
  const rows = await sql<{ attname: string }[]>`
    select attname from pg_attribute
     where attrelid = ${`public.${table}`}::regclass and attnum > 0 and not attisdropped
     order by attnum`;
  return rows.map((row) => row.attname);
}

/** A row of a public table as it is now, by id, every column in Postgres text form. */
async function currentRow(id: string, table = "generation_jobs"): Promise<Record<string, string | null>> {
  const columns = await tableColumns(table);
  const [row] = await sql.unsafe<Record<string, string | null>[]>(
    `select ${columns.map((c) => `"${c}"::text as "${c}"`).join(", ")} from public.${table} where id = $1`,
    [id],
  );
  return row;
}

/** A call as a trusted server (the service key), as PostgREST runs it. */
async function asServiceRole<T>(work: (tx: TransactionSql<Record<string, unknown>>) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    await tx`set local role service_role`;
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ role: "service_role" })}, true)`;
    return work(tx);
  })) as T;
}

const users: string[] = [];
const templates: string[] = [];

beforeAll(() => {
  sql = connect();
});

afterAll(async () => {
  try {
    // Deleting the users cascades to their profiles, jobs and ledgers.
    if (users.length > 0) await sql`delete from auth.users where id = any(${users}::uuid[])`;
    if (templates.length > 0) await sql`delete from public.templates where id = any(${templates}::uuid[])`;
  } finally {
    await sql.end();
  }
});

describe("Realtime publication (supabase_realtime), read through wal2json", () => {
  let stream: ChangeStream;
  let changes: Change[] = [];
  let userId = "";
  let jobId = "";
  const templateId = randomUUID();

  beforeAll(async () => {
    userId = await signUp();
    users.push(userId);
    stream = await openChangeStream(sql, { publication: "supabase_realtime" });
    // Each transaction writes the job, the profile's balance and a ledger entry.
    jobId = await startAndCancel(userId, "a lighthouse at dusk");
    // A template of our own (a draft, never visible to clients), so no shared catalog row changes.
    templates.push(templateId);
    await sql`
      insert into public.templates (id, name, description, category, prompt_template, is_active)
      values (${templateId}, 'Realtime test draft', 'before', 'Test', 'a test template', false)`;
    await sql`update public.templates set description = 'after' where id = ${templateId}`;
    changes = await stream.read();
  });

  afterAll(async () => {
    await stream?.close();
  });

  const jobChanges = () => changes.filter((c) => c.schema === "public" && c.table === "generation_jobs" && idOf(c) === jobId);

  it("publishes the job's insert (pending), then its cancellation (failed, cancelled), in commit order", () => {
    const [inserted, updated, ...rest] = jobChanges();
    expect(rest).toEqual([]);
    expect(inserted?.action).toBe("insert");
    expect(updated?.action).toBe("update");
    expect(inserted.record).toMatchObject({
      id: jobId,
      user_id: userId,
      prompt: "a lighthouse at dusk",
      status: "pending",
      error_code: null,
      error_message: null,
      completed_at: null,
    });
    expect(updated.record).toMatchObject({
      id: jobId,
      user_id: userId,
      status: "failed",
      error_code: "cancelled",
      error_message: "Cancelled before it was sent.",
    });
    expect(updated.record.completed_at).not.toBeNull();
    // Two transactions, delivered in the order they committed.
    expect(inserted.xid).not.toBe(updated.xid);
    expect(lsnValue(inserted.lsn) < lsnValue(updated.lsn)).toBe(true);
    expect(jobChanges().map((c) => c.record.status)).toEqual(["pending", "failed"]);
  });

  it("sends the whole current row with the last change (what a postgres_changes payload's `new` holds)", async () => {
    expect(jobChanges().at(-1)!.record).toEqual(await currentRow(jobId));
  });

  it("sends the old row with an update (replica identity full)", () => {
    const [inserted, updated] = jobChanges();
    expect(updated.oldRecord).toEqual(inserted.record);
  });

  it("publishes exactly the table's columns, keyed by id, none of them secret", async () => {
    const columns = await tableColumns("generation_jobs");
    const [inserted] = jobChanges();
    expect(inserted.columns.map((c) => c.name)).toEqual(columns);
    expect(Object.keys(inserted.record)).toEqual(columns);
    expect(inserted.pk.map((c) => c.name)).toEqual(["id"]);
    expect(columns.filter((name) => SECRET_COLUMN.test(name))).toEqual([]);

    // Nothing in the publication lives outside public or carries a secret-looking column.
    const published = await sql<{ schemaname: string; tablename: string; attnames: string[] }[]>`
      select schemaname, tablename, attnames from pg_publication_tables where pubname = 'supabase_realtime'`;
    expect(published.map((t) => `${t.schemaname}.${t.tablename}`)).toEqual(
      expect.arrayContaining(["public.generation_jobs", "public.profiles", "public.templates"]),
    );
    for (const table of published) {
      expect(table.schemaname).toBe("public");
      expect(table.attnames.filter((name) => SECRET_COLUMN.test(name))).toEqual([]);
    }
  });

  it("streams the balance those transactions moved (profiles), but not credit_ledger", async () => {
    // The transactions did write both: a debit and a refund for this job.
    const entries = await sql<{ kind: string }[]>`select kind from public.credit_ledger where job_id = ${jobId}`;
    expect(entries.map((e) => e.kind).sort()).toEqual(["debit", "refund"]);

    const tables = new Set(changes.map((c) => `${c.schema}.${c.table}`));
    expect(tables.has("public.credit_ledger")).toBe(false);
    const jobXids = new Set(jobChanges().map((c) => c.xid));
    const inThoseTransactions = changes.filter((c) => jobXids.has(c.xid)).map((c) => `${c.schema}.${c.table}`);
    expect(new Set(inThoseTransactions)).toEqual(new Set(["public.generation_jobs", "public.profiles"]));
  });

  it("publishes changes to templates", () => {
    const templateChanges = changes.filter((c) => c.table === "templates" && idOf(c) === templateId);
    expect(templateChanges.map((c) => [c.action, c.record.description])).toEqual([
      ["insert", "before"],
      ["update", "after"],
    ]);
  });

  it("delivers the job's changes to its owner's subscription (id=eq.<job>) and to nobody else's", async () => {
    const stranger = await signUp();
    users.push(stranger);
    const byId = [{ column: "id", value: jobId }];
    const otherJob = [{ column: "id", value: randomUUID() }];
    const decisions = await Promise.all(
      jobChanges().map(async (change) => [
        await receives(sql, change, { userId, filters: byId }),
        await receives(sql, change, { userId: stranger, filters: byId }),
        await receives(sql, change, { userId, filters: otherJob }),
      ]),
    );
    expect(decisions).toEqual([
      [true, false, false],
      [true, false, false],
    ]);
  });

  it("delivers each change once", async () => {
    const again = (await stream.read()).filter((c) => idOf(c) === jobId || idOf(c) === templateId);
    expect(again).toEqual([]);
  });
});

// The balance: an app shows the user's credits and plan, which move on every start, refund, grant
// (a purchase) and plan change. It subscribes with postgres_changes on public.profiles filtered to
// itself (id=eq.<auth uid>) and gets the whole row after each change, the refund of a failed job in
// the same transaction as the job's failed update, instead of fetching the profile again.
describe("the balance through Realtime (public.profiles)", () => {
  let stream: ChangeStream;
  let changes: Change[] = [];
  let owner = "";
  let stranger = "";
  let jobId = "";
  let welcome = 0;
  let price = 0;

  beforeAll(async () => {
    stranger = await signUp();
    users.push(stranger);
    [{ welcome, price }] = await sql<{ welcome: number; price: number }[]>`
      select (select signup_credits from public.plans where id = 'free') as welcome,
             (select credit_cost from public.models where mode = 'text-to-image' and quality = 'fast' and is_active) as price`;
    stream = await openChangeStream(sql, { publication: "supabase_realtime" });
    owner = await signUp();
    users.push(owner);
    jobId = await startAndCancel(owner, "a kite over the dunes");
    await asServiceRole((tx) => tx`select public.grant_credits(${owner}, 25, 'Credit pack', ${`purchase-${owner}`})`);
    await asServiceRole((tx) => tx`select public.set_plan(${owner}, 'paid')`);
    changes = await stream.read();
  });

  afterAll(async () => {
    await stream?.close();
  });

  const profileChanges = (id: string) =>
    changes.filter((c) => c.schema === "public" && c.table === "profiles" && idOf(c) === id);

  it("streams the profile at signup, then every change of its balance and plan, in commit order", () => {
    expect(profileChanges(owner).map((c) => [c.action, c.record.credits, c.record.plan])).toEqual([
      ["insert", "0", "free"],
      ["update", String(welcome), "free"], // the welcome grant, in the signup's transaction
      ["update", String(welcome - price), "free"], // the start's debit
      ["update", String(welcome), "free"], // the cancel's refund
      ["update", String(welcome + 25), "free"], // grant_credits
      ["update", String(welcome + 25), "paid"], // set_plan
    ]);
    expect(profileChanges(stranger)).toEqual([]);
  });

  it("carries a refund in the transaction that failed the job", () => {
    const failed = changes.find((c) => c.table === "generation_jobs" && idOf(c) === jobId && c.record.status === "failed")!;
    const refunded = profileChanges(owner)[3];
    expect(refunded.record.credits).toBe(String(welcome));
    expect(refunded.xid).toBe(failed.xid);
  });

  it("sends the whole current row, exactly the table's columns, keyed by id, none of them secret", async () => {
    const columns = await tableColumns("profiles");
    const last = profileChanges(owner).at(-1)!;
    expect(last.record).toEqual(await currentRow(owner, "profiles"));
    expect(last.columns.map((c) => c.name)).toEqual(columns);
    expect(last.pk.map((c) => c.name)).toEqual(["id"]);
    expect(columns.filter((name) => SECRET_COLUMN.test(name))).toEqual([]);
  });

  it("delivers them to the owner's subscription (id=eq.<me>) and to nobody else's", async () => {
    const decisions = await Promise.all(
      profileChanges(owner).map(async (change) => [
        await receives(sql, change, { userId: owner, filters: [{ column: "id", value: owner }] }),
        await receives(sql, change, { userId: stranger, filters: [{ column: "id", value: owner }] }),
        await receives(sql, change, { userId: stranger }),
        await receives(sql, change, { userId: owner, filters: [{ column: "id", value: stranger }] }),
      ]),
    );
    expect(decisions).toEqual(Array.from({ length: 6 }, () => [true, false, false, false]));
  });
});

describe("a job whose prompt is stored out of line (TOAST), read through wal2json", () => {
  let stream: ChangeStream;
  let longChanges: Change[] = [];
  let longPrompt = "";

  beforeAll(async () => {
    const userId = await signUp();
    users.push(userId);
    stream = await openChangeStream(sql, { publication: "supabase_realtime" });
    // Random hex words: incompressible, so the prompt is TOASTed out of line. Within the model's
    // 5000-character limit, and whole words nobody would block.
    longPrompt = Array.from({ length: 600 }, () => randomBytes(4).toString("hex")).join(" ").slice(0, 4_500).trim();
    const jobId = await startAndCancel(userId, longPrompt);
    longChanges = (await stream.read()).filter((c) => c.table === "generation_jobs" && idOf(c) === jobId);
  });

  afterAll(async () => {
    await stream?.close();
  });

  it("is published on insert with its whole prompt", () => {
    expect(longChanges.map((c) => [c.action, c.record.status])).toEqual([
      ["insert", "pending"],
      ["update", "failed"],
    ]);
    expect(longChanges[0].record.prompt).toBe(longPrompt);
  });

  // wal2json leaves an unchanged out-of-line value out of an update's new row; Realtime takes it
  // from the old row, which replica identity full provides. Without it the prompt would be lost.
  it("keeps the whole prompt in its status update, recovered from the old row as Realtime does", () => {
    const updated = longChanges.find((c) => c.action === "update")!;
    expect(updated.columns.map((c) => c.name)).not.toContain("prompt");
    expect(updated.fromOldRecord).toContain("prompt");
    expect(updated.record.prompt).toBe(longPrompt);
    expect(updated.record.status).toBe("failed");
  });
});

// Hosted Realtime checks RLS for inserts and updates only: a delete cannot be checked against a row
// that is gone, so it goes to every subscription whose filters match the old row (payload: the
// primary key only). Jobs are deleted for real only with their account; the README tells the app to
// subscribe with user_id=eq.<me> (or id=eq.<job>), which keeps other users' deletions out.
describe("Realtime and deletions", () => {
  let stream: ChangeStream;
  let changes: Change[] = [];
  let owner = "";
  let stranger = "";
  let deletedJob = "";
  let hiddenJob = "";

  beforeAll(async () => {
    owner = await signUp();
    stranger = await signUp();
    users.push(stranger);
    hiddenJob = await startAndCancel(stranger, "a moth on a lamp");
    deletedJob = await startAndCancel(owner, "a fox in the snow");
    stream = await openChangeStream(sql, { publication: "supabase_realtime" });
    await asUser(stranger, (tx) => tx`select public.delete_generation(${hiddenJob})`);
    await sql`delete from auth.users where id = ${owner}`;
    changes = await stream.read();
  });

  afterAll(async () => {
    await stream?.close();
  });

  const changesOf = (jobId: string) =>
    changes.filter((c) => c.schema === "public" && c.table === "generation_jobs" && idOf(c) === jobId);

  it("streams a deleted account's jobs as deletes, which pass user_id=eq.<other user> by", async () => {
    const [deleted, ...rest] = changesOf(deletedJob);
    expect(rest).toEqual([]);
    expect(deleted.action).toBe("delete");
    expect(await receives(sql, deleted, { userId: stranger, filters: [{ column: "user_id", value: stranger }] })).toBe(false);
    expect(await receives(sql, deleted, { userId: owner, filters: [{ column: "user_id", value: owner }] })).toBe(true);
  });

  it("streams a deleted account's profile as a delete of its id alone, which id=eq.<other user> passes by", async () => {
    const [deleted, ...rest] = changes.filter((c) => c.table === "profiles" && idOf(c) === owner);
    expect(rest).toEqual([]);
    expect(deleted.action).toBe("delete");
    expect(Object.keys(deleted.oldRecord)).toEqual(["id"]);
    expect(await receives(sql, deleted, { userId: stranger, filters: [{ column: "id", value: stranger }] })).toBe(false);
    expect(await receives(sql, deleted, { userId: owner, filters: [{ column: "id", value: owner }] })).toBe(true);
  });

  it("delivers them to an unfiltered subscription of another user (RLS does not apply to deletes)", async () => {
    const [deleted] = changesOf(deletedJob);
    expect(await receives(sql, deleted, { userId: stranger })).toBe(true);
  });

  it("does not deliver the user's own delete_generation (the job is no longer theirs to read)", async () => {
    const [hidden, ...rest] = changesOf(hiddenJob);
    expect(rest).toEqual([]);
    expect(hidden.action).toBe("update");
    expect(hidden.record.deleted_at).not.toBeNull();
    expect(await receives(sql, hidden, { userId: stranger, filters: [{ column: "user_id", value: stranger }] })).toBe(false);
  });
});
