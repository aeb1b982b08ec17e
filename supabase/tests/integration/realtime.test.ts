import { randomBytes, randomUUID } from "node:crypto";
import type { TransactionSql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";
import {
  decodeChanges,
  decodeMessage,
  openChangeStream,
  PgOutputDecodeError,
  type Change,
  type ChangeStream,
} from "./support/pgoutput.ts";

// The Realtime contract: the app follows a job with `postgres_changes` on public.generation_jobs
// (filter id=eq.<id>) until it completes or fails. Hosted Realtime reads the `supabase_realtime`
// publication through logical replication; here the same publication is read through a pgoutput
// slot, so what these tests see is what Realtime would receive (before its RLS check).

// ---------------------------------------------------------------------------------------------
// The decoder, on hand-built pgoutput v1 messages
// ---------------------------------------------------------------------------------------------

/** Builds one pgoutput message, big-endian like the protocol. */
class MessageBuilder {
  private readonly bytes: number[] = [];

  char(c: string): this {
    this.bytes.push(c.charCodeAt(0));
    return this;
  }
  int8(v: number): this {
    this.bytes.push(v & 0xff);
    return this;
  }
  int16(v: number): this {
    return this.int8(v >> 8).int8(v);
  }
  int32(v: number): this {
    return this.int16(v >>> 16).int16(v & 0xffff);
  }
  int64(v: bigint): this {
    return this.int32(Number(v >> 32n)).int32(Number(v & 0xffffffffn));
  }
  cstring(s: string): this {
    this.bytes.push(...Buffer.from(s, "utf8"), 0);
    return this;
  }
  text(s: string): this {
    const encoded = Buffer.from(s, "utf8");
    this.char("t").int32(encoded.length);
    this.bytes.push(...encoded);
    return this;
  }
  /** The message inside a larger buffer, as the driver's pooled Buffers often are. */
  build(): Buffer {
    const pool = Buffer.alloc(this.bytes.length + 13, 0xee);
    pool.set(this.bytes, 7);
    return pool.subarray(7, 7 + this.bytes.length);
  }
}

const UUID_OID = 2950;
const TEXT_OID = 25;
const RELATION_ID = 16_999;
const POSTGRES_EPOCH_MS = 946_684_800_000;
const commitTime = new Date("2026-11-25T10:00:00.123Z");
const commitMicros = BigInt(commitTime.getTime() - POSTGRES_EPOCH_MS) * 1000n;

const begin = () => new MessageBuilder().char("B").int64(0x1_0000_0200n).int64(commitMicros).int32(4242).build();
const commit = () =>
  new MessageBuilder().char("C").int8(0).int64(0x1_0000_0200n).int64(0x1_0000_0230n).int64(commitMicros).build();
/** public.notes (id uuid primary key, body text), replica identity default. */
const relation = () =>
  new MessageBuilder()
    .char("R")
    .int32(RELATION_ID)
    .cstring("public")
    .cstring("notes")
    .char("d")
    .int16(2)
    .int8(1).cstring("id").int32(UUID_OID).int32(-1)
    .int8(0).cstring("body").int32(TEXT_OID).int32(-1)
    .build();
const NOTE_ID = "6f1c1d1e-0000-4000-8000-000000000001";

describe("pgoutput decoder (no database)", () => {
  it("decodes a Relation message", () => {
    expect(decodeMessage(relation())).toEqual({
      type: "relation",
      relation: {
        id: RELATION_ID,
        schema: "public",
        table: "notes",
        replicaIdentity: "default",
        columns: [
          { name: "id", typeOid: UUID_OID, typeModifier: -1, isKey: true },
          { name: "body", typeOid: TEXT_OID, typeModifier: -1, isKey: false },
        ],
      },
    });
  });

  it("decodes Begin and Commit", () => {
    expect(decodeMessage(begin())).toEqual({ type: "begin", finalLsn: "1/200", commitTime, xid: 4242 });
    expect(decodeMessage(commit())).toEqual({
      type: "commit",
      flags: 0,
      commitLsn: "1/200",
      endLsn: "1/230",
      commitTime,
    });
  });

  it("turns Relation + Insert (a text and a null column) into an insert change", () => {
    const insert = (body: (m: MessageBuilder) => MessageBuilder) =>
      body(new MessageBuilder().char("I").int32(RELATION_ID).char("N").int16(2).text(NOTE_ID)).build();
    const changes = decodeChanges([
      begin(),
      relation(),
      insert((m) => m.char("n")),
      insert((m) => m.text("café ☕")),
      commit(),
    ]);
    expect(changes.map(({ relation: _relation, ...change }) => change)).toEqual([
      {
        kind: "insert",
        schema: "public",
        table: "notes",
        row: { id: NOTE_ID, body: null },
        unchangedToast: [],
        xid: 4242,
        commitLsn: "1/200",
      },
      {
        kind: "insert",
        schema: "public",
        table: "notes",
        row: { id: NOTE_ID, body: "café ☕" },
        unchangedToast: [],
        xid: 4242,
        commitLsn: "1/200",
      },
    ]);
  });

  it("decodes updates (key and unchanged TOAST), deletes and truncates, and skips Type and Origin", () => {
    const changes = decodeChanges([
      begin(),
      new MessageBuilder().char("O").int64(0x10n).cstring("upstream").build(),
      new MessageBuilder().char("Y").int32(70_000).cstring("public").cstring("mood").build(),
      relation(),
      // The key changed: the old key comes first ('K'); the body was not resent ('u').
      new MessageBuilder()
        .char("U").int32(RELATION_ID)
        .char("K").int16(2).text("6f1c1d1e-0000-4000-8000-00000000000a").char("n")
        .char("N").int16(2).text(NOTE_ID).char("u")
        .build(),
      new MessageBuilder().char("U").int32(RELATION_ID).char("N").int16(2).text(NOTE_ID).text("new").build(),
      new MessageBuilder().char("D").int32(RELATION_ID).char("K").int16(2).text(NOTE_ID).char("n").build(),
      new MessageBuilder().char("T").int32(1).int8(1).int32(RELATION_ID).build(),
      commit(),
    ]);
    expect(changes.map(({ kind, row, oldRow, oldRowKind, unchangedToast }) => ({ kind, row, oldRow, oldRowKind, unchangedToast }))).toEqual([
      {
        kind: "update",
        row: { id: NOTE_ID },
        oldRow: { id: "6f1c1d1e-0000-4000-8000-00000000000a" },
        oldRowKind: "key",
        unchangedToast: ["body"],
      },
      { kind: "update", row: { id: NOTE_ID, body: "new" }, oldRow: undefined, oldRowKind: undefined, unchangedToast: [] },
      { kind: "delete", row: {}, oldRow: { id: NOTE_ID }, oldRowKind: "key", unchangedToast: [] },
      { kind: "truncate", row: {}, oldRow: undefined, oldRowKind: undefined, unchangedToast: [] },
    ]);
  });

  it("fills an unchanged TOASTed value from a full old row, as Realtime does", () => {
    const [change] = decodeChanges([
      relation(),
      new MessageBuilder()
        .char("U").int32(RELATION_ID)
        .char("O").int16(2).text(NOTE_ID).text("a long body")
        .char("N").int16(2).text(NOTE_ID).char("u")
        .build(),
    ]);
    expect(change.row).toEqual({ id: NOTE_ID, body: "a long body" });
    expect(change.unchangedToast).toEqual([]);
  });

  it("refuses malformed input instead of guessing", () => {
    const insert = new MessageBuilder().char("I").int32(RELATION_ID).char("N").int16(2).text(NOTE_ID).char("n").build();
    expect(() => decodeChanges([insert])).toThrow(/before its Relation message/);
    expect(() => decodeMessage(insert.subarray(0, insert.length - 3))).toThrow(PgOutputDecodeError);
    expect(() => decodeMessage(new MessageBuilder().char("Z").build())).toThrow(/unknown pgoutput message type 'Z'/);
    const wrongWidth = new MessageBuilder().char("I").int32(RELATION_ID).char("N").int16(1).text(NOTE_ID).build();
    expect(() => decodeChanges([relation(), wrongWidth])).toThrow(/tuple has 1 columns, relation has 2/);
  });
});

// ---------------------------------------------------------------------------------------------
// The publication, on the real schema
// ---------------------------------------------------------------------------------------------

type Db = ReturnType<typeof connect>;

/** Column names whose presence in a published table would leak something a client must not see. */
const SECRET_COLUMN = /secret|token|password|api_?key|signature|callback|task_?id|credential|service_role/i;

function lsnValue(lsn: string | undefined): bigint {
  if (!lsn) throw new Error("change without a commit LSN");
  const [high, low] = lsn.split("/");
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** The id a change concerns, whether it carries a new row or only an old key. */
const idOf = (change: Change) => change.row.id ?? change.oldRow?.id;

describe("Realtime publication (supabase_realtime)", () => {
  let sql: Db;
  let stream: ChangeStream | undefined;
  let changes: Change[] = [];
  const userId = randomUUID();
  const templateId = randomUUID();
  let jobId = "";

  /** A transaction as the signed-in user, exactly as PostgREST runs an RPC. */
  async function asUser<T>(user: string, work: (tx: TransactionSql<Record<string, unknown>>) => Promise<T>): Promise<T> {
    return (await sql.begin(async (tx) => {
      await tx`set local role authenticated`;
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
      return work(tx);
    })) as T;
  }

  async function tableColumns(table: string): Promise<string[]> {
    const rows = await sql<{ attname: string }[]>`
      select attname from pg_attribute
       where attrelid = ${`public.${table}`}::regclass and attnum > 0 and not attisdropped
       order by attnum`;
    return rows.map((row) => row.attname);
  }

  beforeAll(async () => {
    sql = connect();
    // Signing up (as the auth service would) creates the profile and grants the welcome credits.
    await sql`
      insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values (${userId}, 'authenticated', 'authenticated', ${`realtime-${userId}@test.kiln.local`},
              '{"provider": "email", "providers": ["email"]}', '{}', now(), now())`;

    stream = await openChangeStream(sql, { publication: "supabase_realtime" });

    // Two separate transactions, as the app makes them: each writes the job, the profile's balance
    // and a ledger entry.
    const [started] = await asUser(userId, (tx) => tx<{ id: string; status: string }[]>`
      select * from public.start_generation(prompt => 'a lighthouse at dusk')`);
    jobId = started.id;
    expect(started.status).toBe("pending");
    const [cancelled] = await asUser(userId, (tx) => tx<{ status: string }[]>`
      select * from public.cancel_generation(${jobId})`);
    expect(cancelled.status).toBe("failed");

    // A template of our own (a draft, never visible to clients), so no shared catalog row changes.
    await sql`
      insert into public.templates (id, name, description, category, prompt_template, is_active)
      values (${templateId}, 'Realtime test draft', 'before', 'Test', 'a test template', false)`;
    await sql`update public.templates set description = 'after' where id = ${templateId}`;

    changes = await stream.read();
  });

  afterAll(async () => {
    if (!sql) return;
    try {
      await stream?.close();
    } finally {
      // Deleting the user cascades to the profile, its jobs and its ledger.
      await sql`delete from auth.users where id = ${userId}`;
      await sql`delete from public.templates where id = ${templateId}`;
      await sql.end();
    }
  });

  const jobChanges = () => changes.filter((c) => c.schema === "public" && c.table === "generation_jobs" && idOf(c) === jobId);

  it("publishes the job's insert (pending), then its cancellation (failed, cancelled), in commit order", () => {
    const [inserted, updated, ...rest] = jobChanges();
    expect(rest).toEqual([]);
    expect(inserted?.kind).toBe("insert");
    expect(updated?.kind).toBe("update");
    expect(inserted.row).toMatchObject({
      id: jobId,
      user_id: userId,
      prompt: "a lighthouse at dusk",
      status: "pending",
      error_code: null,
      error_message: null,
      completed_at: null,
    });
    expect(updated.row).toMatchObject({
      id: jobId,
      user_id: userId,
      status: "failed",
      error_code: "cancelled",
      error_message: "Cancelled before it was sent.",
    });
    expect(updated.row.completed_at).not.toBeNull();
    // Two transactions, delivered in the order they committed.
    expect(inserted.xid).not.toBe(updated.xid);
    expect(lsnValue(inserted.commitLsn) < lsnValue(updated.commitLsn)).toBe(true);
    // Every status the job went through reached the stream.
    expect(jobChanges().map((c) => c.row.status)).toEqual(["pending", "failed"]);
  });

  it("sends the whole current row with every change (what a postgres_changes payload's `new` holds)", async () => {
    const updated = jobChanges().at(-1)!;
    expect(updated.unchangedToast).toEqual([]);
    const columns = await tableColumns("generation_jobs");
    const [current] = await sql.unsafe<Record<string, string | null>[]>(
      `select ${columns.map((c) => `"${c}"::text as "${c}"`).join(", ")} from public.generation_jobs where id = $1`,
      [jobId],
    );
    expect(updated.row).toEqual(current);
  });

  it("publishes exactly the table's columns, none of them secret", async () => {
    const columns = await tableColumns("generation_jobs");
    const relation = jobChanges()[0]?.relation;
    expect(relation?.columns.map((c) => c.name)).toEqual(columns);
    expect(Object.keys(jobChanges()[0].row)).toEqual(columns);
    expect(relation?.columns.find((c) => c.name === "id")?.isKey).toBe(true);
    expect(columns.filter((name) => SECRET_COLUMN.test(name))).toEqual([]);

    // Nothing in the publication lives outside public or carries a secret-looking column.
    const published = await sql<{ schemaname: string; tablename: string; attnames: string[] }[]>`
      select schemaname, tablename, attnames from pg_publication_tables where pubname = 'supabase_realtime'`;
    expect(published.map((t) => `${t.schemaname}.${t.tablename}`)).toEqual(
      expect.arrayContaining(["public.generation_jobs", "public.templates"]),
    );
    for (const table of published) {
      expect(table.schemaname).toBe("public");
      expect(table.attnames.filter((name) => SECRET_COLUMN.test(name))).toEqual([]);
    }
  });

  it("does not publish profiles or credit_ledger, though the same transactions wrote them", async () => {
    // The transactions did write them: a debit and a refund for this job, and the balance moved.
    const entries = await sql<{ kind: string }[]>`
      select kind from public.credit_ledger where job_id = ${jobId} order by created_at, kind`;
    expect(entries.map((e) => e.kind).sort()).toEqual(["debit", "refund"]);

    const tables = new Set(changes.map((c) => `${c.schema}.${c.table}`));
    expect(tables.has("public.profiles")).toBe(false);
    expect(tables.has("public.credit_ledger")).toBe(false);
    // The job's transactions reached the stream with their generation_jobs changes only.
    const jobXids = new Set(jobChanges().map((c) => c.xid));
    const inThoseTransactions = changes.filter((c) => jobXids.has(c.xid)).map((c) => `${c.schema}.${c.table}`);
    expect(new Set(inThoseTransactions)).toEqual(new Set(["public.generation_jobs"]));
  });

  it("publishes changes to templates", () => {
    const templateChanges = changes.filter((c) => c.schema === "public" && c.table === "templates" && idOf(c) === templateId);
    expect(templateChanges.map((c) => [c.kind, c.row.description])).toEqual([
      ["insert", "before"],
      ["update", "after"],
    ]);
  });

  it("lets the owner read the published row through RLS, and nobody else (Realtime checks this per subscriber)", async () => {
    const seenByOwner = await asUser(userId, (tx) => tx`select id from public.generation_jobs where id = ${jobId}`);
    expect(seenByOwner.length).toBe(1);
    const seenByOther = await asUser(randomUUID(), (tx) => tx`select id from public.generation_jobs where id = ${jobId}`);
    expect(seenByOther.length).toBe(0);
  });

  it("delivers each change once", async () => {
    const again = (await stream!.read()).filter((c) => idOf(c) === jobId || idOf(c) === templateId);
    expect(again).toEqual([]);
  });

  describe("a job whose prompt is long enough to be stored out of line (TOAST)", () => {
    let longChanges: Change[] = [];
    let longPrompt = "";

    it("is published on insert with its whole prompt", async () => {
      // Random hex words: incompressible, so prompt and request are TOASTed out of line. Within
      // the model's 5000-character limit, and whole words nobody would block.
      longPrompt = Array.from({ length: 400 }, () => randomBytes(4).toString("hex")).join(" ").slice(0, 3_500);
      const [job] = await asUser(userId, (tx) => tx<{ id: string }[]>`
        select * from public.start_generation(prompt => ${longPrompt})`);
      await asUser(userId, (tx) => tx`select * from public.cancel_generation(${job.id})`);
      longChanges = (await stream!.read()).filter((c) => c.table === "generation_jobs" && idOf(c) === job.id);
      expect(longChanges.map((c) => [c.kind, c.row.status])).toEqual([
        ["insert", "pending"],
        ["update", "failed"],
      ]);
      expect(longChanges[0].row.prompt).toBe(longPrompt);
    });

    // With the default replica identity an update would not resend a large value it did not
    // change (prompt, request), and Realtime could not restore it; replica identity full keeps
    // every column in every status update.
    it("keeps every column in its status updates", () => {
      const updated = longChanges.find((c) => c.kind === "update");
      expect(updated).toBeDefined();
      expect(updated!.unchangedToast).toEqual([]);
      expect(updated!.row.prompt).toBe(longPrompt);
    });
  });
});
