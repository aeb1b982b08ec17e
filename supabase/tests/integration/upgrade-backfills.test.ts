/**
 * Migrations that repair what a database migrated from an earlier version still holds: rows the
 * earlier code left that the current code never looks at. The migrations ran long ago on this
 * database (on a fresh one there is nothing to repair), so each is run again here, as `postgres`
 * (the role `supabase db push` applies them as), in a transaction that is always rolled back, on
 * the state the earlier code left.
 *
 * - 20261203160000: createTasks the reconcile tick declared lost before 20261202171000 while pg_net
 *   had not sent them stay in its queue; they are taken back out, and nothing else is.
 * - 20261203160100: accounts deleted before 20261201120000 left their Storage folders with no
 *   purge; each folder named by a user id without a profile gets one, once.
 * - 20261203200100: createTasks answered HTTP 502, 504, 520 or 524 were logged as not accepted;
 *   those answers are marked maybe accepted and counted as their jobs' unknown outcomes, once.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { asUser, signUp as signUpWith, type Tx } from "./support/concurrency.ts";
import { connectAsAdmin } from "./support/db.ts";

const dir = join(import.meta.dirname, "../../migrations");
const migration = (name: string) => readFileSync(join(dir, name), "utf8");
const withdrawLostCreates = migration("20261203160000_lost_creates_still_queued_withdrawn.sql");
const purgeOrphanedFolders = migration("20261203160100_folders_of_accounts_deleted_before_purges.sql");
const gatewayErrorsMaybeAccepted = migration("20261203200100_gateway_errors_may_have_created_the_task.sql");

// The platform's superuser sets up what only the platform writes (auth.users, storage.objects,
// pg_net's queue as the earlier code left it); the migration itself runs as postgres.
const admin = connectAsAdmin({ max: 1 });
afterAll(() => admin.end({ timeout: 5 }));

class Rollback extends Error {}

/** Runs `work` in a transaction that is always rolled back; resolves with what it returned. */
async function rolledBack<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
  let result!: T;
  await admin.begin(async (tx) => {
    result = await work(tx as unknown as Tx);
    throw new Rollback();
  }).catch((error) => {
    if (!(error instanceof Rollback)) throw error;
  });
  return result;
}

/** Applies a migration's SQL as postgres, inside the caller's transaction. */
async function apply(tx: Tx, sql: string): Promise<void> {
  await tx`set local role postgres`;
  await tx.unsafe(sql);
  await tx`reset role`;
}

/** A user signed up as the auth service would, inside the caller's transaction. */
const signUp = (tx: Tx) => signUpWith(tx as unknown as postgres.Sql<Record<string, unknown>>, "upgrade");

/** A job started as the app does, left waiting: with no KIE key in Vault nothing is sent. */
async function startJob(tx: Tx, userId: string): Promise<string> {
  await asUser(tx, userId);
  const [{ id }] = await tx`select id from public.start_generation(prompt => 'a red fox')`;
  await tx`reset role`;
  return id as string;
}

/** A createTask in pg_net's queue whose callback URL names `job` and `attempt`; its queue id. */
async function queueCreate(tx: Tx, job: string, attempt: number): Promise<number> {
  const [{ id }] = await tx`
    select net.http_post(
      url := 'https://kie.test/api/v1/jobs/createTask',
      body := jsonb_build_object('model', 'google/imagen4-fast',
                'callBackUrl', format('https://fn.test/functions/v1/kie-callback?job=%s&attempt=%s&token=%s', ${job}::uuid, ${attempt}::int, md5(random()::text)),
                'input', jsonb_build_object('prompt', 'a red fox'))) as id`;
  return Number(id);
}

/** Our log's row for a createTask: resolved as lost (as the earlier reconcile did) or unresolved. */
async function logCreate(tx: Tx, job: string, attempt: number, netId: number, lost: boolean, minutesAgo: number): Promise<number> {
  const [{ id }] = await tx`
    insert into private.requests (job_id, attempt, kind, net_request_id, queued_at, sent_at, timeout_ms, resolved_at, outcome,
                                  maybe_accepted, error)
    values (${job}, ${attempt}, 'create', ${netId}, now() - make_interval(mins => ${minutesAgo}), now() - make_interval(mins => ${minutesAgo}),
            8000, case when ${lost}::boolean then now() end, ${lost ? "lost" : null}, ${lost}, ${lost ? "got no response: lost" : null})
    returning id`;
  return Number(id);
}

describe("20261203160000: createTasks declared lost while still queued", () => {
  it("takes back out exactly the queued createTasks our log resolved as lost, and uncounts them", async () => {
    const seen = await rolledBack(async (tx) => {
      await tx`delete from vault.secrets where name in ('kie_api_key', 'functions_base_url')`;
      await tx`update public.plans set max_active_jobs = 100, starts_per_minute = 100`;
      const user = await signUp(tx);
      await tx`select public.grant_credits(${user}, 100, 'test credits')`;
      const [stale, current, reused, elsewhere] = [await startJob(tx, user), await startJob(tx, user), await startJob(tx, user), await startJob(tx, user)];
      await tx`update private.job_pipeline set stage = 'creating', attempt = 2, unknown_outcomes = 1 where job_id in (${stale}, ${current})`;
      await tx`update private.job_pipeline set stage = 'creating', attempt = 2, unknown_outcomes = 1 where job_id in (${reused}, ${elsewhere})`;

      // Declared lost while queued: taken back.
      const staleQueue = await queueCreate(tx, stale, 1);
      const staleRequest = await logCreate(tx, stale, 1, staleQueue, true, 10);
      // The current attempt, unresolved and queued: the deadline tick's to handle, not this.
      const currentQueue = await queueCreate(tx, current, 2);
      await logCreate(tx, current, 2, currentQueue, false, 1);
      // pg_net's ids restarted: the queued row with this id is a newer request of ours.
      const reusedQueue = await queueCreate(tx, reused, 2);
      const reusedRequest = await logCreate(tx, reused, 1, reusedQueue, true, 30);
      await logCreate(tx, reused, 2, reusedQueue, false, 1);
      // The queued row with this id is a createTask of another job.
      const otherQueue = await queueCreate(tx, stale, 3);
      const elsewhereRequest = await logCreate(tx, elsewhere, 1, otherQueue, true, 10);

      await apply(tx, withdrawLostCreates);
      const queued = async () =>
        (await tx`select id from net.http_request_queue where id in (${staleQueue}, ${currentQueue}, ${reusedQueue}, ${otherQueue}) order by id`)
          .map((r) => Number(r.id));
      const requests = await tx`select id, outcome, maybe_accepted from private.requests
                                 where id in (${staleRequest}, ${reusedRequest}, ${elsewhereRequest}) order by id`;
      const unknown = await tx`select job_id, unknown_outcomes from private.job_pipeline
                                where job_id in (${stale}, ${current}, ${reused}, ${elsewhere})`;
      const afterFirst = await queued();
      await apply(tx, withdrawLostCreates);
      const afterSecond = await queued();
      const unknownAgain = await tx`select unknown_outcomes from private.job_pipeline where job_id = ${stale}`;
      return {
        ids: { staleQueue, currentQueue, reusedQueue, otherQueue, staleRequest, reusedRequest, elsewhereRequest, stale, current, reused, elsewhere },
        afterFirst,
        afterSecond,
        requests: Object.fromEntries(requests.map((r) => [Number(r.id), [r.outcome, r.maybe_accepted]])),
        unknown: Object.fromEntries(unknown.map((r) => [r.job_id as string, r.unknown_outcomes as number])),
        unknownAgain: unknownAgain[0].unknown_outcomes as number,
      };
    });
    const { ids } = seen;
    expect(seen.afterFirst).toEqual([ids.currentQueue, ids.reusedQueue, ids.otherQueue].sort((a, b) => a - b));
    expect(seen.requests[ids.staleRequest]).toEqual(["withdrawn", false]);
    expect(seen.requests[ids.reusedRequest]).toEqual(["lost", true]);
    expect(seen.requests[ids.elsewhereRequest]).toEqual(["lost", true]);
    expect(seen.unknown).toEqual({ [ids.stale]: 0, [ids.current]: 1, [ids.reused]: 1, [ids.elsewhere]: 1 });
    // Applied again, it finds nothing more.
    expect(seen.afterSecond).toEqual(seen.afterFirst);
    expect(seen.unknownAgain).toBe(0);
  });
});

describe("20261203160100: the Storage folders of accounts deleted before their deletion was recorded", () => {
  it("records one purge per bucket for a folder whose user has no profile, and none for anyone else", async () => {
    const seen = await rolledBack(async (tx) => {
      const gone = randomUUID();
      const goneWithPurge = randomUUID();
      const live = await signUp(tx);
      const objects: [string, string][] = [
        ["generated-images", `${gone}/${randomUUID()}/d1/0.png`],
        ["generated-images", `${gone}/${randomUUID()}/d1/0.png`],
        ["user-uploads", `${gone}/portrait-1.png`],
        ["generated-images", `${goneWithPurge}/${randomUUID()}/d1/0.png`],
        ["generated-images", `${live}/${randomUUID()}/d1/0.png`],
        ["user-uploads", `${live}/portrait-1.png`],
        ["user-uploads", `${gone.toUpperCase()}/not-a-folder-we-write.png`],
        ["generated-images", "misc/readme.png"],
      ];
      for (const [bucket, name] of objects) {
        await tx`insert into storage.objects (bucket_id, name) values (${bucket}, ${name})`;
      }
      await tx`insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
               values ('generated-images', ${`${goneWithPurge}/`}, ${goneWithPurge}, 'account_deleted', now() - interval '1 day', now())`;

      const purges = async () =>
        (await tx`select bucket_id, path, user_id, reason, done_at from private.storage_purges
                   where user_id in (${gone}, ${goneWithPurge}, ${live}) or path like 'misc%' or path ilike ${`${gone}%`}
                   order by path, bucket_id`)
          .map((r) => `${r.bucket_id} ${r.path} ${r.user_id} ${r.reason} ${r.done_at === null ? "open" : "done"}`);
      await apply(tx, purgeOrphanedFolders);
      const first = await purges();
      await apply(tx, purgeOrphanedFolders);
      return { gone, goneWithPurge, first, second: await purges() };
    });
    const { gone, goneWithPurge } = seen;
    expect([...seen.first].sort()).toEqual([
      `generated-images ${gone}/ ${gone} account_deleted open`,
      `user-uploads ${gone}/ ${gone} account_deleted open`,
      `generated-images ${goneWithPurge}/ ${goneWithPurge} account_deleted open`,
    ].sort());
    expect(seen.second).toEqual(seen.first);
  });
});

describe("20261203200100: createTasks a gateway answered before they counted as maybe accepted", () => {
  /** A createTask of the job's first attempt answered as the earlier code logged it: not accepted. */
  async function logAnswered(tx: Tx, job: string, status: number, bodyCode: number | null): Promise<number> {
    const [{ id }] = await tx`
      insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms, resolved_at, http_status, body_code,
                                    outcome, maybe_accepted, error)
      values (${job}, 1, 'create', -1, now() - interval '1 minute', 8000, now() - interval '50 seconds', ${status}, ${bodyCode},
              'transient', false, ${`create http ${status}`})
      returning id`;
    return Number(id);
  }

  /** Jobs waiting for their retry after a createTask answered with each status (and body code). */
  async function waitingAfter(tx: Tx, answers: [number, number | null][]): Promise<{ job: string; request: number }[]> {
    await tx`delete from vault.secrets where name in ('kie_api_key', 'functions_base_url')`;
    await tx`update public.plans set max_active_jobs = 100, starts_per_minute = 100`;
    const user = await signUp(tx);
    await tx`select public.grant_credits(${user}, 100, 'test credits')`;
    const waiting = [];
    for (const [status, bodyCode] of answers) {
      const job = await startJob(tx, user);
      await tx`update private.job_pipeline set attempt = 1, retries = 1, next_run_at = now() + interval '1 minute' where job_id = ${job}`;
      waiting.push({ job, request: await logAnswered(tx, job, status, bodyCode) });
    }
    return waiting;
  }

  const state = (tx: Tx, jobs: { job: string; request: number }[]) =>
    tx`select r.http_status, r.body_code, r.maybe_accepted, p.unknown_outcomes,
              private.is_job_task(p.job_id, 1, 'task-never-heard-of') as task_known
         from private.requests r join private.job_pipeline p on p.job_id = r.job_id
        where r.id in ${tx(jobs.map((j) => j.request))}
        order by r.http_status, r.body_code nulls first`;

  it("marks the answers a gateway gave after passing the request on, counts them once, and leaves the rest", async () => {
    const seen = await rolledBack(async (tx) => {
      const jobs = await waitingAfter(tx, [[502, null], [504, null], [520, null], [524, null], [522, null], [503, null], [502, 500]]);
      await apply(tx, gatewayErrorsMaybeAccepted);
      const first = await state(tx, jobs);
      await apply(tx, gatewayErrorsMaybeAccepted);
      return { first, second: await state(tx, jobs) };
    });
    const row = (status: number, bodyCode: number | null, maybe: boolean) =>
      ({ http_status: status, body_code: bodyCode, maybe_accepted: maybe, unknown_outcomes: maybe ? 1 : 0, task_known: maybe });
    expect(seen.first.map((r) => ({ ...r }))).toEqual([
      row(502, null, true),
      // KIE's own envelope (code 500) came through: its answer, which made nothing.
      row(502, 500, false),
      row(503, null, false),
      row(504, null, true),
      row(520, null, true),
      // Cloudflare could not reach KIE's origin.
      row(522, null, false),
      row(524, null, true),
    ]);
    // Applied again, it counts nothing twice.
    expect(seen.second).toEqual(seen.first);
  });

  it("leaves the answers of a code an operator had already classified as not accepted", async () => {
    const seen = await rolledBack(async (tx) => {
      const jobs = await waitingAfter(tx, [[502, null], [504, null]]);
      await tx`update private.kie_outcomes set maybe_accepted = false
                where (operation, source, code) = ('create', 'http', '502')`;
      await apply(tx, gatewayErrorsMaybeAccepted);
      return (await state(tx, jobs)).map((r) => [r.http_status, r.maybe_accepted, r.unknown_outcomes]);
    });
    expect(seen).toEqual([[502, false, 0], [504, true, 1]]);
  });
});
