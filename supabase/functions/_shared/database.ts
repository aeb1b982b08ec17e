/**
 * The only module of the Edge Functions that talks to Postgres.
 *
 * Everything goes through service-only SQL functions in `private` (not exposed by the Data API,
 * so supabase-js could not reach them): the rules — what a KIE report means, when a job may
 * complete, retries and refunds — live there. Kysely over the `postgres` driver, connected
 * with the URL the function passes in (`KILN_CALLBACK_DB_URL`, the narrow `kiln_callback` role;
 * `SUPABASE_DB_URL`, which hosted Edge Functions receive, only where that is unset).
 */
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type RawBuilder,
  sql,
} from "kysely";
import postgres from "postgres";
import { z } from "zod";
import type { Database } from "./database.types.ts";

type Job = Database["public"]["Tables"]["generation_jobs"]["Row"];

/** What the callback needs to know about one attempt of one job. */
export interface CallbackTarget {
  userId: Job["user_id"];
  /** Lower-case hex SHA-256 of the attempt's callback token. */
  callbackTokenHash: string;
  /** false once the job is finished or a later attempt replaced this one: a late duplicate. */
  accepting: boolean;
  /** Whether the report's task may complete this job (`private.is_job_task`). */
  taskKnown: boolean;
  /** The job's image_count: a success with more results is refused. */
  maxResults: number;
  /** results.allowed_hosts, lower-case: every download and redirect is checked against it. */
  resultHosts: string[];
}

/** The database's reading of a KIE task report (a callback body or a recordInfo reply). */
export type TaskReport =
  | { outcome: "success"; resultUrls: string[] }
  | { outcome: "failure"; failCode: string | null; failMessage: string }
  | { outcome: "running" }
  | { outcome: "unreadable"; reason: string };

/** `duplicate`: the attempt was already finished (or superseded); nothing changed. */
export type Applied = "applied" | "duplicate";
/** `unknown_task`: the task is not this job's; recorded for operators, nothing changed. */
export type Completed = Applied | "unknown_task";
/**
 * A delivery that found no image, as the database judged it: `failed`, the job failed now as
 * unusable (refunded: such deliveries outlasted results.non_image_grace_seconds); `retry`, counted
 * (or not the current task's), the sender should retry; `duplicate`, the job is finished or gone.
 */
export type NonImageVerdict = "failed" | "retry" | "duplicate";

export interface DatabasePort {
  /** null when there is no such job, or no such attempt of it. `taskId`: the report's task. */
  callbackTarget(jobId: Job["id"], attempt: number, taskId: string): Promise<CallbackTarget | null>;
  /** `report` is the envelope `{ code, msg, data }` exactly as KIE sent it. */
  interpretTaskReport(report: unknown): Promise<TaskReport>;
  /** `objectPaths`: the stored images in order, as Storage keys, bucket first (`generated-images/<user>/<job>/<delivery>/0.png`). */
  completeJob(jobId: Job["id"], attempt: number, taskId: string, objectPaths: string[]): Promise<Completed>;
  /**
   * A delivery that failed midway and whose own Storage delete failed: the database records a purge
   * of its folder (`private.callback_discard`). The folder (`<user>/<job>/<delivery>/`), or null
   * when nothing was recorded (the paths are not one delivery folder of the job, or the job keeps it).
   */
  discardDelivery(jobId: Job["id"], objectPaths: string[]): Promise<string | null>;
  recordProviderFailure(
    jobId: Job["id"],
    attempt: number,
    taskId: string,
    failCode: string | null,
    failMessage: string,
  ): Promise<Applied>;
  /** A result image was no image at all (`private.callback_non_image`); `reason` never holds the URL. */
  recordNonImage(jobId: Job["id"], attempt: number, taskId: string, reason: string): Promise<NonImageVerdict>;
}

// The SQL this module calls, all in one place: service-only functions of the dispatch pipeline
// (README "For the callback function"). JSON crosses as text (the driver would encode a
// jsonb-typed string parameter a second time), and arrays as JSON, so no driver-specific
// encoding is involved.
const SQL = {
  callbackTarget: (jobId: string, attempt: number, taskId: string) =>
    sql`select user_id, token_hash, accepting, task_known, max_results, result_hosts
          from private.callback_target(${jobId}::uuid, ${attempt}::integer, ${taskId}::text)`,
  interpretTaskReport: (report: unknown) =>
    sql`select kind, result_urls, fail_code, fail_message, message, body_code
          from private.interpret_task_report(${JSON.stringify(report)}::text::jsonb)`,
  completeJob: (jobId: string, attempt: number, taskId: string, paths: string[]) =>
    sql`select private.callback_complete(${jobId}::uuid, ${attempt}::integer, ${taskId}::text,
          array(select jsonb_array_elements_text(${JSON.stringify(paths)}::text::jsonb))) as result`,
  discardDelivery: (jobId: string, paths: string[]) =>
    sql`select private.callback_discard(${jobId}::uuid,
          array(select jsonb_array_elements_text(${JSON.stringify(paths)}::text::jsonb))) as folder`,
  recordProviderFailure: (
    jobId: string,
    attempt: number,
    taskId: string,
    code: string | null,
    message: string,
  ) =>
    sql`select private.callback_fail(${jobId}::uuid, ${attempt}::integer, ${taskId}::text,
          ${code}::text, ${message}::text) as result`,
  recordNonImage: (jobId: string, attempt: number, taskId: string, reason: string) =>
    sql`select private.callback_non_image(${jobId}::uuid, ${attempt}::integer, ${taskId}::text,
          ${reason}::text) as result`,
};

const targetRow = z.object({
  user_id: z.string(),
  token_hash: z.string().regex(/^[0-9a-f]{64}$/),
  accepting: z.boolean(),
  task_known: z.boolean(),
  max_results: z.number().int().positive(),
  result_hosts: z.array(z.string()),
});
const reportRow = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("success"), result_urls: z.array(z.string()).min(1) }),
  z.object({ kind: z.literal("failed"), fail_code: z.string().nullable(), fail_message: z.string() }),
  z.object({ kind: z.literal("running") }),
  z.object({
    kind: z.literal("unreadable"),
    message: z.string().nullable(),
    body_code: z.number().nullable(),
  }),
]);
const appliedRow = z.object({ result: z.enum(["applied", "duplicate"]) });
const completedRow = z.object({ result: z.enum(["applied", "duplicate", "unknown_task"]) });
const discardedRow = z.object({ folder: z.string().nullable() });
const nonImageRow = z.object({ result: z.enum(["failed", "retry", "duplicate"]) });

/** Why SQL could not read a report, for the answer's `msg`: another KIE code, or SQL's own words. */
export function unreadableReason(bodyCode: number | null, message: string | null): string {
  if (bodyCode !== null && bodyCode !== 200 && bodyCode !== 501) {
    return `KIE code ${bodyCode}${message ? `: ${message}` : ""}`;
  }
  return message ?? "not a KIE report";
}

/** Kysely sees the generated public schema; the private functions are reached with `sql`. */
type PublicTables = { [T in keyof Database["public"]["Tables"]]: Database["public"]["Tables"][T]["Row"] };

export function postgresDatabase(databaseUrl: string): DatabasePort {
  const pool = postgres(databaseUrl, { max: 2, prepare: false, connect_timeout: 10, idle_timeout: 30 });
  const db = new Kysely<PublicTables>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => postgresJsDriver(pool),
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
  const rows = async (query: RawBuilder<unknown>) => (await query.execute(db)).rows;
  return {
    async callbackTarget(jobId, attempt, taskId) {
      const [row] = await rows(SQL.callbackTarget(jobId, attempt, taskId));
      if (row === undefined) return null;
      const r = targetRow.parse(row);
      return {
        userId: r.user_id,
        callbackTokenHash: r.token_hash,
        accepting: r.accepting,
        taskKnown: r.task_known,
        maxResults: r.max_results,
        resultHosts: r.result_hosts,
      };
    },
    async interpretTaskReport(report) {
      const r = reportRow.parse((await rows(SQL.interpretTaskReport(report)))[0]);
      switch (r.kind) {
        case "success":
          return { outcome: "success", resultUrls: r.result_urls };
        case "failed":
          return { outcome: "failure", failCode: r.fail_code, failMessage: r.fail_message };
        case "running":
          return { outcome: "running" };
        case "unreadable":
          return { outcome: "unreadable", reason: unreadableReason(r.body_code, r.message) };
      }
    },
    async completeJob(jobId, attempt, taskId, paths) {
      return completedRow.parse((await rows(SQL.completeJob(jobId, attempt, taskId, paths)))[0]).result;
    },
    async discardDelivery(jobId, paths) {
      return discardedRow.parse((await rows(SQL.discardDelivery(jobId, paths)))[0]).folder;
    },
    async recordProviderFailure(jobId, attempt, taskId, code, message) {
      const query = SQL.recordProviderFailure(jobId, attempt, taskId, code, message);
      return appliedRow.parse((await rows(query))[0]).result;
    },
    async recordNonImage(jobId, attempt, taskId, reason) {
      return nonImageRow.parse((await rows(SQL.recordNonImage(jobId, attempt, taskId, reason)))[0]).result;
    },
  };
}

/** The smallest kysely driver over a postgres.js pool: one reserved connection per query. */
function postgresJsDriver(pool: postgres.Sql): Driver {
  const connections = new WeakMap<DatabaseConnection, postgres.ReservedSql>();
  const run = (c: DatabaseConnection, text: string) => c.executeQuery(CompiledQuery.raw(text)).then(() => {});
  return {
    init: () => Promise.resolve(),
    async acquireConnection() {
      const reserved = await pool.reserve();
      const connection: DatabaseConnection = {
        async executeQuery<R>(query: CompiledQuery) {
          const result = await reserved.unsafe(
            query.sql,
            query.parameters as postgres.ParameterOrJSON<never>[],
          );
          return { rows: [...result] as R[], numAffectedRows: BigInt(result.count ?? 0) };
        },
        streamQuery() {
          throw new Error("streaming is not used");
        },
      };
      connections.set(connection, reserved);
      return connection;
    },
    beginTransaction: (c) => run(c, "begin"),
    commitTransaction: (c) => run(c, "commit"),
    rollbackTransaction: (c) => run(c, "rollback"),
    releaseConnection(c) {
      connections.get(c)?.release();
      return Promise.resolve();
    },
    destroy: () => pool.end(),
  };
}
