import type { Sql } from "postgres";
import { pauseCronJobs } from "./cron.ts";
import type { TestPlan } from "./plans.ts";

type Db = Sql<Record<string, unknown>>;

/**
 * What a file that drives dispatch over real connections sets up and takes down again: its own
 * `plan`, created first, dispatch pointed nowhere (see dispatchGoesNowhere), and pg_cron's runs of
 * the kiln ticks paused: the file runs the ticks itself. `tearDown` puts the settings and secrets
 * back, drops the requests of the plan's users' jobs, then the users and the plan, and resumes the
 * ticks last.
 */
export function dispatchTestBed(sql: Db, plan: TestPlan, secrets: Record<string, string>) {
  let undo = async () => {};
  let resumeCronJobs = async () => {};
  return {
    async setUp(): Promise<void> {
      await plan.create();
      resumeCronJobs = await pauseCronJobs(sql, "kiln-%");
      undo = await dispatchGoesNowhere(sql, secrets);
    },
    async tearDown(): Promise<void> {
      try {
        await undo();
        await dropRequestsOf(sql, plan.users);
        await plan.drop();
      } finally {
        await resumeCronJobs();
      }
    },
  };
}

/**
 * Points dispatch at addresses where nothing listens (KIE at https://kie.invalid, the Edge
 * Functions at https://fn.invalid) with a create budget of 200 a window and `secrets` (name to
 * value) in Vault, for a file that queues requests but never sends them (no pg_net worker runs).
 * Returns the undo for afterAll: it drops what a background tick may have queued with these
 * settings and puts back the settings and the secrets of those names that were there before (the
 * local stack's).
 */
export async function dispatchGoesNowhere(sql: Db, secrets: Record<string, string>): Promise<() => Promise<void>> {
  const names = Object.keys(secrets);
  const savedSettings = await sql<{ key: string; value: unknown }[]>`
    select key, value from private.settings where key in ('kie.base_url', 'dispatch.create_per_window')`;
  await sql`update private.settings set value = '"https://kie.invalid"' where key = 'kie.base_url'`;
  await sql`update private.settings set value = '200' where key = 'dispatch.create_per_window'`;
  const savedSecrets = await sql<{ name: string; secret: string; description: string }[]>`
    select name, secret, description from vault.secrets where name = any(${names})`;
  await sql`delete from vault.secrets where name = any(${names})`;
  for (const [name, secret] of Object.entries(secrets)) await sql`select vault.create_secret(${secret}, ${name})`;

  return async () => {
    await sql`delete from net.http_request_queue where url like 'https://kie.invalid/%' or url like 'https://fn.invalid/%'`;
    await sql`delete from vault.secrets where name = any(${names})`;
    for (const { name, secret, description } of savedSecrets) await sql`select vault.create_secret(${secret}, ${name}, ${description})`;
    for (const { key, value } of savedSettings) await sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
  };
}

/** Drops the queued requests and stored responses of these users' jobs (before the users go). */
export async function dropRequestsOf(sql: Db, userIds: string[]): Promise<void> {
  await sql`
    delete from net.http_request_queue q
     using private.requests r join public.generation_jobs j on j.id = r.job_id
     where r.net_request_id = q.id and j.user_id = any(${userIds}::uuid[])`;
  await sql`
    delete from net._http_response h
     using private.requests r join public.generation_jobs j on j.id = r.job_id
     where r.net_request_id = h.id and j.user_id = any(${userIds}::uuid[])`;
}
