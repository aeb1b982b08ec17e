import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";
import { type PurgeStack, startPurgeStack, waitFor, waitForResponse } from "./support/storage-purge.ts";
import {
  completedJob,
  createUser,
  png,
  type TestGateway,
  userClient,
} from "./support/gateway.ts";

// Deleting an account end to end: GoTrue's delete on auth.users cascades to the profile and the
// jobs; the purge rows it leaves ask the Storage API (pg_net, service key from Vault) to delete
// the user's folders in both buckets; the stand-in deletes the rows and the files; the next
// visits find the folders empty and finish. Another user's files stay.
const sql = connect({ max: 3 });
let stack: TestGateway;
let service: SupabaseClient;
let purge: PurgeStack | undefined;

async function upload(client: SupabaseClient, bucket: string, path: string): Promise<void> {
  const { error } = await client.storage.from(bucket).upload(path, new Blob([png(3)], { type: "image/png" }), { upsert: true });
  expect(error).toBeNull();
}

async function objectNames(bucket: string, folder: string): Promise<string[]> {
  const rows = await sql`select name from storage.objects where bucket_id = ${bucket} and name like ${`${folder}/%`} order by name`;
  return rows.map((r) => r.name as string);
}

async function folderPurges(userId: string) {
  return await sql`select * from private.storage_purges where user_id = ${userId} and reason = 'account_deleted' order by bucket_id`;
}


/** Runs folder purge visits at `at` until both of the user's purges are done, waiting for each request's response. */
async function purgeUntilDone(userId: string, at: Date): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    await sql`select private.purge_account_storage(${at})`;
    const rows = await folderPurges(userId);
    if (rows.every((r) => r.done_at)) return;
    for (const row of rows.filter((r) => !r.done_at && r.last_request_id)) {
      await waitForResponse(sql, row.last_request_id);
    }
    // One millisecond past the latest backoff: Postgres keeps microseconds, a Date does not.
    const next = Math.max(...rows.filter((r) => !r.done_at).map((r) => (r.next_attempt_at as Date).getTime()));
    at = new Date(Math.max(at.getTime(), next + 1));
  }
  throw new Error(`the folder purges of ${userId} did not finish`);
}

beforeAll(async () => {
  purge = await startPurgeStack(sql);
  stack = purge.gateway;
  service = purge.service;
});

afterAll(async () => {
  await purge?.stop();
  await sql.end();
});

describe("account deletion", () => {
  it("removes the user's generated images and uploads (rows and files) through the Storage API, and nobody else's", async () => {
    const gone = await createUser(sql, "account-gone");
    const stays = await createUser(sql, "account-stays");
    for (const user of [gone, stays]) {
      const client = userClient(stack.gateway.url, user.jwt);
      await upload(client, "user-uploads", `${user.id}/portrait.png`);
      await upload(client, "user-uploads", `${user.id}/holiday/beach.png`);
      const jobId = await completedJob(sql, user.id, (id) => [`generated-images/${user.id}/${id}/d1/0.png`]);
      await upload(service, "generated-images", `${user.id}/${jobId}/d1/0.png`);
    }

    // auth.admin.deleteUser: a delete on auth.users by the auth service.
    await sql`select tests.delete_as_auth_service(${gone.id})`;
    expect(await sql`select 1 from public.profiles where id = ${gone.id}`).toHaveLength(0);
    expect(await sql`select 1 from public.generation_jobs where user_id = ${gone.id}`).toHaveLength(0);
    const recorded = await folderPurges(gone.id);
    expect(recorded.map((r) => [r.bucket_id, r.path])).toEqual([
      ["generated-images", `${gone.id}/`],
      ["user-uploads", `${gone.id}/`],
    ]);

    // Visits until both folders have had a request: folders of accounts other suites deleted may
    // be due first (a visit takes at most 50), and pg_cron runs the same tick every minute.
    await waitFor(async () => {
      await sql`select private.purge_account_storage(now())`;
      return (await folderPurges(gone.id)).every((r) => r.last_request_id !== null);
    });
    for (const row of await folderPurges(gone.id)) {
      await waitForResponse(sql, row.last_request_id);
      // The stand-in answers with the rows it deleted: exactly the folder's objects.
      const [response] = await sql`select status_code, content::jsonb as content from net._http_response where id = ${row.last_request_id}`;
      expect(response.status_code).toBe(200);
      const expected = row.bucket_id === "user-uploads"
        ? [`${gone.id}/holiday/beach.png`, `${gone.id}/portrait.png`]
        : [expect.stringMatching(new RegExp(`^${gone.id}/[0-9a-f-]{36}/d1/0\\.png$`))];
      expect(response.content.map((r: { name: string }) => r.name).sort()).toEqual(expected);
    }

    for (const bucket of ["generated-images", "user-uploads"]) {
      expect(await objectNames(bucket, gone.id)).toEqual([]);
      await expect(readdir(join(stack.storageDir, bucket, gone.id))).rejects.toThrow();
      expect(await objectNames(bucket, stays.id)).not.toEqual([]);
    }
    const { data, error } = await userClient(stack.gateway.url, stays.jwt).storage.from("user-uploads").download(`${stays.id}/portrait.png`);
    expect(error).toBeNull();
    expect(data?.size).toBe(png(3).length);

    await purgeUntilDone(gone.id, new Date());
    expect(await sql`select 1 from private.pending_storage_purges where user_id = ${gone.id}`).toHaveLength(0);
  });
});
