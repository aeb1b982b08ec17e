import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asUser, blockedOnALock, inTransaction, settle, type Tx } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { dispatchTestBed } from "./support/dispatch.ts";
import { testPlan } from "./support/plans.ts";

// Lock order over real connections. Every pipeline transition locks a job's pipeline row first
// and its job row second (a tick claims pipeline rows, then fail_job / expire_results update the
// job). A user's call that took the two the other way round deadlocked with the tick. Each race is
// made deterministic: the tick's claim is held, the user's call starts and blocks, and only then
// does the tick go on to the job row. In the wrong order Postgres finds a deadlock (after
// deadlock_timeout) and aborts one side.

const sql = connect({ max: 6 });
const plan = testPlan(sql, "lockorder", "Lock order test", 100);
const testBed = dispatchTestBed(sql, plan, {
  kie_api_key: "test-kie-key",
  functions_base_url: "https://fn.invalid/functions/v1",
  finalize_credential: "test-finalize",
});
let userId = "";

type Db = Awaited<ReturnType<typeof sql.reserve>>;

/** Runs `work` with no create token free, so a job it starts stays waiting. */
async function withoutCreateTokens<T>(work: () => Promise<T>): Promise<T> {
  // As text: a free slot may be '-infinity', which a Date cannot hold.
  const saved = await sql<{ slot: number; available_at: string }[]>`
    select slot, available_at::text from private.rate_slots where bucket = 'create'`;
  await sql`update private.rate_slots set available_at = 'infinity' where bucket = 'create'`;
  try {
    return await work();
  } finally {
    for (const { slot, available_at } of saved) {
      await sql`update private.rate_slots set available_at = ${available_at}::text::timestamptz where bucket = 'create' and slot = ${slot}`;
    }
  }
}

/** A job of the user's that stays waiting: no create token is free while it starts. */
async function waitingJob(owner = userId): Promise<string> {
  const [job] = await withoutCreateTokens(() =>
    sql.begin(async (tx) => {
      await asUser(tx, owner);
      return tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a lighthouse at dusk')`;
    })
  );
  return job.id;
}

/**
 * Resolves once the backend `pid` waits for a lock the backend `holder` holds; rejects if `work`
 * (that backend's call) settles first, or after 5 s.
 */
async function blockedBy(pid: number, holder: number, work: Promise<unknown>): Promise<void> {
  let done = false;
  void work.then(() => {}, () => {}).finally(() => {
    done = true;
  });
  for (let i = 0; i < 200 && !done; i++) {
    const [{ blocked }] = await sql<{ blocked: boolean }[]>`
      select ${holder}::int = any (pg_blocking_pids(${pid}::int)) as blocked`;
    if (blocked) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`backend ${pid} never waited for backend ${holder}${done ? ": its call settled first" : ""}`);
}

/** The profile and jobs a deleted account left behind (none, once the cascade has run). */
async function whatIsLeftOf(account: string) {
  const [left] = await sql<{ profiles: number; jobs: number }[]>`
    select (select count(*)::int from public.profiles where id = ${account}) as profiles,
           (select count(*)::int from public.generation_jobs where user_id = ${account}) as jobs`;
  return left;
}

/** A finished job with a kept result: one of the user's, cancelled while it waited. */
async function cancelledJob(owner = userId): Promise<string> {
  const jobId = await waitingJob(owner);
  await sql.begin(async (tx) => {
    await asUser(tx, owner);
    await tx`select public.cancel_generation(${jobId})`;
  });
  return jobId;
}

/**
 * Two transactions queued behind a lock: `hold` takes it in a transaction of its own, `first` runs
 * until it waits for that lock, `second` until it waits for a lock or is done; then the holder
 * commits. Each side's outcome: a deadlock between the two is 40P01 on one of them.
 */
async function queuedBehind(
  hold: (db: Db) => Promise<unknown>,
  first: (db: Db) => Promise<unknown>,
  second: (db: Db) => Promise<unknown>,
) {
  const [holder, one, two] = [await sql.reserve(), await sql.reserve(), await sql.reserve()];
  try {
    const [{ pid: onePid }] = await one<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const [{ pid: twoPid }] = await two<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await holder`begin`;
    await hold(holder);
    const firstOutcome = settle(inTransaction(one, () => first(one)));
    await blockedOnALock(sql, onePid);
    const secondOutcome = settle(inTransaction(two, () => second(two)));
    await blockedOnALock(sql, twoPid, secondOutcome);
    await holder`commit`;
    return { first: await firstOutcome, second: await secondOutcome };
  } finally {
    await holder`rollback`.catch(() => {}); // a no-op after the commit
    holder.release();
    one.release();
    two.release();
  }
}

/** A job of `owner`'s whose createTask pg_net has taken out of its queue, not yet answered. */
async function sentJob(owner: string, prompt: string): Promise<{ jobId: string; netId: string }> {
  const [job] = await sql.begin(async (tx) => {
    await asUser(tx, owner);
    return tx<{ id: string }[]>`select id from public.start_generation(prompt => ${prompt})`;
  });
  const [{ netId }] = await sql<{ netId: string }[]>`
    select net_request_id::text as "netId" from private.requests where job_id = ${job.id} and kind = 'create'`;
  await sql`delete from net.http_request_queue where id = ${netId}::bigint`;
  return { jobId: job.id, netId };
}

/**
 * Holds the tick's claim on the job's pipeline row, starts `userCall` on another connection, and
 * once that call waits for a lock runs `tickWork` in the tick's transaction and commits. Each
 * side's outcome, value or error code.
 */
async function race<T>(jobId: string, userCall: (db: Db) => Promise<unknown>, tickWork: (db: Db) => Promise<T>) {
  const tick = await sql.reserve();
  const user = await sql.reserve();
  try {
    const [{ pid }] = await user<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const tickOutcome = settle(inTransaction(tick, async () => {
      await tick`select from private.job_pipeline where job_id = ${jobId} for update`;
      const userOutcome = settle(userCall(user));
      try {
        await blockedOnALock(sql, pid);
        return { tick: await tickWork(tick), userOutcome };
      } catch (error) {
        await userOutcome;
        throw error;
      }
    }));
    const outcome = await tickOutcome;
    if (!outcome.ok) return { tick: outcome, user: { ok: false as const, code: "not run", message: "" } };
    return { tick: { ok: true as const, value: outcome.value.tick }, user: await outcome.value.userOutcome };
  } finally {
    tick.release();
    user.release();
  }
}

beforeAll(async () => {
  await testBed.setUp();
  userId = await plan.signUp({ credits: 100 });
});

afterAll(() => testBed.tearDown().finally(() => sql.end({ timeout: 5 })));

describe("a user's call racing a tick on the same job", () => {
  it("cancel against the deadline sweep: the sweep times the job out, the cancel waits and gets KL023", async () => {
    const jobId = await waitingJob();
    await sql`update private.job_pipeline set deadline_at = now() - interval '1 minute' where job_id = ${jobId}`;
    const [{ attempt }] = await sql<{ attempt: number }[]>`select attempt from private.job_pipeline where job_id = ${jobId}`;

    const outcome = await race(
      jobId,
      (db) => inTransaction(db, () => db`select public.cancel_generation(${jobId})`, userId),
      // What deadline_tick does with a claimed waiting job past its deadline.
      (db) => db`select private.fail_job(${jobId}, array['waiting'], ${attempt}, 'timed_out',
                   'The image took too long to generate. Your credits were refunded.', 'deadline passed') as failed`,
    );

    expect(outcome.tick).toEqual({ ok: true, value: [{ failed: true }] });
    expect(outcome.user).toMatchObject({ ok: false, code: "KL023" });
    const [job] = await sql`
      select j.status, j.error_code, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds
        from public.generation_jobs j where j.id = ${jobId}`;
    expect(job).toEqual({ status: "failed", error_code: "timed_out", refunds: 1 });
  });

  it("delete against the retention sweep: the sweep removes the results, then the delete goes ahead", async () => {
    const jobId = await cancelledJob();
    const [{ expires }] = await sql<{ expires: Date | null }[]>`
      select results_expire_at as expires from private.job_pipeline where job_id = ${jobId}`;
    expect(expires).not.toBeNull(); // a finished job's results expire, so the delete moves the pipeline row

    const outcome = await race(
      jobId,
      (db) => inTransaction(db, () => db`select public.delete_generation(${jobId})`, userId),
      // What expire_results does with a claimed job whose results are due.
      (db) => db`update public.generation_jobs set result_urls = '{}', results_removed_at = now()
                  where id = ${jobId} and results_removed_at is null returning id`,
    );

    expect(outcome.tick).toMatchObject({ ok: true, value: [{ id: jobId }] });
    expect(outcome.user).toMatchObject({ ok: true });
    const [job] = await sql`
      select j.deleted_at is not null as deleted, p.results_expire_at
        from public.generation_jobs j join private.job_pipeline p on p.job_id = j.id where j.id = ${jobId}`;
    expect(job).toEqual({ deleted: true, results_expire_at: null });
  });

  it("account deletion against the deadline sweep: the sweep refunds the job, then the account goes", async () => {
    // auth.admin.deleteUser is a delete on auth.users; it cascades to the profile, the jobs, their
    // pipeline rows. The sweep's refund needs the profile the cascade would already hold.
    const leaving = await plan.signUp({ credits: 100 });
    const jobId = await waitingJob(leaving);
    await sql`update private.job_pipeline set deadline_at = now() - interval '1 minute' where job_id = ${jobId}`;
    const [{ attempt }] = await sql<{ attempt: number }[]>`select attempt from private.job_pipeline where job_id = ${jobId}`;

    const outcome = await race(
      jobId,
      (db) => inTransaction(db, () => db`delete from auth.users where id = ${leaving}`),
      (db) => db`select private.fail_job(${jobId}, array['waiting'], ${attempt}, 'timed_out',
                   'The image took too long to generate. Your credits were refunded.', 'deadline passed') as failed`,
    );

    expect(outcome.tick).toEqual({ ok: true, value: [{ failed: true }] });
    expect(outcome.user).toMatchObject({ ok: true });
    const [left] = await sql`
      select (select count(*)::int from public.profiles where id = ${leaving}) as profiles,
             (select count(*)::int from public.generation_jobs where id = ${jobId}) as jobs,
             (select count(*)::int from private.job_pipeline where job_id = ${jobId}) as pipeline_rows`;
    expect(left).toEqual({ profiles: 0, jobs: 0, pipeline_rows: 0 });
  });

  it("account deletion against a plan change, while a tick holds a finished job's row: neither deadlocks", async () => {
    // set_plan updates the profile and then (profiles_plan_moves_results_expiry) the pipeline rows of
    // the user's kept results; the account deletion locks the pipeline rows (on_auth_user_deleted)
    // and then deletes the profile. Made deterministic: a retention sweep holds the finished job's
    // pipeline row, the deletion queues for it, then the plan change; the sweep commits.
    const leaving = await plan.signUp({ credits: 100 });
    const jobId = await cancelledJob(leaving);
    const [{ expires }] = await sql<{ expires: Date | null }[]>`
      select results_expire_at as expires from private.job_pipeline where job_id = ${jobId}`;
    expect(expires).not.toBeNull(); // a kept result: the plan change moves its expiry
    const { first: deletion, second: planChange } = await queuedBehind(
      (sweep) => sweep`select from private.job_pipeline where job_id = ${jobId} for update`,
      (deleter) => deleter`delete from auth.users where id = ${leaving}`,
      (billing) => billing`select public.set_plan(${leaving}, 'free')`,
    );
    expect(deletion).toMatchObject({ ok: true });
    // The plan change comes after the account is gone: its user is unknown.
    expect(planChange).toMatchObject({ ok: false, code: "KL025" });
    const [left] = await sql`select count(*)::int as profiles from public.profiles where id = ${leaving}`;
    expect(left).toEqual({ profiles: 0 });
  });

  it("an operator's retention change against a plan change of one of its users: neither deadlocks", async () => {
    // Changing a plan's result_retention_days moves the expiry of its users' kept results; the
    // update locked their pipeline rows in the order its plan read them, here newest job first (the
    // plan is forced, as a large table could choose it). set_plan takes them in job id order. Made
    // deterministic: a tick holds the newer job's row, the operator's update queues for it, then
    // the plan change; the tick commits. Seen as 40P01 for the operator's update.
    const user = await plan.signUp({ credits: 100 });
    const older = await waitingJob(user);
    const newer = await cancelledJob(user); // the newer finishes first, so its expiry comes first too
    await sql.begin(async (tx) => {
      await asUser(tx, user);
      await tx`select public.cancel_generation(${older})`;
    });
    const { first: retention, second: planChange } = await queuedBehind(
      (tick) => tick`select from private.job_pipeline where job_id = ${newer} for update`,
      async (operator) => {
        await operator`set local enable_seqscan = off`;
        await operator`set local enable_hashjoin = off`;
        await operator`set local enable_mergejoin = off`;
        return operator`update public.plans set result_retention_days = result_retention_days + 1 where id = ${plan.id}`;
      },
      (billing) => billing`select public.set_plan(${user}, 'free')`,
    );
    expect(retention).toMatchObject({ ok: true });
    expect(planChange).toMatchObject({ ok: true });
    await sql`update public.plans set result_retention_days = result_retention_days - 1 where id = ${plan.id}`;
  });

  it("account deletion against the user's retry of a failed job: neither deadlocks", async () => {
    // retry_generation locked the failed job, then (create_generation_job) the profile; the
    // deletion's cascade deletes the profile, then the jobs. Made deterministic: another
    // transaction holds the profile's lock (as any ledger write does while it runs), the deletion
    // queues for it, then the retry; that transaction commits. Seen as 40P01 for the retry.
    const leaving = await plan.signUp({ credits: 100 });
    const jobId = await cancelledJob(leaving);
    const { first: deletion, second: retry } = await queuedBehind(
      (holder) => holder`select from public.profiles where id = ${leaving} for no key update`,
      (deleter) => deleter`delete from auth.users where id = ${leaving}`,
      async (app) => {
        await asUser(app as unknown as Tx, leaving);
        return app`select public.retry_generation(${jobId})`;
      },
    );
    expect(deletion).toMatchObject({ ok: true });
    // The retry comes after the account is gone: the job is not found.
    expect(retry).toMatchObject({ ok: false, code: "KL021" });
  });

  // Two calls that refund the job a start made: its owner's cancel (while it waits, as the owner)
  // and the deadline sweep; a failure callback or the reconcile tick takes the same locks in the
  // same order (pipeline row, job, profile).
  const refundingTheNewJob: [string, (db: Db, jobId: string) => Promise<unknown>, boolean, object][] = [
    ["a cancel of the job it made", (db, jobId) => db`select public.cancel_generation(${jobId})`, true,
     // It comes after the account is gone: the job is not found.
     { ok: false, code: "KL021" }],
    ["the deadline sweep timing out the job it made", (db) => db`select private.deadline_tick()`, false,
     // It passes over the job's pipeline row, which the deletion holds, or waits and finds it gone.
     // (It turns an error on one job, a deadlock too, into the deadline_error alert: see below.)
     { ok: true }],
  ];

  it.each(refundingTheNewJob)("account deletion while the account's start is in flight, against %s: neither deadlocks", async (
    _label,
    refund,
    asOwner,
    refundOutcome,
  ) => {
    // A start holds the profile (for update) while it inserts its job and pipeline row, which the
    // deletion's trigger (on_auth_user_deleted) cannot see yet: the cascade queued for the profile
    // behind the start, then held it without the new job's pipeline row. The call refunding the
    // new job takes that pipeline row and the job, then the profile; the cascade deletes the
    // profile, then the jobs. Made deterministic: the start runs in a transaction of its own and
    // the deletion queues behind it; the start commits; another transaction holds one of the
    // account's ledger entries, so the cascade stops between the profile and the jobs; the
    // refunding call runs until it waits (or is done); that transaction commits. Seen as 40P01 for
    // the deletion or the refunding call.
    const leaving = await plan.signUp({ credits: 100 });
    const [starter, pauser, deleter, other] = [await sql.reserve(), await sql.reserve(), await sql.reserve(), await sql.reserve()];
    let jobId = "";
    try {
      const [{ pid: pauserPid }] = await pauser<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const [{ pid: deleterPid }] = await deleter<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const [{ pid: otherPid }] = await other<{ pid: number }[]>`select pg_backend_pid() as pid`;
      // The new job waits for a token: its owner can cancel it.
      const [job] = await withoutCreateTokens(async () => {
        await starter`begin`;
        await asUser(starter as unknown as Tx, leaving);
        return starter<{ id: string }[]>`select id from public.start_generation(prompt => 'a barn at first light')`;
      });
      jobId = job.id;
      // Already past its deadline (the sweep's reason to take it), set before the start commits.
      await starter`reset role`;
      await starter`update private.job_pipeline set deadline_at = now() - interval '1 minute' where job_id = ${jobId}`;
      await pauser`begin`;
      await pauser`select from public.credit_ledger where user_id = ${leaving} for update`;
      const deletion = settle(inTransaction(deleter, () => deleter`delete from auth.users where id = ${leaving}`));
      await blockedOnALock(sql, deleterPid); // behind the start
      await starter`commit`;
      await blockedBy(deleterPid, pauserPid, deletion); // past the profile, before the jobs
      const refunding = settle(inTransaction(other, () => refund(other, job.id), asOwner ? leaving : undefined));
      await blockedOnALock(sql, otherPid, refunding);
      await pauser`commit`;

      expect(await deletion).toMatchObject({ ok: true });
      expect(await refunding).toMatchObject(refundOutcome);
    } finally {
      await starter`rollback`.catch(() => {}); // a no-op after the commit
      await pauser`rollback`.catch(() => {});
      for (const db of [starter, pauser, deleter, other]) db.release();
    }
    expect(await whatIsLeftOf(leaving)).toEqual({ profiles: 0, jobs: 0 });
    const errors = await sql`
      select message from private.alerts where key = 'deadline_error' and cleared_at is null and details -> 'job_ids' ? ${jobId}`;
    expect(errors).toEqual([]);
  });

  it("account deletion against a retry of a job made after its first pass: neither deadlocks", async () => {
    // The deletion's trigger (on_auth_user_deleted) locked the rows it could see, then held the
    // profile for key share while it locked the rows again. A job committed after the first pass,
    // cancelled and retried: the retry holds that job's pipeline row and waits for the profile
    // (for update, which key share excludes); the trigger waited for the pipeline row. Made
    // deterministic: a tick's claim on an older job's pipeline row stops the trigger's first
    // pass; the new job is made and cancelled; a refund's lock on the profile (for no key update,
    // which key share passes) keeps the retry waiting with the job's pipeline row; the claim
    // commits, the trigger runs until it waits for that row; the refund commits. Seen as 40P01 for
    // the deletion or the retry.
    const leaving = await plan.signUp({ credits: 100 });
    const olderJob = await waitingJob(leaving);
    const [tick, deleter, refund, app] = [await sql.reserve(), await sql.reserve(), await sql.reserve(), await sql.reserve()];
    const pidOf = async (db: Db) => (await db<{ pid: number }[]>`select pg_backend_pid() as pid`)[0].pid;
    try {
      await withoutCreateTokens(async () => {
        const [tickPid, deleterPid, refundPid, appPid] = [await pidOf(tick), await pidOf(deleter), await pidOf(refund), await pidOf(app)];
        await tick`begin`;
        await tick`select from private.job_pipeline where job_id = ${olderJob} for update`;
        const deletion = settle(inTransaction(deleter, () => deleter`delete from auth.users where id = ${leaving}`));
        await blockedBy(deleterPid, tickPid, deletion); // in the first pass
        const newJob = await cancelledJob(leaving);
        await refund`begin`;
        await refund`select from public.profiles where id = ${leaving} for no key update`;
        const retry = settle(inTransaction(app, () => app`select public.retry_generation(${newJob})`, leaving));
        await blockedBy(appPid, refundPid, retry); // holding the new job's pipeline row
        await tick`commit`;
        await blockedBy(deleterPid, appPid, deletion); // past the first pass, at the new job's row
        await refund`commit`;

        expect(await deletion).toMatchObject({ ok: true });
        expect(await retry).toMatchObject({ ok: true });
      });
    } finally {
      await tick`rollback`.catch(() => {}); // a no-op after the commit
      await refund`rollback`.catch(() => {});
      for (const db of [tick, deleter, refund, app]) db.release();
    }
    expect(await whatIsLeftOf(leaving)).toEqual({ profiles: 0, jobs: 0 });
  });

  it("account deletion against the reconcile of a createTask sent between its two passes: neither deadlocks", async () => {
    // The trigger locks the account's unanswered requests, then its pipeline rows. The dispatch
    // tick, holding a waiting job's pipeline row, sends its createTask and commits between the
    // two: the trigger holds the pipeline row, not the new request. The reconcile tick claims the
    // request and waits for the pipeline row; the cascade, deleting the request, waited for the
    // tick. Made deterministic: the tick's claim stops the trigger's pipeline pass, the tick
    // sends and commits; a start in flight (the profile, for update) stops the trigger at its
    // key share; the answer is stored and the reconcile tick runs until it waits; the start
    // commits. Seen as 40P01 for the deletion or the reconcile.
    const leaving = await plan.signUp({ credits: 100 });
    const jobId = await waitingJob(leaving);
    const [tick, deleter, start, reconciler] = [await sql.reserve(), await sql.reserve(), await sql.reserve(), await sql.reserve()];
    const pidOf = async (db: Db) => (await db<{ pid: number }[]>`select pg_backend_pid() as pid`)[0].pid;
    let netId = "";
    let requestId = "";
    try {
      const [tickPid, deleterPid, startPid, reconcilerPid] = [await pidOf(tick), await pidOf(deleter), await pidOf(start), await pidOf(reconciler)];
      await start`begin`;
      await start`select from public.profiles where id = ${leaving} for update`;
      await tick`begin`;
      await tick`select from private.job_pipeline where job_id = ${jobId} for update`;
      const deletion = settle(inTransaction(deleter, () => deleter`delete from auth.users where id = ${leaving}`));
      await blockedBy(deleterPid, tickPid, deletion); // past the requests, at the pipeline row
      await tick`select private.send_create_task(${jobId})`;
      await tick`commit`;
      await blockedBy(deleterPid, startPid, deletion); // holding the pipeline row, at the key share
      [{ netId, requestId }] = await sql<{ netId: string; requestId: string }[]>`
        select net_request_id::text as "netId", id::text as "requestId" from private.requests where job_id = ${jobId} and kind = 'create'`;
      // pg_net sent it and stored KIE's answer.
      await sql`delete from net.http_request_queue where id = ${netId}::bigint`;
      await sql`insert into net._http_response (id, status_code, content)
                values (${netId}::bigint, 200, ${JSON.stringify({ code: 200, data: { taskId: `task-${jobId}` } })})`;
      const reconcile = settle(inTransaction(reconciler, () => reconciler`select private.reconcile_tick()`));
      await blockedBy(reconcilerPid, deleterPid, reconcile); // holding the request, at the pipeline row
      await start`commit`;

      expect(await deletion).toMatchObject({ ok: true });
      expect(await reconcile).toMatchObject({ ok: true });
    } finally {
      await tick`rollback`.catch(() => {}); // a no-op after the commit
      await start`rollback`.catch(() => {});
      for (const db of [tick, deleter, start, reconciler]) db.release();
      if (netId) await sql`delete from net._http_response where id = ${netId}::bigint`;
    }
    expect(await whatIsLeftOf(leaving)).toEqual({ profiles: 0, jobs: 0 });
    const errors = await sql`
      select message from private.alerts
       where key = 'reconcile_error' and cleared_at is null and details ->> 'request_id' = ${requestId}`;
    expect(errors).toEqual([]);
  });

  it("account deletion against the reconcile of its job's createTask answer: neither deadlocks", async () => {
    // reconcile_tick claims the request row, then (apply_response) updates the job's pipeline row;
    // the deletion locked the pipeline row (on_auth_user_deleted) and its cascade then deletes the
    // request row. Made deterministic: another transaction holds the profile, the deletion queues
    // for it holding the pipeline row, the tick claims the request and queues for the pipeline
    // row; the holder commits. Seen as 40P01 for the tick, which turns an error applying an answer
    // into an alert.
    const leaving = await plan.signUp({ credits: 100 });
    const [job] = await sql.begin(async (tx) => {
      await asUser(tx, leaving);
      return tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a harbour in fog')`;
    });
    const [request] = await sql<{ id: string; net_request_id: string }[]>`
      select id::text, net_request_id::text from private.requests where job_id = ${job.id} and kind = 'create'`;
    // pg_net sent it and stored KIE's answer.
    await sql`delete from net.http_request_queue where id = ${request.net_request_id}::bigint`;
    await sql`insert into net._http_response (id, status_code, content)
              values (${request.net_request_id}::bigint, 200, ${JSON.stringify({ code: 200, data: { taskId: `task-${job.id}` } })})`;
    const { first: deletion, second: reconcile } = await queuedBehind(
      (holder) => holder`select from public.profiles where id = ${leaving} for no key update`,
      (deleter) => deleter`delete from auth.users where id = ${leaving}`,
      // It waits for the pipeline row, or (the request row taken first) passes over the request.
      (ticker) => ticker`select private.reconcile_tick()`,
    );
    expect(deletion).toMatchObject({ ok: true });
    expect(reconcile).toMatchObject({ ok: true });
    const errors = await sql`
      select message from private.alerts
       where key = 'reconcile_error' and cleared_at is null and details ->> 'request_id' = ${request.id}`;
    expect(errors).toEqual([]);
    await sql`delete from net._http_response where id = ${request.net_request_id}::bigint`;
  });

  it("account deletion against the deadline sweep withdrawing the job's queued createTask: neither deadlocks", async () => {
    // The deletion takes the account's unanswered request rows before its pipeline rows (the
    // reconcile tick's order); the sweep, holding the pipeline row, must not wait for the request.
    const leaving = await plan.signUp({ credits: 100 });
    const [job] = await sql.begin(async (tx) => {
      await asUser(tx, leaving);
      return tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a lantern in snow')`;
    });
    await sql`update private.job_pipeline set deadline_at = now() - interval '1 minute' where job_id = ${job.id}`;

    const outcome = await race(
      job.id,
      (db) => inTransaction(db, () => db`delete from auth.users where id = ${leaving}`),
      // The sweep's own claim is the row the race holds.
      (db) => db`select private.deadline_tick() as failed`,
    );

    expect(outcome.tick).toEqual({ ok: true, value: [{ failed: 1 }] });
    expect(outcome.user).toMatchObject({ ok: true });
    const [left] = await sql`
      select (select count(*)::int from public.generation_jobs where id = ${job.id}) as jobs,
             (select count(*)::int from private.requests where job_id = ${job.id}) as requests`;
    expect(left).toEqual({ jobs: 0, requests: 0 });
  });

  it("the deadline sweep and the reconcile tick refunding two users' jobs in opposite orders: neither deadlocks", async () => {
    // Each tick handles many jobs in one transaction, and a refund keeps the job's profile locked
    // to the tick's end. The deadline sweep refunds a job of the first user, then one of the
    // second; the reconcile tick refunds a job of the second user (a rejected createTask), then
    // waits for the pipeline row of the first user's job the sweep holds. Made deterministic:
    // another transaction holds the first user's profile, the sweep queues for it; the reconcile
    // tick runs up to its wait; the holder commits.
    const first = await plan.signUp({ credits: 100 });
    const second = await plan.signUp({ credits: 100 });
    const rejected = await sentJob(second, 'a kite over dunes'); // its request is reconciled first
    const accepted = await sentJob(first, 'a bridge at night');
    const timedOut = await waitingJob(second);
    await sql`insert into net._http_response (id, status_code, content) values
                (${rejected.netId}::bigint, 200, ${JSON.stringify({ code: 422, msg: "rejected" })}),
                (${accepted.netId}::bigint, 200, ${JSON.stringify({ code: 200, data: { taskId: `task-${accepted.jobId}` } })})`;
    await sql`update private.job_pipeline set deadline_at = now() - interval '2 minutes' where job_id = ${accepted.jobId}`;
    await sql`update private.job_pipeline set deadline_at = now() - interval '1 minute' where job_id = ${timedOut}`;
    const { first: deadlines, second: reconcile } = await queuedBehind(
      (holder) => holder`select from public.profiles where id = ${first} for no key update`,
      (sweep) => sweep`select private.deadline_tick()`,
      (ticker) => ticker`select private.reconcile_tick()`,
    );
    expect(deadlines).toMatchObject({ ok: true });
    expect(reconcile).toMatchObject({ ok: true });
    // Both ticks turn an error on one job into an alert; neither is raised for these jobs.
    const errors = await sql`
      select key, message from private.alerts
       where cleared_at is null and ((key = 'reconcile_error' and details ->> 'job_id' = any(${[rejected.jobId, accepted.jobId]}))
                                     or (key = 'deadline_error' and details -> 'job_ids' ? ${timedOut}))`;
    expect(errors).toEqual([]);
    const jobs = await sql`
      select j.id, j.error_code, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds
        from public.generation_jobs j where j.id = any(${[rejected.jobId, accepted.jobId, timedOut]}::uuid[]) order by j.id`;
    expect(Object.fromEntries(jobs.map((j) => [j.id, [j.error_code, j.refunds]]))).toEqual({
      [rejected.jobId]: ["provider_rejected", 1],
      [accepted.jobId]: ["timed_out", 1],
      [timedOut]: ["timed_out", 1],
    });
    await sql`delete from net._http_response where id = any(${[rejected.netId, accepted.netId]}::bigint[])`;
  });

  it("the deadline sweep and the reconcile tick refunding two users in opposite orders, pipeline rows aside: neither deadlocks", async () => {
    // As above, but the reconcile tick's second refund is for another job of the first user: the
    // two ticks wait for each other's profile locks.
    const first = await plan.signUp({ credits: 100 });
    const second = await plan.signUp({ credits: 100 });
    const rejectedJob = async (owner: string, prompt: string) => {
      const job = await sentJob(owner, prompt);
      await sql`insert into net._http_response (id, status_code, content)
                values (${job.netId}::bigint, 200, ${JSON.stringify({ code: 422, msg: "rejected" })})`;
      return job;
    };
    const rejectedSecond = await rejectedJob(second, 'a mill by a stream'); // reconciled first
    const rejectedFirst = await rejectedJob(first, 'a dome in frost');
    const timedOutFirst = await waitingJob(first);
    const timedOutSecond = await waitingJob(second);
    await sql`update private.job_pipeline set deadline_at = now() - interval '2 minutes' where job_id = ${timedOutFirst}`;
    await sql`update private.job_pipeline set deadline_at = now() - interval '1 minute' where job_id = ${timedOutSecond}`;
    const { first: deadlines, second: reconcile } = await queuedBehind(
      (holder) => holder`select from public.profiles where id = ${first} for no key update`,
      (sweep) => sweep`select private.deadline_tick()`,
      (ticker) => ticker`select private.reconcile_tick()`,
    );
    expect(deadlines).toMatchObject({ ok: true });
    expect(reconcile).toMatchObject({ ok: true });
    const jobIds = [rejectedSecond.jobId, rejectedFirst.jobId, timedOutFirst, timedOutSecond];
    const errors = await sql`
      select key, message from private.alerts
       where cleared_at is null and ((key = 'reconcile_error' and details ->> 'job_id' = any(${jobIds}))
                                     or (key = 'deadline_error' and details -> 'job_ids' ?| ${jobIds}::text[]))`;
    expect(errors).toEqual([]);
    const [{ refunds }] = await sql`
      select count(*)::int as refunds from public.credit_ledger where job_id = any(${jobIds}::uuid[]) and kind = 'refund'`;
    expect(refunds).toBe(4);
    await sql`delete from net._http_response where id = any(${[rejectedSecond.netId, rejectedFirst.netId]}::bigint[])`;
  });

  it("a provider's failure callback against the reconcile tick that refunded the same user: neither deadlocks", async () => {
    // The reconcile tick refunds one of the user's jobs (a rejected createTask), keeps the profile
    // locked, and later applies an answer for another of the user's jobs: it waits for that job's
    // pipeline row. The callback took that pipeline row first and waits for the profile. Made
    // deterministic: a tick holds a third job's pipeline row, whose answer the reconcile tick
    // applies in between; the callback runs while the reconcile tick waits for it; the tick commits.
    const owner = await plan.signUp({ credits: 100 });
    const other = await plan.signUp({ credits: 100 });
    // Reconciled in this order (request ids).
    const rejected = await sentJob(owner, 'a quarry in rain');
    const between = await sentJob(other, 'a tram in summer');
    const failing = await sentJob(owner, 'an orchard at noon');
    const answers = [
      [rejected.netId, { code: 422, msg: "rejected" }],
      [between.netId, { code: 200, data: { taskId: `task-${between.jobId}` } }],
      [failing.netId, { code: 200, data: { taskId: `task-${failing.jobId}` } }],
    ] as const;
    for (const [netId, body] of answers) {
      await sql`insert into net._http_response (id, status_code, content) values (${netId}::bigint, 200, ${JSON.stringify(body)})`;
    }
    const tick = await sql.reserve();
    const ticker = await sql.reserve();
    const callback = await sql.reserve();
    try {
      const [{ pid: tickerPid }] = await ticker<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const [{ pid: callbackPid }] = await callback<{ pid: number }[]>`select pg_backend_pid() as pid`;
      await tick`begin`;
      await tick`select from private.job_pipeline where job_id = ${between.jobId} for update`;
      const reconcile = settle(inTransaction(ticker, () => ticker`select private.reconcile_tick()`));
      await blockedOnALock(sql, tickerPid);
      const failure = settle(inTransaction(callback, () => callback`
        select private.callback_fail(${failing.jobId}, 1, ${`task-${failing.jobId}`}, '501', 'generation failed') as outcome`));
      await blockedOnALock(sql, callbackPid, failure);
      await tick`commit`;

      expect(await failure).toEqual({ ok: true, value: [{ outcome: "applied" }] });
      expect(await reconcile).toMatchObject({ ok: true });
    } finally {
      await tick`rollback`.catch(() => {}); // a no-op after the commit
      tick.release();
      ticker.release();
      callback.release();
    }
    const errors = await sql`
      select message from private.alerts
       where key = 'reconcile_error' and cleared_at is null
         and details ->> 'job_id' = any(${[rejected.jobId, between.jobId, failing.jobId]})`;
    expect(errors).toEqual([]);
    const jobs = await sql`
      select j.id, j.status, j.error_code from public.generation_jobs j
       where j.id = any(${[rejected.jobId, between.jobId, failing.jobId]}::uuid[])`;
    expect(Object.fromEntries(jobs.map((j) => [j.id, [j.status, j.error_code]]))).toEqual({
      [rejected.jobId]: ["failed", "provider_rejected"],
      [between.jobId]: ["generating", null],
      [failing.jobId]: ["failed", "provider_failed"],
    });
    await sql`delete from net._http_response where id = any(${answers.map(([netId]) => netId)}::bigint[])`;
  });

  it("the deadline sweep passes over a queued createTask the pg_net worker is sending, without waiting for it", async () => {
    // Started with a create token free: its createTask waits in pg_net's queue (no worker runs here).
    const [job] = await sql.begin(async (tx) => {
      await asUser(tx, userId);
      return tx<{ id: string }[]>`select id from public.start_generation(prompt => 'a ship in a bottle')`;
    });
    const [request] = await sql<{ net_request_id: number; queued: boolean }[]>`
      select r.net_request_id, exists (select from net.http_request_queue q where q.id = r.net_request_id) as queued
        from private.requests r where r.job_id = ${job.id} and r.kind = 'create'`;
    expect(request.queued).toBe(true);
    await sql`update private.job_pipeline set deadline_at = now() - interval '1 minute' where job_id = ${job.id}`;

    // The worker's batch holds the row while it sends (it deletes what it took when it commits).
    const worker = await sql.reserve();
    try {
      await worker`begin`;
      await worker`select from net.http_request_queue where id = ${request.net_request_id} for update`;
      // Waiting for the worker would hold the tick for the request's whole timeout.
      await sql.begin(async (tx) => {
        await tx`set local lock_timeout = '2s'`;
        await tx`select private.deadline_tick()`;
      });
      await worker`rollback`;
    } finally {
      worker.release();
    }

    const [after] = await sql`
      select g.status, r.outcome, exists (select from net.http_request_queue q where q.id = r.net_request_id) as queued
        from public.generation_jobs g join private.requests r on r.job_id = g.id and r.kind = 'create' where g.id = ${job.id}`;
    expect(after).toEqual({ status: "failed", outcome: null, queued: true });
  });
});

describe("housekeeping against a transaction holding old log rows", () => {
  // An account deletion's cascade deletes a job's late results and requests job by job, while
  // housekeeping deletes all old requests, then all old late results: waiting on each other's rows
  // they deadlocked. Housekeeping skips what another transaction holds, so it never waits.
  it("deletes the old rows nobody holds, skips the held ones, and waits for none", async () => {
    const job = await waitingJob();
    const [held, free] = await sql<{ id: number }[]>`
      insert into private.requests (job_id, attempt, kind, net_request_id, queued_at, sent_at, timeout_ms, resolved_at, outcome)
      select ${job}, 1, 'poll', -n, now() - interval '40 days', now() - interval '40 days', 5000, now() - interval '40 days', 'lost'
        from generate_series(1, 2) n
      returning id`;
    const [heldLate, freeLate] = await sql<{ id: number }[]>`
      insert into private.late_results (job_id, attempt, source, outcome, received_at)
      select ${job}, 1, 'callback', 'success', now() - interval '40 days' from generate_series(1, 2)
      returning id`;

    const holder = await sql.reserve();
    try {
      await holder`begin`;
      await holder`select from private.requests where id = ${held.id} for update`;
      await holder`select from private.late_results where id = ${heldLate.id} for update`;
      // Waiting for the holder would end in lock_timeout (55P03) here, or in a deadlock in production.
      await sql.begin(async (tx) => {
        await tx`set local lock_timeout = '2s'`;
        await tx`select private.housekeeping_tick()`;
      });
      await holder`rollback`;
    } finally {
      holder.release();
    }

    const remaining = await sql<{ id: number }[]>`
      select id from private.requests where id in (${held.id}, ${free.id})
      union all
      select id from private.late_results where id in (${heldLate.id}, ${freeLate.id})`;
    expect(remaining.map((row) => Number(row.id)).sort()).toEqual([Number(held.id), Number(heldLate.id)].sort());
  });
});
