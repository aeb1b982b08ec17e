import { randomUUID } from "node:crypto";
import type { ReservedSql, Sql } from "postgres";

// The change stream as hosted Realtime reads it, for tests.
//
// Realtime (postgres_changes) reads a publication through a logical slot with the wal2json plugin:
// `realtime.list_changes` calls pg_logical_slot_get_changes with format-version 2, one JSON object
// per change, and since wal2json knows nothing of publications it passes the publication's tables
// as `add-tables` and its actions as `actions`. Locally there is no Realtime server, but the
// cluster runs with `wal_level = logical` and Debian's postgresql-15-wal2json, so the same call
// over plain SQL yields exactly what Realtime would receive, before its per-subscriber checks.
// `receives` replays those checks (filters, then RLS as the subscriber) the way Realtime's
// `realtime.apply_rls` does.

export type Value = string | null;
export type Row = Record<string, Value>;

export interface Column {
  name: string;
  /** Type name as wal2json prints it (e.g. "uuid", "text[]"). */
  type: string;
  typeoid: number;
}

export interface Change {
  action: "insert" | "update" | "delete";
  schema: string;
  table: string;
  /**
   * The new row as Realtime builds its `record`: every column wal2json sent, plus any it left out
   * (an unchanged out-of-line TOAST value on update) taken from the old row when the table's
   * replica identity is full. Values in Postgres text form.
   */
  record: Row;
  /** The old row (update, delete) as wal2json sent it (`identity`): the whole row under replica identity full. */
  oldRecord: Row;
  /** The columns wal2json sent for the new row, in table order. */
  columns: Column[];
  /** The columns wal2json sent for the old row (`identity`): what a delete's filters are checked on. */
  oldColumns: Column[];
  /** The primary key columns (what Realtime checks RLS with). */
  pk: Column[];
  /** Columns of `record` recovered from the old row because the new row did not carry them. */
  fromOldRecord: string[];
  /** Commit time, transaction id and the LSN of the change. */
  timestamp: string;
  xid: number;
  lsn: string;
}

interface Wal2JsonColumn extends Column {
  value: unknown;
}

interface Wal2JsonChange {
  action: "I" | "U" | "D" | "T" | "M" | "B" | "C";
  schema?: string;
  table?: string;
  timestamp?: string;
  columns?: Wal2JsonColumn[];
  identity?: Wal2JsonColumn[];
  pk?: Column[];
}

const ACTIONS = { I: "insert", U: "update", D: "delete" } as const;

// realtime.wal2json_escape_identifier: `\`, `,`, `.` and whitespace are escaped in add-tables.
const ESCAPE_PATTERN = String.raw`([\\,.[:space:]])`;
const ESCAPE_REPLACEMENT = String.raw`\\\1`;

const quoteIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** wal2json prints numbers and booleans as JSON literals and everything else as its text form. */
function textValue(value: unknown): Value {
  if (value === null || value === undefined) return null;
  return typeof value === "string" ? value : String(value);
}

function rowOf(columns: Wal2JsonColumn[] = []): Row {
  return Object.fromEntries(columns.map((column) => [column.name, textValue(column.value)]));
}

/** One wal2json format-version 2 object as a change; null for rows that are not table changes. */
function toChange(data: Wal2JsonChange, xid: number, lsn: string): Change | null {
  if (!(data.action in ACTIONS)) return null; // our own flush marker ("M"), never a table change
  const action = ACTIONS[data.action as keyof typeof ACTIONS];
  const sent = rowOf(data.columns);
  const oldRecord = rowOf(data.identity);
  // Like apply_rls: the record is the new columns, full-outer-joined with the old ones.
  const fromOldRecord =
    action === "delete" ? [] : Object.keys(oldRecord).filter((name) => !(name in sent));
  const record: Row = action === "delete" ? {} : { ...sent };
  for (const name of fromOldRecord) record[name] = oldRecord[name];
  return {
    action,
    schema: data.schema ?? "",
    table: data.table ?? "",
    record,
    oldRecord,
    columns: (data.columns ?? []).map(({ name, type, typeoid }) => ({ name, type, typeoid })),
    oldColumns: (data.identity ?? []).map(({ name, type, typeoid }) => ({ name, type, typeoid })),
    pk: data.pk ?? [],
    fromOldRecord,
    timestamp: data.timestamp ?? "",
    xid,
    lsn,
  };
}

export interface ChangeStream {
  readonly slot: string;
  readonly publication: string;
  /** Every change committed since the last read (or since the stream opened), in commit order. */
  read(): Promise<Change[]>;
  /** Drops the slot and releases its connection. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Opens a wal2json slot and returns a reader of `publication`'s changes from now on.
 *
 * The slot is temporary and lives on one connection reserved from `sql` for the stream's lifetime:
 * close() drops it, and if close() is never reached the slot still dies with the connection, so it
 * can never be left behind holding WAL. Creating a slot waits for transactions already running to
 * finish. Needs `wal_level = logical`, wal2json, and the REPLICATION attribute (or superuser).
 */
export async function openChangeStream<T extends Record<string, unknown>>(
  sql: Sql<T>,
  { publication = "supabase_realtime" }: { publication?: string } = {},
): Promise<ChangeStream> {
  const slot = `kiln_realtime_${randomUUID().replaceAll("-", "")}`;
  const connection: ReservedSql<T> = await sql.reserve();
  try {
    await connection`select pg_create_logical_replication_slot(${slot}, 'wal2json', true)`;
  } catch (error) {
    connection.release();
    throw error;
  }
  let closed = false;
  let pending: Promise<unknown> = Promise.resolve();

  // One read at a time, so changes come back in stream order.
  function serially<R>(work: () => Promise<R>): Promise<R> {
    const result = pending.then(work);
    pending = result.catch(() => {});
    return result;
  }

  return {
    slot,
    publication,
    read: () =>
      serially(async () => {
        if (closed) throw new Error(`change stream ${slot} is closed`);
        // The slot decodes only WAL that is flushed. With `synchronous_commit = off` (the local
        // stack runs so) a commit can return before its record is flushed, and would show up in
        // a later read instead. So first commit a WAL record of our own synchronously: flushing
        // it flushes every commit before it. The record is a logical message ("M"), dropped below.
        await connection`
          select set_config('synchronous_commit', 'on', true), pg_logical_emit_message(true, 'kiln:flush', '')`;
        // realtime.list_changes' call: the publication's actions and tables, wal2json's options.
        const rows = await connection<{ lsn: string; xid: string; data: Wal2JsonChange; add_tables: string }[]>`
          with pub as materialized (
            select concat_ws(',',
                     case when bool_or(pp.pubinsert) then 'insert' end,
                     case when bool_or(pp.pubupdate) then 'update' end,
                     case when bool_or(pp.pubdelete) then 'delete' end) as actions,
                   coalesce(string_agg(
                     regexp_replace(ppt.schemaname, ${ESCAPE_PATTERN}, ${ESCAPE_REPLACEMENT}, 'g') || '.' ||
                     regexp_replace(ppt.tablename, ${ESCAPE_PATTERN}, ${ESCAPE_REPLACEMENT}, 'g'), ',')
                     filter (where ppt.tablename is not null), '') as add_tables
              from pg_publication pp
              left join pg_publication_tables ppt on ppt.pubname = pp.pubname
             where pp.pubname = ${publication}
             group by pp.pubname
          )
          select x.lsn::text, x.xid::text, x.data::jsonb as data, pub.add_tables
            from pub,
                 pg_logical_slot_get_changes(${slot}, null, null,
                   'include-pk', 'true',
                   'include-transaction', 'false',
                   'include-timestamp', 'true',
                   'include-type-oids', 'true',
                   'format-version', '2',
                   'actions', pub.actions,
                   'add-tables', pub.add_tables) x`;
        // Like Realtime: with no table in the publication the changes are read and dropped.
        return rows
          .filter((row) => row.add_tables !== "")
          .map((row) => toChange(row.data, Number(row.xid), row.lsn))
          .filter((change): change is Change => change !== null);
      }),
    close: () =>
      serially(async () => {
        if (closed) return;
        closed = true;
        try {
          await connection`select pg_drop_replication_slot(${slot})`;
        } finally {
          connection.release();
        }
      }),
  };
}

/** A postgres_changes subscription: a signed-in user and `column=eq.value` filters. */
export interface Subscription {
  userId: string;
  filters?: { column: string; value: string }[];
}

/**
 * Whether Realtime would deliver `change` to `subscriber`, decided as `realtime.apply_rls` does:
 * every filter must hold on the record (compared as the column's type; a delete's on the old row,
 * its identity), then, for inserts and updates of a table with RLS, the subscriber must be able to
 * select the row by its primary key as role `authenticated` with their claims. Deletes skip that
 * check: a row that is gone cannot be selected.
 */
export async function receives<T extends Record<string, unknown>>(
  sql: Sql<T>,
  change: Change,
  subscriber: Subscription,
): Promise<boolean> {
  const [source, columns] = change.action === "delete" ? [change.oldRecord, change.oldColumns] : [change.record, change.columns];
  for (const { column, value } of subscriber.filters ?? []) {
    const type = columns.find((c) => c.name === column);
    if (!type || source[column] === undefined || source[column] === null) return false;
    const [{ type_name }] = await sql<{ type_name: string }[]>`select format_type(${type.typeoid}::oid, null) as type_name`;
    const [{ equal }] = await sql.unsafe<{ equal: boolean }[]>(`select $1::${type_name} = $2::${type_name} as equal`, [
      source[column],
      value,
    ] as never[]);
    if (!equal) return false;
  }
  const entity = `${quoteIdentifier(change.schema)}.${quoteIdentifier(change.table)}`;
  const [{ rls }] = await sql<{ rls: boolean }[]>`select relrowsecurity as rls from pg_class where oid = ${entity}::regclass`;
  if (!rls || change.action === "delete") return true;
  if (change.pk.length === 0) return false; // Realtime answers "no primary key"
  return (await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: subscriber.userId, role: "authenticated" })}, true)`;
    const where = change.pk.map((column, i) => `${quoteIdentifier(column.name)} = $${i + 1}`);
    const [{ visible }] = await tx.unsafe<{ visible: boolean }[]>(
      `select exists(select 1 from ${entity} where ${where.join(" and ")}) as visible`,
      change.pk.map((column) => change.record[column.name]) as never[],
    );
    return visible;
  })) as boolean;
}
