import { randomBytes, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { userJwt } from "../../../scripts/dev-stack/gateway/keys.ts";
import { type KieEmulator, startKieEmulator } from "../../../scripts/dev-stack/kie-emulator/server.ts";
import { PG_NET_WORKER_APPLICATION_NAME, type PgNetWorker, startPgNetWorker } from "../../../scripts/dev-stack/pg-net-worker.ts";
import { adminDatabaseUrl, connect, databaseUrl } from "./support/db.ts";
import { png, startTestGateway, type TestGateway, userClient } from "./support/gateway.ts";

// One job at a time through everything that runs locally: start_generation → the dispatch
// trigger and ticks → the pg_net look-alike's worker → the KIE emulator → its callback (or our
// poll and finalize request) → the gateway → the kie-callback function under Deno → Storage and
// the completion SQL. The app's side is the official client with the user's JWT.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const sql = connect({ max: 4 });
const suffix = randomUUID().replaceAll("-", "").slice(0, 12);
const planId = `e2e_${suffix}`;
const KIE_KEY = `kie-e2e-${suffix}`;
const FINALIZE = randomBytes(32).toString("hex");
const SECRETS = ["kie_api_key", "functions_base_url", "finalize_credential"];
const SETTINGS = ["kie.base_url", "poll.first_after_seconds", "images.allowed_hosts", "results.allowed_hosts"];
let savedSettings: { key: string; value: unknown }[] = [];
let savedSecrets: { name: string; secret: string; description: string }[] = [];
let userId = "";
let templateId = "";
let kie: KieEmulator | undefined;
let stack: TestGateway | undefined;
let worker: PgNetWorker | undefined;
const functionLog: string[] = [];

type Status = "pending" | "generating" | "completed" | "failed";
interface JobRow {
  status: Status;
  error_code: string | null;
  result_urls: string[] | null;
}

async function startJob(prompt: string): Promise<string> {
  const [job] = await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
    return tx<{ id: string }[]>`select id from public.start_generation(prompt => ${prompt})`;
  });
  return job.id;
}

/** An image-to-image job from a template, with the user's uploaded photos as input. */
async function startTemplateJob(imageUrls: string[]): Promise<string> {
  const [job] = await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
    return tx<{ id: string }[]>`select id from public.start_generation(template_id => ${templateId}, image_urls => ${imageUrls})`;
  });
  return job.id;
}

async function job(id: string): Promise<JobRow> {
  const [row] = await sql<JobRow[]>`select status, error_code, result_urls from public.generation_jobs where id = ${id}`;
  return row;
}

/**
 * Runs the ticks as the tick driver does (every 100 ms here) until the job satisfies `done`,
 * recording each status the job shows on the way.
 */
async function tickUntil(id: string, done: (row: JobRow) => boolean, seen: Status[] = [], timeoutMs = 15_000): Promise<JobRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await job(id);
    if (seen.at(-1) !== row.status) seen.push(row.status);
    if (done(row)) return row;
    if (Date.now() > deadline) {
      const [p] = await sql`select stage, attempt, retries, last_error from private.job_pipeline where job_id = ${id}`;
      throw new Error(`job ${id} still ${row.status} after ${timeoutMs} ms: ${JSON.stringify(p)}\n${functionLog.join("\n")}`);
    }
    await sql`select private.reconcile_tick(), private.dispatch_tick(), private.poll_tick()`;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The function connects as its own login role (loopback is trusted: no password locally). */
function callbackDatabaseUrl(): string {
  const url = new URL(databaseUrl());
  url.username = "kiln_callback";
  url.password = "";
  return url.toString();
}

const finished = (row: JobRow) => row.status === "completed" || row.status === "failed";
/** One result image of a job, as the callback function stores it: under the delivery's own folder. */
const resultPath = (id: string, n = 0) => expect.stringMatching(new RegExp(`^generated-images/${userId}/${id}/[0-9a-f-]{36}/${n}\\.png$`));

async function taskIdOf(id: string): Promise<string> {
  const [{ task_id }] = await sql<{ task_id: string }[]>`select task_id from private.job_pipeline where job_id = ${id}`;
  return task_id;
}

/** Moves a held emulator task on until it is terminal (waiting → queuing → generating → success). */
async function release(taskId: string) {
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${kie!.url}/__admin/tasks/${taskId}/advance`, { method: "POST" });
    expect(res.status).toBe(200);
  }
}

/** Downloads each result the way the app does: a fresh signed URL from Storage, then a GET. */
async function downloadResults(paths: string[]): Promise<PNG[]> {
  const bucket = userClient(stack!.gateway.url, userJwt(userId)).storage.from("generated-images");
  const { data, error } = await bucket.createSignedUrls(paths.map((p) => p.replace(/^generated-images\//, "")), 60);
  expect(error).toBeNull();
  return Promise.all(data!.map(async (item) => {
    expect(item.error).toBeNull();
    const res = await fetch(item.signedUrl!);
    expect(res.status).toBe(200);
    return PNG.sync.read(Buffer.from(await res.arrayBuffer()));
  }));
}

beforeAll(async () => {
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity where application_name = ${PG_NET_WORKER_APPLICATION_NAME}`;
  if (n > 0) throw new Error("another pg_net look-alike worker is connected: this suite needs the queue to itself");

  kie = await startKieEmulator({ apiKeys: [KIE_KEY], taskMs: 300, callbackRetryMs: [200, 500], imageSize: 64 });
  stack = await startTestGateway({
    functionsDir: join(ROOT, "supabase/functions"),
    configPath: join(ROOT, "supabase/config.toml"),
    functionEnv: { KILN_FINALIZE_CREDENTIAL: FINALIZE, KILN_CALLBACK_DB_URL: callbackDatabaseUrl() },
  });

  savedSettings = await sql`select key, value from private.settings where key = any(${SETTINGS})`;
  await sql`update private.settings set value = ${sql.json(kie.url)} where key = 'kie.base_url'`;
  // The dropped-callback job is polled a second after KIE accepted it, not 15 s.
  await sql`update private.settings set value = '1' where key = 'poll.first_after_seconds'`;
  // Input photos are signed URLs of this gateway's Storage (plain http on loopback: an exact origin).
  await sql`update private.settings set value = value || ${sql.json(stack.gateway.url)} where key = 'images.allowed_hosts'`;
  // The emulator serves the result files: its origin is an accepted result host.
  await sql`update private.settings set value = value || ${sql.json(kie.url)} where key = 'results.allowed_hosts'`;
  await sql`update private.rate_slots set available_at = '-infinity'`;
  savedSecrets = await sql`select name, secret, description from vault.secrets where name = any(${SECRETS})`;
  await sql`delete from vault.secrets where name = any(${SECRETS})`;
  await sql`select vault.create_secret(${KIE_KEY}, 'kie_api_key'),
                   vault.create_secret(${`${stack.gateway.url}/functions/v1`}, 'functions_base_url'),
                   vault.create_secret(${FINALIZE}, 'finalize_credential')`;
  await sql`delete from private.alerts`;

  const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
  await sql`insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
            values (${planId}, 'End-to-end test', ${rank}, 100, 100, 0, true)`;
  [{ id: templateId }] = await sql<{ id: string }[]>`
    insert into public.templates (name, category, prompt_template, is_active)
    values (${`End-to-end ${suffix}`}, 'test', 'the same photo as a watercolour painting', true) returning id`;
  userId = randomUUID();
  await sql`insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
            values (${userId}, 'authenticated', 'authenticated', ${`e2e-${userId}@test.kiln.local`}, '{}', '{}', now(), now())`;
  await sql.begin(async (tx) => {
    await tx`set local role service_role`;
    await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
    await tx`select public.set_plan(${userId}, ${planId})`;
    await tx`select public.grant_credits(${userId}, 100, 'end-to-end test credits')`;
  });
  worker = await startPgNetWorker({ databaseUrl: adminDatabaseUrl(), log: () => {} });

  // The function's Deno process starts on its first request; start it now, outside the timings.
  const warm = await fetch(`${stack.gateway.url}/functions/v1/kie-callback`, { method: "POST", body: "{}" });
  expect(warm.status).toBe(400);
}, 60_000);

afterAll(async () => {
  try {
    await worker?.stop();
    await sql`delete from vault.secrets where name = any(${SECRETS})`;
    for (const { name, secret, description } of savedSecrets) await sql`select vault.create_secret(${secret}, ${name}, ${description})`;
    for (const { key, value } of savedSettings) await sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
    await sql`delete from private.alerts`;
    if (userId) await sql`delete from auth.users where id = ${userId}`;
    await sql`delete from public.plans where id = ${planId}`;
    if (templateId) await sql`delete from public.templates where id = ${templateId}`;
  } finally {
    await stack?.stop();
    await kie?.close();
    await sql.end({ timeout: 5 });
  }
});

describe("one job end to end on the local stack", () => {
  it("text-to-image: pending → generating → completed, its image in Storage as a PNG the owner can open", async () => {
    const id = await startJob(`a lighthouse at dusk [kie:hold] ${suffix}`);
    const seen: Status[] = [];
    await tickUntil(id, (row) => row.status === "generating", seen);
    await release(await taskIdOf(id));
    const done = await tickUntil(id, finished, seen);

    expect(seen).toEqual(["pending", "generating", "completed"]);
    expect(done.result_urls).toEqual([resultPath(id)]);
    const [image] = await downloadResults(done.result_urls!);
    expect(image.width).toBeGreaterThan(0);
    expect(image.height).toBeGreaterThan(0);
    // The bytes are the ones KIE produced.
    const kieImage = PNG.sync.read(Buffer.from(await (await fetch(kie!.state.tasks.get(await taskIdOf(id))!.resultUrls[0])).arrayBuffer()));
    expect(PNG.sync.write(image)).toEqual(PNG.sync.write(kieImage));
    const [{ kind }] = await sql<{ kind: string }[]>`
      select string_agg(kind, ',' order by kind) as kind from private.requests where job_id = ${id}`;
    expect(kind).not.toContain("finalize"); // the callback completed it
    const [{ sessions }] = await sql<{ sessions: number }[]>`
      select count(*)::int as sessions from pg_stat_activity where usename = 'kiln_callback'`;
    expect(sessions).toBeGreaterThan(0); // as its own login, not as the owner
  });

  it("image-to-image: the user's upload goes to KIE as a signed URL and the result is made from it", async () => {
    // A solid red photo: the emulator's result is 70 % input, so red dominates every pixel.
    const photo = new PNG({ width: 16, height: 16 });
    for (let i = 0; i < photo.data.length; i += 4) photo.data.set([255, 0, 0, 255], i);
    const uploads = userClient(stack!.gateway.url, userJwt(userId)).storage.from("user-uploads");
    const path = `${userId}/${suffix}.png`;
    const upload = await uploads.upload(path, PNG.sync.write(photo), { contentType: "image/png" });
    expect(upload.error).toBeNull();
    const signed = await uploads.createSignedUrl(path, 600);
    expect(signed.error).toBeNull();

    const id = await startTemplateJob([signed.data!.signedUrl]);
    const done = await tickUntil(id, finished);

    expect(done).toMatchObject({ status: "completed", result_urls: [resultPath(id)] });
    const task = kie!.state.tasks.get(await taskIdOf(id))!;
    expect(task.imageUrls).toEqual([signed.data!.signedUrl]);
    const [image] = await downloadResults(done.result_urls!);
    for (let i = 0; i < image.data.length; i += 4) {
      expect(image.data[i]).toBeGreaterThan(Math.max(image.data[i + 1], image.data[i + 2]));
    }
  });

  it("callback dropped: polling finds the result and the finalize request completes the job", async () => {
    const id = await startJob(`a harbour at night [kie:callback=drop] ${suffix}`);
    const done = await tickUntil(id, finished);

    expect(done.status).toBe("completed");
    expect(done.result_urls).toEqual([resultPath(id)]);
    const [image] = await downloadResults(done.result_urls!);
    expect(image.width).toBeGreaterThan(0);
    // The function answered the finalize request (pg_net's response, reconciled into our log).
    const deadline = Date.now() + 5_000;
    let finalizes: { http_status: number | null; outcome: string | null }[] = [];
    for (;;) {
      await sql`select private.reconcile_tick()`;
      finalizes = await sql`select http_status, outcome from private.requests where job_id = ${id} and kind = 'finalize'`;
      if (finalizes.some((r) => r.outcome !== null) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(finalizes).toContainEqual({ http_status: 200, outcome: "ok" });
    expect(kie!.state.counters.callbacks.dropped).toBeGreaterThan(0);
  });

  it("task failure (delivered twice): failed, with exactly one refund", async () => {
    const [{ before }] = await sql<{ before: number }[]>`select credits as before from public.profiles where id = ${userId}`;
    const deliveredBefore = kie!.state.counters.callbacks.delivered;
    const id = await startJob(`a storm at sea [kie:fail=501,callback=duplicate] ${suffix}`);
    const done = await tickUntil(id, finished);
    expect(done).toMatchObject({ status: "failed", error_code: "provider_failed", result_urls: [] });

    // Let the second delivery arrive and be answered before counting.
    const deadline = Date.now() + 5_000;
    while (kie!.state.counters.callbacks.delivered < deliveredBefore + 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(kie!.state.counters.callbacks.delivered).toBe(deliveredBefore + 2); // both answered 2xx
    const [ledger] = await sql<{ refunds: number; credits: number }[]>`
      select (select count(*)::int from public.credit_ledger where job_id = ${id} and kind = 'refund') as refunds,
             (select credits from public.profiles where id = ${userId}) as credits`;
    expect(ledger).toEqual({ refunds: 1, credits: before });
  });

  it("a forged callback (wrong token) gets 401 and changes nothing; the real one still completes the job", async () => {
    const id = await startJob(`a quiet forest [kie:hold] ${suffix}`);
    await tickUntil(id, (row) => row.status === "generating");
    const taskId = await taskIdOf(id);
    const forged = {
      code: 200,
      msg: "success",
      data: { taskId, state: "success", resultJson: JSON.stringify({ resultUrls: [`${kie!.url}/forged.png`] }) },
    };
    const state = async () => ({
      job: await job(id),
      pipeline: await sql`select stage, attempt, task_id from private.job_pipeline where job_id = ${id}`,
      objects: await sql`select name from storage.objects where bucket_id = 'generated-images' and name like ${`${userId}/${id}/%`}`,
      late: await sql`select id from private.late_results where job_id = ${id}`,
    });
    const before = await state();
    const base = `${stack!.gateway.url}/functions/v1/kie-callback`;
    const wrongToken = new URLSearchParams({ job: id, attempt: "1", token: randomBytes(32).toString("hex") });
    const res = await fetch(`${base}?${wrongToken}`, { method: "POST", body: JSON.stringify(forged) });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: 401, msg: "invalid callback token" });
    const wrongCredential = new URLSearchParams({ job: id, attempt: "1", source: "poll" });
    const finalize = await fetch(`${base}?${wrongCredential}`, {
      method: "POST",
      headers: { authorization: `Bearer ${randomBytes(32).toString("hex")}` },
      body: JSON.stringify(forged),
    });
    expect(finalize.status).toBe(401);
    expect(await state()).toEqual(before);
    expect(before.job.status).toBe("generating");

    await release(taskId);
    const done = await tickUntil(id, finished);
    expect(done).toMatchObject({ status: "completed", result_urls: [resultPath(id)] });
  });

  it("a result that loses the race to the deadline leaves nothing the user can read", async () => {
    const id = await startJob(`a lantern in the rain [kie:hold] ${suffix}`);
    await tickUntil(id, (row) => row.status === "generating");
    const taskId = await taskIdOf(id);
    const callbackUrl = kie!.state.tasks.get(taskId)!.callBackUrl!;

    // A result host that holds the download until the job has failed.
    let requested!: () => void;
    const downloadStarted = new Promise<void>((r) => requested = r);
    let releaseDownload!: () => void;
    const held = new Promise<void>((r) => releaseDownload = r);
    const slow = createServer((_req, res) => {
      requested();
      void held.then(() => res.writeHead(200, { "content-type": "image/png" }).end(png(7)));
    });
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", r));
    const slowOrigin = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    await sql`update private.settings set value = value || ${sql.json(slowOrigin)} where key = 'results.allowed_hosts'`;
    try {
      const body = {
        code: 200,
        msg: "success",
        data: { taskId, state: "success", resultJson: JSON.stringify({ resultUrls: [`${slowOrigin}/late.png`] }) },
      };
      const answer = fetch(callbackUrl, { method: "POST", body: JSON.stringify(body) });
      await downloadStarted;
      // Past the deadline: the final poll, then failed and refunded.
      await sql`select private.deadline_tick(now() + interval '1 hour')`;
      await sql`select private.deadline_tick(now() + interval '2 hours')`;
      expect((await job(id)).status).toBe("failed");
      releaseDownload();
      const res = await answer;
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ code: 200, msg: "success", result: "duplicate" });

      const objects = await sql`select name from storage.objects where bucket_id = 'generated-images' and name like ${`${userId}/${id}/%`}`;
      expect(objects).toEqual([]);
      const listed = await userClient(stack!.gateway.url, userJwt(userId)).storage.from("generated-images").list(`${userId}/${id}`);
      expect(listed.data ?? []).toEqual([]);
    } finally {
      releaseDownload();
      await new Promise((r) => slow.close(r));
    }
  }, 30_000);
});
