import { randomUUID } from "node:crypto";
import type { ReservedSql, Sql } from "postgres";

// A small reader of a publication's change stream, for tests: what hosted Realtime would see.
//
// Hosted Realtime reads the `supabase_realtime` publication through logical replication. Locally
// there is no Realtime server, but the cluster runs with `wal_level = logical`, so the same stream
// can be read over plain SQL: a logical slot with the `pgoutput` plugin (the plugin that honours
// publications: their tables, actions, column lists and row filters) read with
// `pg_logical_slot_get_binary_changes`. Each row it returns is one pgoutput protocol v1 message,
// decoded here (https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html).
//
// The slot only ever returns whole committed transactions, and read() flushes the WAL first, so a
// change is readable as soon as the writing transaction's commit has returned (even with
// `synchronous_commit = off`): no polling or sleeping is needed.

// ---------------------------------------------------------------------------------------------
// Protocol messages
// ---------------------------------------------------------------------------------------------

export type ReplicaIdentity = "default" | "nothing" | "full" | "index";

export interface RelationColumn {
  name: string;
  /** pg_type oid of the column. */
  typeOid: number;
  /** atttypmod (-1 when none). */
  typeModifier: number;
  /** Part of the replica identity (the primary key under `default`). */
  isKey: boolean;
}

export interface Relation {
  id: number;
  schema: string;
  table: string;
  replicaIdentity: ReplicaIdentity;
  /** The published columns, in table order (a publication column list can narrow them). */
  columns: RelationColumn[];
}

/** One column of a TupleData: null, an unchanged TOASTed value (not sent), or its text form. */
export type TupleValue = { kind: "null" } | { kind: "unchanged-toast" } | { kind: "text"; value: string };

export type PgOutputMessage =
  | { type: "begin"; finalLsn: string; commitTime: Date; xid: number }
  | { type: "commit"; flags: number; commitLsn: string; endLsn: string; commitTime: Date }
  | { type: "origin"; originLsn: string; name: string }
  | { type: "relation"; relation: Relation }
  | { type: "type"; typeOid: number; schema: string; name: string }
  | { type: "insert"; relationId: number; newTuple: TupleValue[] }
  | {
      type: "update";
      relationId: number;
      /** 'key': only the replica identity columns are meaningful; 'full': the whole old row. */
      oldTupleKind?: "key" | "full";
      oldTuple?: TupleValue[];
      newTuple: TupleValue[];
    }
  | { type: "delete"; relationId: number; oldTupleKind: "key" | "full"; oldTuple: TupleValue[] }
  | { type: "truncate"; relationIds: number[]; cascade: boolean; restartIdentity: boolean }
  | { type: "message"; transactional: boolean; lsn: string; prefix: string; content: Uint8Array };

export class PgOutputDecodeError extends Error {
  override name = "PgOutputDecodeError";
}

const POSTGRES_EPOCH_MS = 946_684_800_000; // 2000-01-01T00:00:00Z
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads big-endian protocol fields from one message; throws on a short or malformed buffer. */
class Reader {
  private readonly view: DataView;
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {
    // A Buffer from the driver is often a slice of a larger pool: respect its offset.
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(count: number, what: string): void {
    if (this.offset + count > this.bytes.byteLength) {
      throw new PgOutputDecodeError(
        `truncated message: ${what} needs ${count} byte(s) at offset ${this.offset}, message has ${this.bytes.byteLength}`,
      );
    }
  }

  get done(): boolean {
    return this.offset === this.bytes.byteLength;
  }

  int8(what = "int8"): number {
    this.need(1, what);
    return this.view.getUint8(this.offset++);
  }

  char(what = "byte"): string {
    return String.fromCharCode(this.int8(what));
  }

  int16(what = "int16"): number {
    this.need(2, what);
    const value = this.view.getInt16(this.offset);
    this.offset += 2;
    return value;
  }

  int32(what = "int32"): number {
    this.need(4, what);
    const value = this.view.getInt32(this.offset);
    this.offset += 4;
    return value;
  }

  uint32(what = "uint32"): number {
    this.need(4, what);
    const value = this.view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }

  uint64(what = "int64"): bigint {
    this.need(8, what);
    const value = this.view.getBigUint64(this.offset);
    this.offset += 8;
    return value;
  }

  lsn(what = "LSN"): string {
    const value = this.uint64(what);
    return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
  }

  timestamp(what = "timestamp"): Date {
    this.need(8, what);
    const micros = this.view.getBigInt64(this.offset);
    this.offset += 8;
    return new Date(POSTGRES_EPOCH_MS + Number(micros / 1000n));
  }

  /** A null-terminated string. */
  cstring(what = "string"): string {
    const end = this.bytes.indexOf(0, this.offset);
    if (end < 0) throw new PgOutputDecodeError(`truncated message: unterminated ${what} at offset ${this.offset}`);
    const value = utf8.decode(this.bytes.subarray(this.offset, end));
    this.offset = end + 1;
    return value;
  }

  bytesOf(count: number, what = "bytes"): Uint8Array {
    if (count < 0) throw new PgOutputDecodeError(`negative length ${count} for ${what}`);
    this.need(count, what);
    const value = this.bytes.subarray(this.offset, this.offset + count);
    this.offset += count;
    return value;
  }

  tuple(): TupleValue[] {
    const count = this.int16("TupleData column count");
    if (count < 0) throw new PgOutputDecodeError(`negative TupleData column count ${count}`);
    const values: TupleValue[] = [];
    for (let i = 0; i < count; i++) {
      const kind = this.char(`kind of TupleData column ${i}`);
      switch (kind) {
        case "n":
          values.push({ kind: "null" });
          break;
        case "u":
          values.push({ kind: "unchanged-toast" });
          break;
        case "t": {
          const length = this.int32(`length of TupleData column ${i}`);
          values.push({ kind: "text", value: utf8.decode(this.bytesOf(length, `TupleData column ${i}`)) });
          break;
        }
        default:
          // 'b' (binary) only appears when the `binary` option is requested, which this reader never does.
          throw new PgOutputDecodeError(`unsupported TupleData kind '${kind}' in column ${i}`);
      }
    }
    return values;
  }
}

const replicaIdentities: Record<string, ReplicaIdentity> = { d: "default", n: "nothing", f: "full", i: "index" };

function oldTupleKind(marker: string): "key" | "full" {
  if (marker === "K") return "key";
  if (marker === "O") return "full";
  throw new PgOutputDecodeError(`expected old tuple marker 'K' or 'O', got '${marker}'`);
}

function expectNewTuple(marker: string): void {
  if (marker !== "N") throw new PgOutputDecodeError(`expected new tuple marker 'N', got '${marker}'`);
}

/** Decodes one pgoutput protocol v1 message (one row of pg_logical_slot_get_binary_changes). */
export function decodeMessage(bytes: Uint8Array): PgOutputMessage {
  const r = new Reader(bytes);
  const tag = r.char("message type");
  let message: PgOutputMessage;
  switch (tag) {
    case "B":
      message = { type: "begin", finalLsn: r.lsn("final LSN"), commitTime: r.timestamp("commit time"), xid: r.uint32("xid") };
      break;
    case "C":
      message = {
        type: "commit",
        flags: r.int8("flags"),
        commitLsn: r.lsn("commit LSN"),
        endLsn: r.lsn("end LSN"),
        commitTime: r.timestamp("commit time"),
      };
      break;
    case "O":
      message = { type: "origin", originLsn: r.lsn("origin LSN"), name: r.cstring("origin name") };
      break;
    case "R": {
      const id = r.uint32("relation id");
      const schema = r.cstring("namespace") || "pg_catalog"; // an empty namespace means pg_catalog
      const table = r.cstring("relation name");
      const identity = r.char("replica identity");
      const replicaIdentity = replicaIdentities[identity];
      if (!replicaIdentity) throw new PgOutputDecodeError(`unknown replica identity '${identity}'`);
      const count = r.int16("column count");
      const columns: RelationColumn[] = [];
      for (let i = 0; i < count; i++) {
        const flags = r.int8(`flags of column ${i}`);
        columns.push({
          isKey: (flags & 1) === 1,
          name: r.cstring(`name of column ${i}`),
          typeOid: r.uint32(`type of column ${i}`),
          typeModifier: r.int32(`type modifier of column ${i}`),
        });
      }
      message = { type: "relation", relation: { id, schema, table, replicaIdentity, columns } };
      break;
    }
    case "Y":
      message = { type: "type", typeOid: r.uint32("type oid"), schema: r.cstring("namespace") || "pg_catalog", name: r.cstring("type name") };
      break;
    case "I": {
      const relationId = r.uint32("relation id");
      expectNewTuple(r.char("tuple marker"));
      message = { type: "insert", relationId, newTuple: r.tuple() };
      break;
    }
    case "U": {
      const relationId = r.uint32("relation id");
      let marker = r.char("tuple marker");
      let old: { oldTupleKind: "key" | "full"; oldTuple: TupleValue[] } | undefined;
      if (marker === "K" || marker === "O") {
        old = { oldTupleKind: oldTupleKind(marker), oldTuple: r.tuple() };
        marker = r.char("new tuple marker");
      }
      expectNewTuple(marker);
      message = { type: "update", relationId, ...old, newTuple: r.tuple() };
      break;
    }
    case "D": {
      const relationId = r.uint32("relation id");
      const kind = oldTupleKind(r.char("tuple marker"));
      message = { type: "delete", relationId, oldTupleKind: kind, oldTuple: r.tuple() };
      break;
    }
    case "T": {
      const count = r.int32("relation count");
      const options = r.int8("options");
      const relationIds: number[] = [];
      for (let i = 0; i < count; i++) relationIds.push(r.uint32(`relation id ${i}`));
      message = { type: "truncate", relationIds, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0 };
      break;
    }
    case "M": {
      // Logical decoding messages (pg_logical_emit_message); only sent with the `messages` option.
      const transactional = r.int8("flags") === 1;
      const lsn = r.lsn("message LSN");
      const prefix = r.cstring("prefix");
      const content = r.bytesOf(r.int32("content length"), "content");
      message = { type: "message", transactional, lsn, prefix, content };
      break;
    }
    default:
      throw new PgOutputDecodeError(`unknown pgoutput message type '${tag}' (0x${tag.charCodeAt(0).toString(16)})`);
  }
  if (!r.done) throw new PgOutputDecodeError(`trailing bytes after '${tag}' message`);
  return message;
}

// ---------------------------------------------------------------------------------------------
// Changes: messages resolved against their relations, the shape Realtime payloads have
// ---------------------------------------------------------------------------------------------

export type ChangeKind = "insert" | "update" | "delete" | "truncate";
export type Row = Record<string, string | null>;

export interface Change {
  kind: ChangeKind;
  schema: string;
  table: string;
  /**
   * The new row, every value in Postgres text form (insert, update): what Realtime would send as
   * `new`. Empty for delete and truncate, like Realtime's `new: {}`. An update does not resend an
   * unchanged TOASTed (large, out-of-line) value: it is taken from the full old row when the table
   * has replica identity full (as Realtime does), and otherwise absent and listed in unchangedToast.
   */
  row: Row;
  /**
   * The old row (update, delete) when the table's replica identity sends one: under `default`
   * only the primary key, on updates only when the key changed; under `full` the whole row.
   */
  oldRow?: Row;
  /** 'key': oldRow holds the replica identity columns only; 'full': the whole old row. */
  oldRowKind?: "key" | "full";
  /** Columns missing from `row` because the update did not resend their unchanged TOASTed value. */
  unchangedToast: string[];
  /** The relation as announced in the stream (published columns, replica identity). */
  relation: Relation;
  /** Transaction id and commit LSN of the transaction that made the change. */
  xid?: number;
  commitLsn?: string;
}

/**
 * Turns pgoutput messages into changes. Keeps the relation cache (Relation messages precede the
 * first change of each relation) and buffers each transaction until its Commit, so every change
 * carries its transaction's xid and commit LSN. Feed it the messages in stream order.
 */
export class PgOutputDecoder {
  readonly relations = new Map<number, Relation>();
  private transaction: { xid: number; changes: Change[] } | undefined;

  /** Decodes one message; returns the changes that became complete (a whole transaction at Commit). */
  push(bytes: Uint8Array): Change[] {
    return this.apply(decodeMessage(bytes));
  }

  apply(message: PgOutputMessage): Change[] {
    switch (message.type) {
      case "begin":
        if (this.transaction) throw new PgOutputDecodeError(`Begin of xid ${message.xid} inside xid ${this.transaction.xid}`);
        this.transaction = { xid: message.xid, changes: [] };
        return [];
      case "commit": {
        if (!this.transaction) throw new PgOutputDecodeError(`Commit at ${message.commitLsn} without a Begin`);
        const changes = this.transaction.changes.map((change) => ({ ...change, commitLsn: message.commitLsn }));
        this.transaction = undefined;
        return changes;
      }
      case "relation":
        this.relations.set(message.relation.id, message.relation);
        return [];
      case "type":
      case "origin":
      case "message":
        return [];
      case "insert":
        return this.emit([{ ...this.base("insert", message.relationId), ...this.newRow(message.relationId, message.newTuple) }]);
      case "update": {
        const change: Change = {
          ...this.base("update", message.relationId),
          ...this.newRow(message.relationId, message.newTuple),
          ...this.oldRow(message.relationId, message.oldTupleKind, message.oldTuple),
        };
        // Like Realtime: an unchanged TOASTed value is taken from the full old row when there is one
        // (replica identity full); without one it cannot be recovered and stays in unchangedToast.
        if (change.oldRowKind === "full" && change.oldRow) {
          const oldRow = change.oldRow;
          const recovered = change.unchangedToast.filter((name) => name in oldRow);
          for (const name of recovered) change.row[name] = oldRow[name];
          change.unchangedToast = change.unchangedToast.filter((name) => !recovered.includes(name));
        }
        return this.emit([change]);
      }
      case "delete":
        return this.emit([
          {
            ...this.base("delete", message.relationId),
            row: {},
            unchangedToast: [],
            ...this.oldRow(message.relationId, message.oldTupleKind, message.oldTuple),
          },
        ]);
      case "truncate":
        return this.emit(message.relationIds.map((id) => ({ ...this.base("truncate", id), row: {}, unchangedToast: [] })));
    }
  }

  private emit(changes: Change[]): Change[] {
    if (!this.transaction) return changes; // not expected from a slot, but nothing is lost
    this.transaction.changes.push(...changes);
    return [];
  }

  private relation(id: number): Relation {
    const relation = this.relations.get(id);
    if (!relation) throw new PgOutputDecodeError(`change for relation ${id} before its Relation message`);
    return relation;
  }

  private base(kind: ChangeKind, relationId: number) {
    const relation = this.relation(relationId);
    return { kind, schema: relation.schema, table: relation.table, relation, xid: this.transaction?.xid };
  }

  private columnsOf(relationId: number, tuple: TupleValue[]): RelationColumn[] {
    const { columns, schema, table } = this.relation(relationId);
    if (tuple.length !== columns.length) {
      throw new PgOutputDecodeError(`${schema}.${table}: tuple has ${tuple.length} columns, relation has ${columns.length}`);
    }
    return columns;
  }

  private newRow(relationId: number, tuple: TupleValue[]): { row: Row; unchangedToast: string[] } {
    const columns = this.columnsOf(relationId, tuple);
    const row: Row = {};
    const unchangedToast: string[] = [];
    tuple.forEach((value, i) => {
      const name = columns[i].name;
      if (value.kind === "unchanged-toast") unchangedToast.push(name);
      else row[name] = value.kind === "null" ? null : value.value;
    });
    return { row, unchangedToast };
  }

  private oldRow(
    relationId: number,
    kind: "key" | "full" | undefined,
    tuple: TupleValue[] | undefined,
  ): { oldRow?: Row; oldRowKind?: "key" | "full" } {
    if (!kind || !tuple) return {};
    const columns = this.columnsOf(relationId, tuple);
    const oldRow: Row = {};
    tuple.forEach((value, i) => {
      // A key tuple sends null for every non-key column: leave those out rather than report nulls.
      if (kind === "key" && !columns[i].isKey) return;
      if (value.kind !== "unchanged-toast") oldRow[columns[i].name] = value.kind === "null" ? null : value.value;
    });
    return { oldRow, oldRowKind: kind };
  }
}

/** Decodes a sequence of messages (in stream order) into changes. Pure: no database needed. */
export function decodeChanges(messages: Iterable<Uint8Array>, decoder = new PgOutputDecoder()): Change[] {
  const changes: Change[] = [];
  for (const message of messages) changes.push(...decoder.push(message));
  return changes;
}

// ---------------------------------------------------------------------------------------------
// Reading a publication's stream over SQL
// ---------------------------------------------------------------------------------------------

export interface ChangeStreamOptions {
  /** The publication to follow (what hosted Realtime reads). */
  publication?: string;
  /** Slot name; a unique one by default. */
  slotName?: string;
}

export interface ChangeStream {
  readonly slot: string;
  readonly publication: string;
  /** Relations announced so far (published columns and replica identity), by relation oid. */
  readonly relations: ReadonlyMap<number, Relation>;
  /** Every change committed since the last read (or since the stream opened), in commit order. */
  read(): Promise<Change[]>;
  /** Drops the slot and releases its connection. Safe to call twice. */
  close(): Promise<void>;
}

/** Quotes a name for the `publication_names` option (parsed as a comma-separated identifier list). */
function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Opens a logical slot on `publication` and returns a reader of its changes from now on.
 *
 * The slot is temporary and lives on one connection reserved from `sql` for the stream's lifetime:
 * close() drops it, and if close() is never reached the slot still dies with the connection (when
 * the pool ends or the process exits), so it can never be left behind holding WAL. Creating a slot
 * waits for transactions already running to finish. Needs `wal_level = logical` and the
 * REPLICATION attribute (or superuser).
 */
export async function openChangeStream<T extends Record<string, unknown>>(
  sql: Sql<T>,
  { publication = "supabase_realtime", slotName }: ChangeStreamOptions = {},
): Promise<ChangeStream> {
  const slot = slotName ?? `kiln_changes_${randomUUID().replaceAll("-", "")}`;
  const connection: ReservedSql<T> = await sql.reserve();
  try {
    await connection`select pg_create_logical_replication_slot(${slot}, 'pgoutput', true)`;
  } catch (error) {
    connection.release();
    throw error;
  }

  const decoder = new PgOutputDecoder();
  const publicationNames = quoteIdentifier(publication);
  let closed = false;
  let pending: Promise<unknown> = Promise.resolve();

  // One read at a time, so messages reach the decoder in stream order.
  function serially<R>(work: () => Promise<R>): Promise<R> {
    const result = pending.then(work);
    pending = result.catch(() => {});
    return result;
  }

  return {
    slot,
    publication,
    relations: decoder.relations,
    read: () =>
      serially(async () => {
        if (closed) throw new Error(`change stream ${slot} is closed`);
        // The slot decodes only WAL that is flushed. With `synchronous_commit = off` (the local
        // stack runs so) a commit can return before its record is flushed, and would show up in
        // a later read instead. So first commit a WAL record of our own synchronously: flushing
        // it flushes every commit before it, i.e. every transaction that committed before this
        // read. The record is a logical message, which pgoutput never sends (no `messages`).
        await connection`
          select set_config('synchronous_commit', 'on', true), pg_logical_emit_message(true, 'kiln:flush', '')`;
        const rows = await connection<{ data: Uint8Array }[]>`
          select data
            from pg_logical_slot_get_binary_changes(${slot}, null, null,
                   'proto_version', '1', 'publication_names', ${publicationNames})`;
        return decodeChanges(rows.map((row) => row.data), decoder);
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
