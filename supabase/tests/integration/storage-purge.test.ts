import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";
import { type PurgeStack, startPurgeStack, waitFor, waitForResponse } from "./support/storage-purge.ts";
import { createUser, png, type TestGateway } from "./support/gateway.ts";

// Deleting a generation end to end: the SQL decides what goes and asks the Storage API (pg_net,
// service key from Vault) to delete the job's folder; the stand-in deletes the rows and the
// files; the next purge visit finds the folder empty and finishes. Retention queues the same
// purges (storage_retention.test.sql); it is not run here because it would expire every old
// job in the shared test database, not only this file's.
const sql = connect({ max: 3 });
let stack: TestGateway;
let service: SupabaseClient;
let purge: PurgeStack | undefined;

async function asUser<T>(userId: string, fn: (tx: typeof sql) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
    return fn(tx as unknown as typeof sql);
  })) as T;
}

/** A finished (failed: cancelled before sending) job of the user, through the app's own RPCs. */
async function finishedJob(userId: string): Promise<string> {
  return asUser(userId, async (tx) => {
    const [job] = await tx`select (public.start_generation(prompt => 'a lighthouse at dusk')).id`;
    await tx`select public.cancel_generation(${job.id})`;
    return job.id as string;
  });
}

async function storeResults(userId: string, jobId: string, count: number): Promise<void> {
  for (let n = 0; n < count; n++) {
    const { error } = await service.storage.from("generated-images")
      .upload(`${userId}/${jobId}/${n}.png`, new Blob([png(n)], { type: "image/png" }), { upsert: true });
    expect(error).toBeNull();
  }
}

async function objectNames(userId: string, jobId: string): Promise<string[]> {
  const rows = await sql`select name from storage.objects where bucket_id = 'generated-images' and name like ${`${userId}/${jobId}/%`} order by name`;
  return rows.map((r) => r.name as string);
}

async function purgeRow(jobId: string) {
  const [row] = await sql`select * from private.result_purges where job_id = ${jobId}`;
  return row;
}

/** Runs purge visits at `at` until the purge is done (each visit after a request waits for its response). */
async function purgeUntilDone(jobId: string, at: Date): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    await sql`select private.purge_results(${at})`;
    const row = await purgeRow(jobId);
    if (row.done_at) return;
    if (row.last_request_id) {
      await waitForResponse(sql, row.last_request_id);
    }
    // One millisecond past the backoff: Postgres keeps microseconds, a Date does not.
    at = new Date((row.next_attempt_at as Date).getTime() + 1);
  }
  throw new Error(`purge of ${jobId} did not finish`);
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

describe("delete_generation", () => {
  it("hides the job at once, then removes its stored images (rows and files) through the Storage API", async () => {
    const user = await createUser(sql, "purge-delete");
    const jobId = await finishedJob(user.id);
    const keptJobId = await finishedJob(user.id);
    await storeResults(user.id, jobId, 2);
    await storeResults(user.id, keptJobId, 1);

    await asUser(user.id, (tx) => tx`select public.delete_generation(${jobId})`);
    expect(await asUser(user.id, (tx) => tx`select id from public.generation_jobs where id = ${jobId}`)).toHaveLength(0);
    expect((await purgeRow(jobId)).reason).toBe("deleted");

    await sql`select private.purge_results(now())`;
    // pg_cron runs the same tick every minute; whichever visit sent the request, wait for it.
    await waitFor(async () => (await purgeRow(jobId)).last_request_id !== null);
    const { last_request_id } = await purgeRow(jobId);
    await waitForResponse(sql, last_request_id);
    // The request's body named exactly this job's objects: the stand-in returns the rows it deleted.
    const [response] = await sql`select status_code, content::jsonb as content from net._http_response where id = ${last_request_id}`;
    expect(response.status_code).toBe(200);
    expect(response.content.map((r: { name: string }) => r.name).sort()).toEqual([`${user.id}/${jobId}/0.png`, `${user.id}/${jobId}/1.png`]);

    expect(await objectNames(user.id, jobId)).toEqual([]);
    await expect(readdir(join(stack.storageDir, "generated-images", user.id, jobId))).rejects.toThrow();
    expect(await objectNames(user.id, keptJobId)).toEqual([`${user.id}/${keptJobId}/0.png`]);

    await purgeUntilDone(jobId, new Date());
  });
});
