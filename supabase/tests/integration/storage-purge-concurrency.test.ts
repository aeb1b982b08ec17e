import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asUser, signUp } from "./support/concurrency.ts";
import { pauseCronJobs } from "./support/cron.ts";
import { connect } from "./support/db.ts";

// Two runs of the retention tick at once (pg_cron's and an operator's, or a slow run overlapping
// the next): each part skips what the other holds instead of waiting for it or doing it twice.
// And a start racing the delete of the photo it lists: the purge leaves its owner's uploads alone
// until it has committed.
const sql = connect({ max: 4 });
// A signed-URL token in the form Storage signs it (a JWT; the start reads its form and exp, never
// its signature), valid until 2100.
const storageToken = [
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
  Buffer.from(JSON.stringify({ url: "user-uploads/old.jpg", scope: "download", iat: 1700000000, exp: 4102444800 })).toString("base64url"),
  "c2lnbmF0dXJl",
].join(".");
// The file plays both runs itself: pg_cron's minute run would be a third, visiting its rows.
let resumeCronJobs = async () => {};

beforeAll(async () => {
  resumeCronJobs = await pauseCronJobs(sql, "kiln-results-retention");
});

afterAll(async () => {
  try {
    await resumeCronJobs();
  } finally {
    await sql.end();
  }
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

/** Removes what a test user left: the user (and profile, jobs), its purge rows and uploads. */
async function removeUser(userId: string): Promise<void> {
  await sql`delete from auth.users where id = ${userId}`;
  await sql`delete from private.storage_purges where user_id = ${userId}`;
  await sql.begin(async (tx) => {
    await tx`select set_config('storage.allow_delete_query', 'true', true)`;
    await tx`delete from storage.objects where bucket_id = 'user-uploads' and name like ${`${userId}/%`}`;
  });
}

/** An upload last written 30 days ago, with a due purge decided for it. */
async function expiredUpload(userId: string, file: string): Promise<string> {
  const name = `${userId}/${file}`;
  await sql`
    insert into storage.objects (bucket_id, name, created_at, updated_at)
    values ('user-uploads', ${name}, now() - interval '30 days', now() - interval '30 days')`;
  await sql`
    insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
    values ('user-uploads', ${name}, ${userId}, 'upload_expired', now(), '-infinity')`;
  return name;
}

describe("a start racing the delete of its photo", () => {
  const visit = (name: string) =>
    sql<{ attempts: number; last_error: string | null; waiting: boolean }[]>`
      select attempts, last_error, next_attempt_at = '-infinity' as waiting
        from private.storage_purges where path = ${name} and done_at is null`;
  /** Whether the purge of `name` is due again within the next 30 s, not now (a skipped owner's). */
  const deferred = async (name: string) =>
    (await sql<{ deferred: boolean }[]>`
      select next_attempt_at > now() and next_attempt_at <= now() + interval '30 seconds' as deferred
        from private.storage_purges where path = ${name} and done_at is null`)[0]?.deferred;

  it("a start in progress keeps the purge off its owner's uploads; the next run sees its job and keeps the photo", async () => {
    const userId = await signUp(sql, "upload-race");
    const [template] = await sql<{ id: string }[]>`
      select id from public.templates where is_active and not is_premium and min_images <= 1 and max_images >= 1 order by name limit 1`;
    try {
      await sql.begin(async (start) => {
        await asUser(start, userId);
        const url = `http://127.0.0.1:54321/storage/v1/object/sign/user-uploads/${userId}/old.jpg?token=${storageToken}`;
        await start`select public.start_generation(template_id => ${template.id}, image_urls => ${[url]}::text[])`;
        // The walk over the bucket ran meanwhile and could not see the uncommitted job: it
        // recorded the photo as expired, due now.
        const name = await expiredUpload(userId, "old.jpg");
        await withoutWaiting((tx) => tx`select private.purge_expired_uploads(now(), 1000)`);
        expect(await visit(name), "left for the next run, not sent").toEqual([{ attempts: 0, last_error: null, waiting: false }]);
        expect(await deferred(name), "visited again in 30 s").toBe(true);
      });
      await sql`select private.purge_expired_uploads(now() + interval '1 minute', 1000)`;
      expect(await visit(`${userId}/old.jpg`), "the next run saw the committed job and withdrew the decision").toEqual([]);
    } finally {
      await removeUser(userId);
    }
  });

  it("an owner kept busy at every run, with a whole batch of expired uploads, holds up no other owner's uploads", async () => {
    // A user can keep their own profile row locked at any moment by calling start_generation
    // over and over (an idempotent replay holds it for update until commit and is never limited).
    // Their skipped uploads must not stay at the head of the queue and fill every batch.
    const busy = await signUp(sql, "upload-busy-batch");
    const free = await signUp(sql, "upload-free-batch");
    const batch = 3;
    try {
      for (let i = 0; i < batch; i++) await expiredUpload(busy, `${i}.jpg`);
      // Due as long as the busy owner's, and behind them in the queue.
      const freeName = await expiredUpload(free, "a.jpg");
      // Two runs a minute apart, the busy owner's row locked at both.
      await whileHeld((tx) => tx`select 1 from public.profiles where id = ${busy} for update`, async () => {
        await withoutWaiting((tx) => tx`select private.purge_expired_uploads(now(), ${batch})`);
        await withoutWaiting((tx) => tx`select private.purge_expired_uploads(now() + interval '1 minute', ${batch})`);
      });
      const [visited] = await visit(freeName);
      expect(visited, "the other owner's upload is still being purged").toBeDefined();
      expect(visited.waiting, "the other owner's upload was visited").toBe(false);
    } finally {
      await removeUser(busy);
      await removeUser(free);
    }
  });

  it("an owner whose profile row is locked (a grant left open) holds up no other owner's uploads", async () => {
    const busy = await signUp(sql, "upload-busy");
    const free = await signUp(sql, "upload-free");
    try {
      const busyName = await expiredUpload(busy, "a.jpg");
      const freeName = await expiredUpload(free, "a.jpg");
      await whileHeld((tx) => tx`select 1 from public.profiles where id = ${busy} for update`, async () => {
        await withoutWaiting((tx) => tx`select private.purge_expired_uploads(now(), 1000)`);
      });
      expect(await visit(busyName), "the locked owner's upload waits for the next run, not sent").toEqual([
        { attempts: 0, last_error: null, waiting: false },
      ]);
      expect(await deferred(busyName), "visited again in 30 s").toBe(true);
      const [visited] = await visit(freeName);
      expect(visited, "the other owner's upload is still being purged").toBeDefined();
      expect(visited.waiting, "the other owner's upload was visited").toBe(false);
    } finally {
      await removeUser(busy);
      await removeUser(free);
    }
  });
});
