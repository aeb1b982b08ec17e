import { randomUUID } from "node:crypto";
import type { ReservedSql, Sql, TransactionSql } from "postgres";

// Helpers for races over real connections: one transaction per connection, all released at once.

export type Tx = TransactionSql<Record<string, unknown>>;

/** Resolves for everyone once `parties` callers are waiting; rejects them all after the deadline. */
export function barrier(parties: number, timeoutMs = 15_000): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  let fail!: (error: Error) => void;
  const open = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  open.catch(() => {}); // observed by each waiter
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

/**
 * `count` transactions, each on its own connection (the pool needs `count` + 1), that run `work`
 * at the same instant: each opens its transaction and runs `setup`, then waits until all are open.
 */
export function atOnce<T>(
  sql: Sql<Record<string, unknown>>,
  count: number,
  work: (tx: Tx, i: number) => Promise<T>,
  setup: (tx: Tx) => Promise<unknown> = async () => {},
): Promise<PromiseSettledResult<T>[]> {
  const allStarted = barrier(count);
  return Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      sql.begin(async (tx) => {
        await setup(tx);
        await allStarted();
        return work(tx, i);
      }) as Promise<T>
    ),
  );
}

/** Enters the transaction as PostgREST does for a signed-in user's request. */
export async function asUser(tx: Tx, userId: string): Promise<void> {
  await tx`set local role authenticated`;
  await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated", aud: "authenticated" })}, true)`;
}

/** Enters the transaction as PostgREST does for the service key (an operator). */
export async function asServiceRole(tx: Tx): Promise<void> {
  await tx`set local role service_role`;
  await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
}

/** A user signed up as the auth service would (the trigger gives the profile and welcome grant). */
export async function signUp(sql: Sql<Record<string, unknown>>, label: string): Promise<string> {
  const id = randomUUID();
  await sql`
    insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values (${id}, 'authenticated', 'authenticated', ${`${label}-${id}@test.kiln.local`},
            '{"provider": "email", "providers": ["email"]}', '{}', now(), now())`;
  return id;
}

/** The SQLSTATE of every rejected result (the message when there is none). */
export function errorCodes(results: PromiseSettledResult<unknown>[]): string[] {
  return results
    .filter((result): result is PromiseRejectedResult => result.status === "rejected")
    .map((result) => String((result.reason as { code?: string }).code ?? result.reason));
}

/** The values of every fulfilled result. */
export function fulfilled<T>(results: PromiseSettledResult<T>[]): T[] {
  return results
    .filter((result): result is PromiseFulfilledResult<T> => result.status === "fulfilled")
    .map((result) => result.value);
}

/** A call's outcome as a value: what it returned, or its error's code and message. */
export function settle<V>(work: Promise<V>) {
  return work.then(
    (value) => ({ ok: true as const, value }),
    (error: { code?: string; message?: string }) => ({ ok: false as const, code: error.code, message: error.message }),
  );
}

/**
 * Resolves once the backend `pid` waits for a lock (read from pg_locks through `sql`), or, given
 * `work` (that backend's call), once the call has settled. Rejects after 5 s of neither: a
 * deadline, not a sleep, so a race that never forms fails its test.
 */
export async function blockedOnALock(sql: Sql<Record<string, unknown>>, pid: number, work?: Promise<unknown>): Promise<void> {
  let done = false;
  void work?.then(() => {}, () => {}).finally(() => {
    done = true;
  });
  for (let i = 0; i < 200 && !done; i++) {
    const [{ waiting }] = await sql<{ waiting: boolean }[]>`
      select exists (select from pg_locks where pid = ${pid} and not granted) as waiting`;
    if (waiting) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (!done) throw new Error(`backend ${pid} never waited for a lock${work ? " nor finished" : ""}`);
}

/** Runs `work` in a transaction on a reserved connection, as the signed-in user when `as` is given. */
export async function inTransaction<T>(db: ReservedSql<Record<string, unknown>>, work: () => Promise<T>, as?: string): Promise<T> {
  await db`begin`;
  try {
    if (as) await asUser(db as unknown as Tx, as);
    const result = await work();
    await db`commit`;
    return result;
  } catch (error) {
    await db`rollback`;
    throw error;
  }
}
