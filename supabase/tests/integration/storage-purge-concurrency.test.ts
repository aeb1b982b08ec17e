import { afterAll, describe, expect, it } from "vitest";
import { asUser, signUp } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { waitFor } from "./support/storage-purge.ts";

// Two runs of the retention tick at once (pg_cron's and an operator's, or a slow run overlapping
// the next): each part skips what the other holds instead of waiting for it or doing it twice.
// And a start racing the delete of the photo it lists: the purge waits for it.
const sql = connect({ max: 4 });

afterAll(async () => {
  await sql.end();
});

/** Runs `fn` on its own connection with a short statement timeout, so a wait shows as an error. */
async function withoutWaiting<T>(fn: (tx: typeof sql) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    await tx`set local statement_timeout = '2s'`;
    return fn(tx as unknown as typeof sql);
  })) as T;
}

/** Holds the rows `lock` locks until `inner` has run, then rolls back. */
async function whileHeld(lock: (tx: typeof sql) => Promise<unknown>, inner: () => Promise<void>): Promise<void> {
  const done = Symbol("rolled back");
  await sql.begin(async (tx) => {
    await lock(tx as unknown as typeof sql);
    await inner();
    throw done;
  }).catch((err) => {
    if (err !== done) throw err;
  });
}

describe("overlapping retention runs", () => {
  it("a second walk over user-uploads leaves the walk to the run that holds it", async () => {
    const [before] = await sql`select after_name, pass_started_at from private.upload_sweep`;
    await whileHeld((tx) => tx`select 1 from private.upload_sweep for update`, async () => {
      const [row] = await withoutWaiting((tx) => tx`select private.expire_uploads(now() + interval '3650 days', 1) as queued`);
      expect(row.queued).toBe(0);
    });
    const [after] = await sql`select after_name, pass_started_at from private.upload_sweep`;
    expect(after).toEqual(before);
  });

  it("a folder purge another run is visiting is skipped, not waited for or sent twice", async () => {
    const [{ id: userId }] = await sql`select gen_random_uuid() as id`;
    const [purge] = await sql`
      insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
      values ('generated-images', ${`${userId}/`}, ${userId}, 'account_deleted', now(), '-infinity')
      returning id`;
    try {
      await whileHeld((tx) => tx`select 1 from private.storage_purges where id = ${purge.id} for update`, async () => {
        await withoutWaiting((tx) => tx`select private.purge_account_storage(now(), 1000)`);
      });
      const [row] = await sql`select done_at, attempts from private.storage_purges where id = ${purge.id}`;
      expect(row).toEqual({ done_at: null, attempts: 0 });
    } finally {
      await sql`delete from private.storage_purges where id = ${purge.id}`;
    }
  });

  it("an upload purge another run is sending is skipped", async () => {
    const [purge] = await sql`
      insert into private.storage_purges (bucket_id, path, reason, requested_at, next_attempt_at)
      values ('user-uploads', ${`concurrency-${Date.now()}/gone.png`}, 'upload_expired', now(), '-infinity')
      returning id`;
    try {
      await whileHeld((tx) => tx`select 1 from private.storage_purges where id = ${purge.id} for update`, async () => {
        await withoutWaiting((tx) => tx`select private.purge_expired_uploads(now(), 1000)`);
      });
      const [row] = await sql`select done_at from private.storage_purges where id = ${purge.id}`;
      expect(row.done_at).toBeNull();
    } finally {
      await sql`delete from private.storage_purges where id = ${purge.id}`;
    }
  });
});

describe("a start racing the delete of its photo", () => {
  it("the purge waits for a start in progress, then keeps the photo that start's job lists", async () => {
    const userId = await signUp(sql, "upload-race");
    const name = `${userId}/old.jpg`;
    const url = `http://127.0.0.1:54321/storage/v1/object/sign/user-uploads/${name}?token=t`;
    const [template] = await sql<{ id: string }[]>`
      select id from public.templates where is_active and not is_premium and min_images <= 1 and max_images >= 1 order by name limit 1`;
    await sql`
      insert into storage.objects (bucket_id, name, created_at, updated_at)
      values ('user-uploads', ${name}, now() - interval '30 days', now() - interval '30 days')`;
    try {
      let purge!: Promise<unknown>;
      let purgeEnded = false;
      await sql.begin(async (start) => {
        await asUser(start, userId);
        await start`select public.start_generation(template_id => ${template.id}, image_urls => ${[url]}::text[])`;
        // The walk over the bucket ran meanwhile and could not see the uncommitted job: it
        // recorded the photo as expired, due now.
        await sql`
          insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
          values ('user-uploads', ${name}, ${userId}, 'upload_expired', now(), '-infinity')`;
        purge = sql`select private.purge_expired_uploads(now(), 1000)`.execute();
        purge.then(() => (purgeEnded = true), () => (purgeEnded = true));
        const waitingOnLock = async () =>
          (await sql`
            select 1 from pg_stat_activity
             where wait_event_type = 'Lock' and query like '%purge_expired_uploads%' and pid <> pg_backend_pid()`).length > 0;
        await waitFor(async () => purgeEnded || (await waitingOnLock()));
        expect(purgeEnded, "the purge ran while the start's transaction was open").toBe(false);
      });
      await purge;
      const purges = await sql`select id from private.storage_purges where path = ${name} and done_at is null`;
      expect(purges, "the purge saw the committed job and withdrew its decision").toEqual([]);
    } finally {
      await sql`delete from auth.users where id = ${userId}`;
      await sql`delete from private.storage_purges where user_id = ${userId}`;
      await sql.begin(async (tx) => {
        await tx`select set_config('storage.allow_delete_query', 'true', true)`;
        await tx`delete from storage.objects where bucket_id = 'user-uploads' and name = ${name}`;
      });
    }
  });
});
