import type { SupabaseClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asUser } from "./support/concurrency.ts";
import { pauseCronJobs } from "./support/cron.ts";
import { connect } from "./support/db.ts";
import { createUser, png } from "./support/gateway.ts";
import { callbackDatabaseUrl } from "./support/pipeline.ts";
import { type PurgeStack, startPurgeStack, waitForResponse } from "./support/storage-purge.ts";

// A delivery of results that the database does not take, in the orders that used to leave its
// images in Storage for good (or for the whole retention) when the callback function's own delete
// failed. Each test does what the function does: store the delivery's images in a folder of its
// own, then call private.callback_complete as the function's role (kiln_callback), and then
// delete nothing (its delete "failed"). The database must have recorded a purge of that
// delivery's folder in the same transaction, and the purge visits (pg_net to the Storage
// stand-in) must empty it, never touching the images the job keeps.
const sql = connect({ max: 3 });
const callback = postgres(callbackDatabaseUrl(), { max: 1, onnotice: () => {} });
let service: SupabaseClient;
let purge: PurgeStack | undefined;
let resumeCronJobs = async () => {};

beforeAll(async () => {
  // pg_cron runs the ticks every minute here too: this file runs them itself.
  resumeCronJobs = await pauseCronJobs(sql, "kiln-%");
  purge = await startPurgeStack(sql);
  service = purge.service;
});

afterAll(async () => {
  await purge?.stop();
  await resumeCronJobs();
  await callback.end();
  await sql.end();
});

/** A job of two images KIE is running (attempt 1, task task-<id>), started by the app and never sent (no create token free). */
async function runningJob(userId: string): Promise<string> {
  const saved = await sql<{ slot: number; available_at: string }[]>`
    select slot, available_at::text from private.rate_slots where bucket = 'create'`;
  await sql`update private.rate_slots set available_at = 'infinity' where bucket = 'create'`;
  let jobId: string;
  try {
    jobId = (await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
                      set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
      const [job] = await tx`select (public.start_generation(prompt => 'a kiln at night')).id`;
      return job.id as string;
    })) as string;
  } finally {
    for (const { slot, available_at } of saved) {
      await sql`update private.rate_slots set available_at = ${available_at}::text::timestamptz where bucket = 'create' and slot = ${slot}`;
    }
  }
  await sql`update private.job_pipeline
               set stage = 'generating', attempt = 1, task_id = ${`task-${jobId}`}, next_run_at = null
             where job_id = ${jobId}`;
  // Room for deliveries of two images.
  await sql`update public.generation_jobs set status = 'generating', stage = 'generating', image_count = 2 where id = ${jobId}`;
  return jobId;
}

/** Stores `count` images of one delivery as the function does; returns their paths, bucket first. */
async function deliver(userId: string, jobId: string, count = 2): Promise<string[]> {
  const folder = `${userId}/${jobId}/${crypto.randomUUID()}`;
  const paths: string[] = [];
  for (let n = 0; n < count; n++) {
    const { error } = await service.storage.from("generated-images")
      .upload(`${folder}/${n}.png`, new Blob([png(n)], { type: "image/png" }));
    expect(error).toBeNull();
    paths.push(`generated-images/${folder}/${n}.png`);
  }
  return paths;
}

/** The owner deletes the job (delete_generation), and its purge runs to its end: the folder is emptied, then found empty. */
async function deleteJobAndPurge(userId: string, jobId: string): Promise<void> {
  await sql.begin(async (tx) => {
    await asUser(tx, userId);
    await tx`select public.delete_generation(${jobId})`;
  });
  let at = new Date();
  for (let visit = 0; visit < 10; visit++) {
    await sql`select private.purge_results(${at})`;
    const [row] = await sql`select * from private.result_purges where job_id = ${jobId}`;
    if (row.done_at) break;
    if (row.last_request_id) await waitForResponse(sql, row.last_request_id);
    at = new Date((row.next_attempt_at as Date).getTime() + 1);
  }
  const [done] = await sql`select done_at from private.result_purges where job_id = ${jobId}`;
  expect(done.done_at).not.toBeNull();
}

const folderOf = (paths: string[]) => paths[0].replace(/^generated-images\//, "").replace(/[^/]+$/, "");

async function complete(jobId: string, paths: string[]): Promise<string> {
  const [row] = await callback`select private.callback_complete(${jobId}, 1, ${`task-${jobId}`}, ${paths}) as answer`;
  return row.answer as string;
}

async function stored(folder: string): Promise<string[]> {
  const rows = await sql`select name from storage.objects where bucket_id = 'generated-images' and name like ${`${folder}%`} order by name`;
  return rows.map((r) => r.name as string);
}

async function deliveryPurges(folder: string) {
  return await sql`select * from private.storage_purges where reason = 'delivery_discarded' and path = ${folder} order by id`;
}

/** Purge visits until the delivery folder's purge is done, waiting for each request's answer. */
async function purgeUntilDone(folder: string): Promise<void> {
  let at = new Date();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    await sql`select private.purge_discarded_deliveries(${at})`;
    const rows = await deliveryPurges(folder);
    const open = rows.filter((r) => !r.done_at);
    if (rows.length > 0 && open.length === 0) return;
    for (const row of open.filter((r) => r.last_request_id)) await waitForResponse(sql, row.last_request_id);
    // One millisecond past the latest backoff: Postgres keeps microseconds, a Date does not.
    const next = Math.max(...open.map((r) => (r.next_attempt_at as Date).getTime()));
    at = new Date(Math.max(at.getTime(), next + 1));
  }
  throw new Error(`the purge of ${folder} did not finish`);
}

describe("a delivery the database does not take, whose own delete failed", () => {
  it("the job had completed with another delivery: its folder is purged, the kept images stay", async () => {
    const owner = await createUser(sql, "discard-lost");
    const jobId = await runningJob(owner.id);
    const kept = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, kept)).toBe("applied");

    const lost = await deliver(owner.id, jobId);
    expect(await complete(jobId, lost)).toBe("duplicate");
    expect((await deliveryPurges(folderOf(lost))).map((r) => r.user_id)).toEqual([owner.id]);

    await purgeUntilDone(folderOf(lost));
    expect(await stored(folderOf(lost))).toEqual([]);
    expect(await stored(folderOf(kept))).toEqual(kept.map((p) => p.replace(/^generated-images\//, "")));
    const [job] = await sql`select result_urls from public.generation_jobs where id = ${jobId}`;
    expect(job.result_urls).toEqual(kept);
  });

  it("the job timed out while the delivery was on its way: its folder is purged", async () => {
    const owner = await createUser(sql, "discard-timed-out");
    const jobId = await runningJob(owner.id);
    const late = await deliver(owner.id, jobId);
    const [{ failed }] = await sql`
      select private.fail_job(${jobId}, array['generating'], 1, 'timed_out', 'It took too long.', 'deadline passed') as failed`;
    expect(failed).toBe(true);

    expect(await complete(jobId, late)).toBe("duplicate");
    expect(await deliveryPurges(folderOf(late))).toHaveLength(1);
    await purgeUntilDone(folderOf(late));
    expect(await stored(`${owner.id}/${jobId}/`)).toEqual([]);
  });

  it("the job was deleted and its purge was done before the delivery stored anything: its folder is purged", async () => {
    const owner = await createUser(sql, "discard-deleted-job");
    const jobId = await runningJob(owner.id);
    const kept = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, kept)).toBe("applied");
    await deleteJobAndPurge(owner.id, jobId);
    expect(await stored(`${owner.id}/${jobId}/`)).toEqual([]);

    const late = await deliver(owner.id, jobId);
    expect(await complete(jobId, late)).toBe("duplicate");
    expect(await deliveryPurges(folderOf(late))).toHaveLength(1);
    await purgeUntilDone(folderOf(late));
    expect(await stored(`${owner.id}/${jobId}/`)).toEqual([]);
  });

  it("the account was deleted and its folder purge was done: the delivery is a duplicate and its folder is purged", async () => {
    const owner = await createUser(sql, "discard-deleted-account");
    const jobId = await runningJob(owner.id);
    await sql`select tests.delete_as_auth_service(${owner.id})`;
    // The account's folder purge finishes once the watch (storage.deleted_account_watch_seconds) is over.
    const [{ watch }] = await sql`select private.setting_number('storage.deleted_account_watch_seconds')::int as watch`;
    const after = new Date(Date.now() + (watch + 1) * 1000);
    for (let visit = 0; visit < 5; visit++) await sql`select private.purge_account_storage(${after})`;
    const [account] = await sql`select done_at from private.storage_purges
                                 where reason = 'account_deleted' and bucket_id = 'generated-images' and user_id = ${owner.id}`;
    expect(account.done_at).not.toBeNull();

    const late = await deliver(owner.id, jobId);
    expect(await complete(jobId, late)).toBe("duplicate");
    expect((await deliveryPurges(folderOf(late))).map((r) => r.user_id)).toEqual([owner.id]);
    await purgeUntilDone(folderOf(late));
    expect(await stored(`${owner.id}/`)).toEqual([]);
  });
});

describe("a delivery that failed midway and whose own delete failed", () => {
  // The function stored some images, then a download or upload failed; its delete of them failed
  // too, so it hands the folder to the database (private.callback_discard, as kiln_callback).
  async function discard(jobId: string, paths: string[]): Promise<string | null> {
    const [row] = await callback`select private.callback_discard(${jobId}, ${paths}) as folder`;
    return row.folder as string | null;
  }

  it("the job was completed, deleted and purged before the delivery stored anything: the folder is purged", async () => {
    const owner = await createUser(sql, "discard-midway-deleted");
    const jobId = await runningJob(owner.id);
    const kept = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, kept)).toBe("applied");
    await deleteJobAndPurge(owner.id, jobId);

    // A retry of the job's task was still downloading: it stored one image, failed on the next.
    const stranded = await deliver(owner.id, jobId, 1);
    expect(await discard(jobId, stranded)).toBe(folderOf(stranded));
    expect((await deliveryPurges(folderOf(stranded))).map((r) => r.user_id)).toEqual([owner.id]);
    await purgeUntilDone(folderOf(stranded));
    expect(await stored(`${owner.id}/${jobId}/`)).toEqual([]);
  });

  it("the job still runs: the folder is purged, and those images can no longer complete it", async () => {
    const owner = await createUser(sql, "discard-midway-running");
    const jobId = await runningJob(owner.id);
    const failed = await deliver(owner.id, jobId, 1);
    expect(await discard(jobId, failed)).toBe(folderOf(failed));
    await expect(complete(jobId, failed)).rejects.toMatchObject({ code: "KL041" });
    // The retry, a new delivery in a folder of its own, completes the job and is kept.
    const retry = await deliver(owner.id, jobId, 2);
    expect(await complete(jobId, retry)).toBe("applied");
    await purgeUntilDone(folderOf(failed));
    expect(await stored(`${owner.id}/${jobId}/`)).toEqual(retry.map((p) => p.replace(/^generated-images\//, "")));
  });

  it("the job went with its account and the account's folder purge was done: the folder is purged", async () => {
    const owner = await createUser(sql, "discard-midway-account");
    const jobId = await runningJob(owner.id);
    const failed = await deliver(owner.id, jobId, 1);
    // A job that is not there, of an account that still is, records nothing.
    const noJob = crypto.randomUUID();
    expect(await discard(noJob, [`generated-images/${owner.id}/${noJob}/d/0.png`])).toBeNull();
    await sql`select tests.delete_as_auth_service(${owner.id})`;
    expect(await discard(jobId, failed)).toBe(folderOf(failed));
    expect((await deliveryPurges(folderOf(failed))).map((r) => r.user_id)).toEqual([owner.id]);
    await purgeUntilDone(folderOf(failed));
    expect(await stored(folderOf(failed))).toEqual([]);
  });

  it("records nothing for the folder the job keeps, another user's images or paths outside one delivery folder", async () => {
    const owner = await createUser(sql, "discard-midway-guards");
    const other = await createUser(sql, "discard-midway-other");
    const jobId = await runningJob(owner.id);
    const otherJob = await runningJob(other.id);
    const kept = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, kept)).toBe("applied");
    const othersImages = await deliver(other.id, otherJob, 1);
    const twoFolders = [...(await deliver(owner.id, jobId, 1)), ...(await deliver(owner.id, jobId, 1))];
    for (const paths of [kept, othersImages, twoFolders, [`generated-images/${owner.id}/${jobId}/0.png`]]) {
      expect(await discard(jobId, paths)).toBeNull();
    }
    const recorded = await sql`select path from private.storage_purges
                                where reason = 'delivery_discarded' and user_id in (${owner.id}, ${other.id})`;
    expect(recorded).toEqual([]);
  });
});

describe("what a delivery purge may touch", () => {
  it("a repeated call with the kept delivery's paths records nothing; a second loss records one open purge", async () => {
    const owner = await createUser(sql, "discard-guards");
    const jobId = await runningJob(owner.id);
    const kept = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, kept)).toBe("applied");
    expect(await complete(jobId, kept)).toBe("duplicate");
    expect(await deliveryPurges(folderOf(kept))).toEqual([]);

    const lost = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, lost)).toBe("duplicate");
    expect(await complete(jobId, lost)).toBe("duplicate");
    expect(await deliveryPurges(folderOf(lost))).toHaveLength(1);
  });

  it("paths outside one delivery folder of the job under its owner record nothing", async () => {
    const owner = await createUser(sql, "discard-owner");
    const other = await createUser(sql, "discard-other");
    const jobId = await runningJob(owner.id);
    const otherJob = await runningJob(other.id);
    const kept = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, kept)).toBe("applied");

    const othersImages = await deliver(other.id, otherJob, 1);
    const twoFolders = [...(await deliver(owner.id, jobId, 1)), ...(await deliver(owner.id, jobId, 1))];
    for (const paths of [othersImages, twoFolders, [`generated-images/${owner.id}/${jobId}/0.png`]]) {
      expect(await complete(jobId, paths)).toBe("duplicate");
    }
    const recorded = await sql`select path from private.storage_purges
                                where reason = 'delivery_discarded' and user_id in (${owner.id}, ${other.id})`;
    expect(recorded).toEqual([]);
  });

  it("a visit leaves out every name the job lists, and a delivery being purged cannot complete its job", async () => {
    const owner = await createUser(sql, "discard-kept-names");
    const jobId = await runningJob(owner.id);
    const first = await deliver(owner.id, jobId, 1);
    // Another task's report first: the delivery is not taken and its folder is purged.
    const [{ answer }] = await callback`select private.callback_complete(${jobId}, 1, 'someone-elses-task', ${first}) as answer`;
    expect(answer).toBe("unknown_task");
    expect(await deliveryPurges(folderOf(first))).toHaveLength(1);
    // The same images offered again for the job's own task: refused while their purge is open.
    await expect(complete(jobId, first)).rejects.toMatchObject({ code: "KL041" });

    // A purge recorded by hand for the folder the job keeps deletes none of the kept names.
    const kept = await deliver(owner.id, jobId, 1);
    expect(await complete(jobId, kept)).toBe("applied");
    await sql`insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
              values ('generated-images', ${folderOf(kept)}, ${owner.id}, 'delivery_discarded', now(), now())`;
    await purgeUntilDone(folderOf(kept));
    expect(await stored(folderOf(kept))).toEqual(kept.map((p) => p.replace(/^generated-images\//, "")));
  });

  it("only the owner and the callback function's role reach the functions that record them", async () => {
    const rows = await sql`
      select r.rolname, p.proname, has_function_privilege(r.rolname, p.oid, 'execute') as may
        from pg_proc p cross join (values ('anon'), ('authenticated'), ('service_role'), ('kiln_callback')) as r (rolname)
       where p.pronamespace = 'private'::regnamespace
         and p.proname in ('callback_complete', 'callback_discard', 'discard_delivery', 'delivery_folder', 'purge_discarded_deliveries')
       order by p.proname, r.rolname`;
    expect(rows.filter((r) => r.may).map((r) => `${r.rolname} ${r.proname}`))
      .toEqual(["kiln_callback callback_complete", "kiln_callback callback_discard"]);
  });
});
