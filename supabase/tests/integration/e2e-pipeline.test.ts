import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { PNG } from "pngjs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_SERVICE_ROLE_KEY, userJwt } from "../../../scripts/dev-stack/gateway/keys.ts";
import type { KieEmulator } from "../../../scripts/dev-stack/kie-emulator/server.ts";
import { asUser } from "./support/concurrency.ts";
import { png, type TestGateway, userClient } from "./support/gateway.ts";
import { type JobRow, Pipeline, type Status } from "./support/pipeline.ts";

// One job at a time through everything that runs locally: start_generation → the dispatch
// trigger and ticks → pg_net's worker → the KIE emulator → its callback (or our
// poll and finalize request) → the gateway → the kie-callback function under Deno → Storage and
// the completion SQL. The app's side is the official client with the user's JWT.

let p: Pipeline;
let userId = "";
let suffix = "";
let templateId = "";
let kie: KieEmulator;
let stack: TestGateway;

async function startJob(prompt: string): Promise<string> {
  return p.startJob(userId, { prompt });
}

/** An image-to-image job from a template, with the user's uploaded photos as input. */
async function startTemplateJob(imageUrls: string[]): Promise<string> {
  return p.startJob(userId, { templateId, imageUrls });
}

/** One result image of a job, as the callback function stores it: under the delivery's own folder. */
const resultPath = (id: string, n = 0) => expect.stringMatching(new RegExp(`^generated-images/${userId}/${id}/[0-9a-f-]{36}/${n}\\.png$`));

async function job(id: string): Promise<JobRow> {
  return p.job(id);
}

/**
 * Runs the ticks as the tick driver does (every 100 ms here) until the job satisfies `done`,
 * recording each status the job shows on the way.
 */
async function tickUntil(id: string, done: (row: JobRow) => boolean, seen: Status[] = []): Promise<JobRow> {
  let last: JobRow | undefined;
  await p.tickUntil(async () => {
    last = await job(id);
    if (seen.at(-1) !== last.status) seen.push(last.status);
    return done(last);
  }, { jobs: [id] });
  return last!;
}

const finished = (row: JobRow) => row.status === "completed" || row.status === "failed";

async function taskIdOf(id: string): Promise<string> {
  return (await p.taskIdOf(id))!;
}

/** Moves a held emulator task on until it is terminal (waiting → queuing → generating → success). */
async function release(taskId: string) {
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${kie.url}/__admin/tasks/${taskId}/advance`, { method: "POST" });
    expect(res.status).toBe(200);
  }
}

/** Downloads each result the way the app does: a fresh signed URL from Storage, then a GET. */
/**
 * A result host on results.allowed_hosts that answers the download (a PNG of `seed`) only once
 * released: a delivery can be held mid-download while the job moves on.
 */
async function heldResultHost(seed: number) {
  let requested!: () => void;
  const downloadStarted = new Promise<void>((r) => requested = r);
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  const server = createServer((_req, res) => {
    requested();
    void held.then(() => res.writeHead(200, { "content-type": "image/png" }).end(png(seed)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const [{ value: hosts }] = await p.sql<{ value: string[] }[]>`select value from private.settings where key = 'results.allowed_hosts'`;
  await p.setSetting("results.allowed_hosts", [...hosts, origin]);
  return {
    origin,
    downloadStarted,
    release,
    close: async () => {
      release();
      await new Promise((r) => server.close(r));
      await p.setSetting("results.allowed_hosts", hosts);
    },
  };
}

async function downloadResults(paths: string[]): Promise<PNG[]> {
  return Promise.all(paths.map(async (path) => PNG.sync.read(await p.download(userId, path))));
}

beforeAll(async () => {
  p = await Pipeline.start();
  ({ kie, stack, suffix, templateId } = p);
  userId = await p.createUser(100);
}, 60_000);

afterEach(async () => {
  await p.restoreScenario();
});

afterAll(async () => {
  await p?.stop();
});

describe("one job end to end on the local stack", () => {
  it("text-to-image: pending → generating → completed, its image in Storage as a PNG the owner can open", async () => {
    // The callback must be what completes it: no poll may find the result first.
    await p.setSetting("poll.first_after_seconds", 60);
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
    const kieImage = PNG.sync.read(Buffer.from(await (await fetch(kie.state.tasks.get(await taskIdOf(id))!.resultUrls[0])).arrayBuffer()));
    expect(PNG.sync.write(image)).toEqual(PNG.sync.write(kieImage));
    const [{ kind }] = await p.sql<{ kind: string }[]>`
      select string_agg(kind, ',' order by kind) as kind from private.requests where job_id = ${id}`;
    expect(kind).not.toContain("finalize"); // the callback completed it
    const [{ sessions }] = await p.sql<{ sessions: number }[]>`
      select count(*)::int as sessions from pg_stat_activity where usename = 'kiln_callback'`;
    expect(sessions).toBeGreaterThan(0); // as its own login, not as the owner
  });

  it("image-to-image: the user's upload goes to KIE as a signed URL and the result is made from it", async () => {
    // A solid red photo: the emulator's result is 70 % input, so red dominates every pixel.
    const photo = new PNG({ width: 16, height: 16 });
    for (let i = 0; i < photo.data.length; i += 4) photo.data.set([255, 0, 0, 255], i);
    const uploads = userClient(stack.gateway.url, userJwt(userId)).storage.from("user-uploads");
    const path = `${userId}/${suffix}.png`;
    const upload = await uploads.upload(path, PNG.sync.write(photo), { contentType: "image/png" });
    expect(upload.error).toBeNull();
    const signed = await uploads.createSignedUrl(path, 600);
    expect(signed.error).toBeNull();

    const id = await startTemplateJob([signed.data!.signedUrl]);
    const done = await tickUntil(id, finished);

    expect(done).toMatchObject({ status: "completed", result_urls: [resultPath(id)] });
    const task = kie.state.tasks.get(await taskIdOf(id))!;
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
      await p.sql`select private.reconcile_tick()`;
      finalizes = await p.sql`select http_status, outcome from private.requests where job_id = ${id} and kind = 'finalize'`;
      if (finalizes.some((r) => r.outcome !== null) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(finalizes).toContainEqual({ http_status: 200, outcome: "ok" });
    expect(kie.state.counters.callbacks.dropped).toBeGreaterThan(0);
  });

  it("task failure (delivered twice): failed, with exactly one refund", async () => {
    const [{ before }] = await p.sql<{ before: number }[]>`select credits as before from public.profiles where id = ${userId}`;
    const deliveredBefore = kie.state.counters.callbacks.delivered;
    const id = await startJob(`a storm at sea [kie:fail=501,callback=duplicate] ${suffix}`);
    const done = await tickUntil(id, finished);
    expect(done).toMatchObject({ status: "failed", error_code: "provider_failed", result_urls: [] });

    // Let the second delivery arrive and be answered before counting.
    const deadline = Date.now() + 5_000;
    while (kie.state.counters.callbacks.delivered < deliveredBefore + 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(kie.state.counters.callbacks.delivered).toBe(deliveredBefore + 2); // both answered 2xx
    const [ledger] = await p.sql<{ refunds: number; credits: number }[]>`
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
      data: { taskId, state: "success", resultJson: JSON.stringify({ resultUrls: [`${kie.url}/forged.png`] }) },
    };
    const state = async () => ({
      job: await job(id),
      pipeline: await p.sql`select stage, attempt, task_id from private.job_pipeline where job_id = ${id}`,
      objects: await p.sql`select name from storage.objects where bucket_id = 'generated-images' and name like ${`${userId}/${id}/%`}`,
      late: await p.sql`select id from private.late_results where job_id = ${id}`,
    });
    const before = await state();
    const base = `${stack.gateway.url}/functions/v1/kie-callback`;
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
    const callbackUrl = kie.state.tasks.get(taskId)!.callBackUrl!;

    // A result host that holds the download until the job has failed.
    const host = await heldResultHost(7);
    try {
      const body = {
        code: 200,
        msg: "success",
        data: { taskId, state: "success", resultJson: JSON.stringify({ resultUrls: [`${host.origin}/late.png`] }) },
      };
      const answer = fetch(callbackUrl, { method: "POST", body: JSON.stringify(body) });
      await host.downloadStarted;
      // Past the deadline: the final poll, then failed and refunded.
      await p.sql`select private.deadline_tick(now() + interval '1 hour')`;
      await p.sql`select private.deadline_tick(now() + interval '2 hours')`;
      expect((await job(id)).status).toBe("failed");
      host.release();
      const res = await answer;
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ code: 200, msg: "success", result: "duplicate" });

      const objects = await p.sql`select name from storage.objects where bucket_id = 'generated-images' and name like ${`${userId}/${id}/%`}`;
      expect(objects).toEqual([]);
      const listed = await userClient(stack.gateway.url, userJwt(userId)).storage.from("generated-images").list(`${userId}/${id}`);
      expect(listed.data ?? []).toEqual([]);
    } finally {
      await host.close();
    }
  }, 30_000);

  it("a result stored after its job was deleted and purged, whose own delete fails, is removed by the database", async () => {
    const id = await startJob(`a kettle on a stove [kie:hold] ${suffix}`);
    await tickUntil(id, (row) => row.status === "generating");
    const taskId = await taskIdOf(id);
    const callbackUrl = kie.state.tasks.get(taskId)!.callBackUrl!;

    const host = await heldResultHost(8);
    // The database's Storage deletes go to this gateway, as on a hosted project.
    const saved = await p.sql<{ name: string; secret: string }[]>`
      select name, secret from vault.secrets where name in ('project_url', 'service_role_key')`;
    await p.sql`delete from vault.secrets where name in ('project_url', 'service_role_key')`;
    await p.sql`select vault.create_secret(${stack.gateway.url}, 'project_url')`;
    await p.sql`select vault.create_secret(${LOCAL_SERVICE_ROLE_KEY}, 'service_role_key')`;
    try {
      const body = {
        code: 200,
        msg: "success",
        data: { taskId, state: "success", resultJson: JSON.stringify({ resultUrls: [`${host.origin}/late.png`] }) },
      };
      const answer = fetch(callbackUrl, { method: "POST", body: JSON.stringify(body) });
      await host.downloadStarted;
      // While the image downloads: the job times out, its owner deletes it, and its purge finds
      // the folder empty and is done.
      await p.sql`select private.deadline_tick(now() + interval '1 hour')`;
      await p.sql`select private.deadline_tick(now() + interval '2 hours')`;
      expect((await job(id)).status).toBe("failed");
      await p.sql.begin(async (tx) => {
        await asUser(tx, userId);
        await tx`select public.delete_generation(${id})`;
      });
      await p.sql`select private.purge_results(now())`;
      const [jobPurge] = await p.sql`select done_at from private.result_purges where job_id = ${id}`;
      expect(jobPurge.done_at).not.toBeNull();

      // Then the image is stored, the completion is refused, and the function's delete fails.
      stack.gateway.faults.failDeletes = 1;
      host.release();
      const res = await answer;
      expect(await res.json()).toEqual({ code: 200, msg: "success", result: "duplicate" });
      expect(stack.gateway.faults.failDeletes).toBe(0);
      const objects = () => p.sql`select name from storage.objects where bucket_id = 'generated-images' and name like ${`${userId}/${id}/%`}`;
      expect(await objects()).toHaveLength(1);

      // The database recorded the delivery's purge with its answer; the retention tick's part empties it.
      const purges = () => p.sql`select * from private.storage_purges where reason = 'delivery_discarded' and path like ${`${userId}/${id}/%`}`;
      expect(await purges()).toHaveLength(1);
      let at = new Date();
      for (let visit = 0; visit < 10 && !(await purges())[0].done_at; visit++) {
        await p.sql`select private.purge_discarded_deliveries(${at})`;
        const [row] = await purges();
        if (row.last_request_id && !row.done_at) {
          await p.tickUntil(async () => (await p.sql`select 1 from net._http_response where id = ${row.last_request_id}`).length > 0);
        }
        at = new Date((row.next_attempt_at as Date).getTime() + 1);
      }
      expect((await purges())[0].done_at).not.toBeNull();
      expect(await objects()).toEqual([]);
    } finally {
      stack.gateway.faults.failDeletes = 0;
      await host.close();
      await p.sql`delete from vault.secrets where name in ('project_url', 'service_role_key')`;
      for (const { name, secret } of saved) await p.sql`select vault.create_secret(${secret}, ${name})`;
    }
  }, 30_000);
});
