import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closedPort } from "../../../scripts/dev-stack/kie-emulator/server.ts";
import { connectAsAdmin } from "./support/db.ts";
import { type InvariantOptions, Pipeline } from "./support/pipeline.ts";

// Every fault we know, thrown at the whole local pipeline (support/pipeline.ts), one scenario at
// a time; after each, the invariants (support/pipeline.ts checkInvariants) must hold and the
// shared state (settings, Vault, emulator, alerts, worker) is put back.

let p: Pipeline;
let scenarioJobs: string[] = [];

beforeAll(async () => {
  p = await Pipeline.start();
}, 60_000);

afterEach(async () => {
  p.stack.gateway.faults.failUploads = 0;
  await p.restoreScenario();
  scenarioJobs = [];
});

afterAll(async () => {
  await p?.stop();
});

/** Starts a job and remembers it for the scenario's invariants. */
async function start(userId: string, o: Parameters<Pipeline["startJob"]>[1]): Promise<string> {
  const id = await p.startJob(userId, o);
  scenarioJobs.push(id);
  return id;
}

async function expectInvariants(o: InvariantOptions = {}) {
  expect(await p.checkInvariants(scenarioJobs, o)).toEqual([]);
}

/** A clock running `speed` times faster than the real one, from now (backoffs, deadlines). */
function fastClock(speed: number): () => Date {
  const t0 = Date.now();
  return () => new Date(t0 + (Date.now() - t0) * speed);
}

async function kinds(id: string): Promise<string[]> {
  const rows = await p.sql<{ kind: string }[]>`select kind from private.requests where job_id = ${id} order by id`;
  return rows.map((r) => r.kind);
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every model, each from the entry point the app uses for it. */
async function oneJobPerModel(userId: string, tag: string): Promise<string[]> {
  const photo = await p.uploadPhoto(userId);
  return [
    await start(userId, { prompt: `a lighthouse ${tag}`, quality: "fast" }),
    await start(userId, { prompt: `a lighthouse ${tag}`, quality: "standard" }),
    await start(userId, { prompt: `a lighthouse ${tag}`, quality: "ultra" }),
    await start(userId, { templateId: p.templateId, imageUrls: [photo], quality: "fast" }),
    await start(userId, { templateId: p.templateId, imageUrls: [photo], quality: "standard" }),
  ];
}

describe("every model's happy path", () => {
  it("through the callback: all five models complete, with no finalize request", async () => {
    // Only the callbacks: a poll on a slow machine would otherwise find a result first.
    await p.setSetting("poll.first_after_seconds", 60);
    const user = await p.createUser(100);
    const ids = await oneJobPerModel(user, "by callback");
    const rows = await p.untilTerminal(ids);
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => "completed"));
    expect(new Set(rows.map((r) => r.model_key))).toEqual(new Set(["imagen-fast", "imagen-4", "imagen-ultra", "nano-edit", "nano-pro"]));
    for (const id of ids) expect(await kinds(id)).toEqual(["create"]);
    expect(p.kie.state.counters.callbacks.delivered).toBe(5);
    await expectInvariants();
  });

  it("through polling with every callback dropped: all five complete by poll and finalize", async () => {
    p.kie.state.faults.add("createTask", "callback=drop");
    const user = await p.createUser(100);
    const ids = await oneJobPerModel(user, "by polling");
    const rows = await p.untilTerminal(ids);
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => "completed"));
    for (const id of ids) expect(await kinds(id)).toEqual(expect.arrayContaining(["create", "poll", "finalize"]));
    expect(p.kie.state.counters.callbacks.dropped).toBe(5);
    expect(p.kie.state.counters.callbacks.sent).toBe(0);
    await expectInvariants();
  });
});

describe("createTask faults", () => {
  it("a 429 burst (the emulator's create rate lowered to 2/s): every job gets through, later, the 429s using up no attempt", async () => {
    const res = await fetch(`${p.kie.url}/__admin/config`, { method: "PATCH", body: JSON.stringify({ createRate: "2/1s" }) });
    expect(res.status).toBe(200);
    // One attempt each: a 429 proves KIE queued nothing, so only the deadline bounds its retries.
    await p.setSetting("retry.max_attempts", 1);
    const user = await p.createUser(100);
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(await start(user, { prompt: `burst ${i}` }));
    const rows = await p.untilTerminal(ids, { at: fastClock(4), timeoutMs: 20_000 });
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => "completed"));
    expect(p.kie.state.counters.rateLimited.createTask).toBeGreaterThan(0);
    await expectInvariants({ allow429: true });
  });

  it.each(["code=429", "code=500", "code=455", "http=403", "http=522"])("%s once on create: retried, completed", async (spec) => {
    p.kie.state.faults.add("createTask", spec, 1);
    const free = spec === "code=429" || spec === "code=455"; // KIE queued nothing: no attempt used up
    await p.setSetting("retry.max_attempts", free ? 1 : 2);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: `transient ${spec}` });
    const [row] = await p.untilTerminal([id], { at: fastClock(10) });
    expect(row.status).toBe("completed");
    expect(p.kie.state.counters.faultsInjected).toBe(1);
    expect((await kinds(id)).filter((k) => k === "create")).toHaveLength(2);
    await expectInvariants(); // a forced code=429 is a body code, not the emulator's limiter
  });

  it("505 on create (feature disabled) is permanent: failed and refunded, one attempt", async () => {
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "disabled [kie:code=505]" });
    const [row] = await p.untilTerminal([id]);
    expect(row).toMatchObject({ status: "failed" });
    expect(await kinds(id)).toEqual(["create"]);
    await expectInvariants();
  });
});

describe("task faults", () => {
  it.each([
    ["task failure", "[kie:fail=501]"],
    ["moderation failure", "[kie:moderation]"],
  ])("%s: failed with one refund", async (_name, marker) => {
    const user = await p.createUser(10);
    const id = await start(user, { prompt: `doomed ${marker}` });
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("failed");
    expect(row.error_code).toBeTruthy();
    // The app reads only our own message; KIE's failMsg stays in the private log.
    const { failMsg } = p.kie.state.tasks.get((await p.taskIdOf(id))!)!;
    expect(failMsg).not.toBe("");
    const [{ error_message }] = await p.sql<{ error_message: string }[]>`select error_message from public.generation_jobs where id = ${id}`;
    expect(error_message).toBeTruthy();
    expect(error_message).not.toContain(failMsg);
    await expectInvariants();
  });

  it("result URL expired before download: never completes with a broken image; fails at its deadline, refunded", async () => {
    const res = await fetch(`${p.kie.url}/__admin/config`, { method: "PATCH", body: JSON.stringify({ resultTtlMs: 1 }) });
    expect(res.status).toBe(200);
    await p.setSetting("jobs.deadline_seconds", 30);
    await p.setSetting("deadline.final_grace_seconds", 2);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "gone too soon" });
    const [row] = await p.untilTerminal([id], { at: fastClock(10), timeoutMs: 15_000 });
    expect(row).toMatchObject({ status: "failed", error_code: "timed_out" });
    expect(p.kie.state.counters.callbacks.failed).toBeGreaterThan(0); // the function refused the unreadable result
    await expectInvariants();
  });
});

describe("results no retry can take", () => {
  // KIE's report is the same on every delivery (recordInfo answers the same resultUrls for a
  // finished task, and a file keeps its type), so the function fails the job at once: provider
  // outcome "unusable", one refund, long before the deadline, on either path.
  it.each([
    ["more result URLs than image_count", "callback", "[kie:results=3]", /the report lists 3 result images, more than the 1 the job asked for/],
    ["more result URLs than image_count", "poll", "[kie:results=3,callback=drop]", /the report lists 3 result images, more than the 1 the job asked for/],
    ["a GIF result", "callback", "[kie:format=gif]", /result image 1 of 1 cannot be stored: a GIF image, not PNG, JPEG or WebP/],
    ["a GIF result", "poll", "[kie:format=gif,callback=drop]", /result image 1 of 1 cannot be stored: a GIF image, not PNG, JPEG or WebP/],
  ])("%s, by %s: failed at once as provider_failed, one refund", async (_name, path, marker, reason) => {
    await p.setSetting("jobs.deadline_seconds", 900);
    // The callback path only: a poll on a slow machine would otherwise find the result first.
    if (path === "callback") await p.setSetting("poll.first_after_seconds", 60);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: `a vase ${path} ${marker}` });
    const [row] = await p.untilTerminal([id]);
    expect(row).toMatchObject({ status: "failed", error_code: "provider_failed", result_urls: [] });
    const [facts] = await p.sql<{ image_count: number; last_error: string; refunds: number; to_deadline: number }[]>`
      select j.image_count, jp.last_error,
             (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds,
             extract(epoch from jp.deadline_at - j.completed_at)::float8 as to_deadline
        from public.generation_jobs j join private.job_pipeline jp on jp.job_id = j.id
       where j.id = ${id}`;
    expect(facts.image_count).toBe(1);
    expect(facts.last_error).toMatch(reason);
    expect(facts.refunds).toBe(1);
    // Failed at once, not at the deadline 15 minutes out.
    expect(facts.to_deadline).toBeGreaterThan(800);
    const { state, resultUrls } = p.kie.state.tasks.get((await p.taskIdOf(id))!)!;
    expect(state).toBe("success");
    expect(resultUrls).toHaveLength(marker.includes("results=3") ? 3 : 1);
    if (path === "callback") {
      // One delivery, answered 2xx (failure_recorded): KIE has nothing to retry.
      expect(await kinds(id)).toEqual(["create"]);
      await until("the callback answered", () => p.kie.state.counters.callbacks.delivered === 1);
      expect(p.kie.state.counters.callbacks.failed).toBe(0);
    } else {
      expect(p.kie.state.counters.callbacks.dropped).toBe(1);
      expect(await kinds(id)).toEqual(expect.arrayContaining(["create", "poll", "finalize"]));
    }
    await expectInvariants();
  });
});

describe("results the deliveries cannot take for long", () => {
  async function failedFacts(id: string) {
    const [facts] = await p.sql<{ last_error: string; refunds: number; to_deadline: number }[]>`
      select jp.last_error,
             (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds,
             extract(epoch from jp.deadline_at - j.completed_at)::float8 as to_deadline
        from public.generation_jobs j join private.job_pipeline jp on jp.job_id = j.id
       where j.id = ${id}`;
    return facts;
  }

  // The emulator's result host is taken off results.allowed_hosts: KIE reports the same URL on
  // every delivery and every poll, so the job fails when the first report is read.
  it.each(["callback", "poll"])("a result URL off results.allowed_hosts, by %s: failed at once, one refund", async (path) => {
    await p.setSetting("jobs.deadline_seconds", 900);
    await p.setSetting("results.allowed_hosts", ["tempfile.aiquickdraw.com"]);
    if (path === "callback") await p.setSetting("poll.first_after_seconds", 60);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: `a kite ${path} ${path === "poll" ? "[kie:callback=drop]" : ""}` });
    const [row] = await p.untilTerminal([id]);
    expect(row).toMatchObject({ status: "failed", error_code: "provider_failed", result_urls: [] });
    const facts = await failedFacts(id);
    expect(facts.last_error).toMatch(/unusable result URL 1 of 1 is not on an accepted result host/);
    expect(facts.refunds).toBe(1);
    expect(facts.to_deadline).toBeGreaterThan(800);
    const task = p.kie.state.tasks.get((await p.taskIdOf(id))!)!;
    if (path === "callback") {
      await until("the callback answered", () => task.callbacks.some((c) => c.status !== null));
      expect(task.callbacks.map((c) => c.status)).toEqual([200]);
    } else {
      // Failed where the poll's report was read: nothing was sent to the function to download.
      expect(await kinds(id)).not.toContain("finalize");
    }
    await expectInvariants();
  });

  // The result host serves its error page where the image should be, on every request: each
  // delivery is retried until results.non_image_grace_seconds (0 here: the second delivery) has
  // passed since the first, then the job fails as unusable.
  it.each(["callback", "poll"])("a result that is always an HTML page, by %s: failed on the delivery after the grace", async (path) => {
    await p.setSetting("jobs.deadline_seconds", 900);
    await p.setSetting("results.non_image_grace_seconds", 0);
    if (path === "callback") await p.setSetting("poll.first_after_seconds", 60);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: `a lamp ${path} [kie:format=html${path === "poll" ? ",callback=drop" : ""}]` });
    const [row] = await p.untilTerminal([id]);
    expect(row).toMatchObject({ status: "failed", error_code: "provider_failed", result_urls: [] });
    const facts = await failedFacts(id);
    expect(facts.last_error).toMatch(/unusable result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image; deliveries that found no image: 2,/);
    expect(facts.refunds).toBe(1);
    expect(facts.to_deadline).toBeGreaterThan(800);
    const task = p.kie.state.tasks.get((await p.taskIdOf(id))!)!;
    if (path === "callback") {
      // The first delivery is answered 502 and retried; the retry fails the job and is answered 200.
      await until("the retry answered", () => task.callbacks.filter((c) => c.status !== null).length === 2);
      expect(task.callbacks.map((c) => c.status)).toEqual([502, 200]);
    } else {
      expect((await kinds(id)).filter((k) => k === "finalize")).toHaveLength(2);
    }
    await expectInvariants();
  });
});

describe("callback faults", () => {
  it("duplicate callbacks: completed once, the second delivery changes nothing", async () => {
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "twice [kie:callback=duplicate]" });
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("completed");
    await until("both deliveries", () => p.kie.state.counters.callbacks.delivered === 2);
    expect((await p.job(id)).result_urls).toEqual(row.result_urls);
    await expectInvariants();
  });

  it("late and out-of-order callbacks: the later job completes first, the late one by poll; the late callback changes nothing", async () => {
    const user = await p.createUser(10);
    const late = await start(user, { prompt: "slowpoke [kie:callback=late:6000]" });
    const onTime = await start(user, { prompt: "on time" });
    await p.untilTerminal([onTime]);
    expect((await p.job(late)).status).not.toBe("completed");
    const [row] = await p.untilTerminal([late]);
    expect(row.status).toBe("completed");
    expect(await kinds(late)).toContain("finalize"); // polling got there first
    await until("the late callback", () => p.kie.state.counters.callbacks.delivered === 2);
    await expectInvariants();
  });

  it("forged callbacks (wrong token, wrong finalize credential) get 401 and change nothing", async () => {
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "guarded [kie:hold]" });
    await p.tickUntil(async () => (await p.job(id)).status === "generating");
    const taskId = (await p.taskIdOf(id))!;
    const forged = { code: 200, msg: "success", data: { taskId, state: "success", resultJson: JSON.stringify({ resultUrls: [`${p.kie.url}/forged.png`] }) } };
    const base = `${p.stack.gateway.url}/functions/v1/kie-callback`;
    const wrongToken = new URLSearchParams({ job: id, attempt: "1", token: randomBytes(32).toString("hex") });
    expect((await fetch(`${base}?${wrongToken}`, { method: "POST", body: JSON.stringify(forged) })).status).toBe(401);
    const poll = new URLSearchParams({ job: id, attempt: "1", source: "poll" });
    const finalize = await fetch(`${base}?${poll}`, { method: "POST", headers: { authorization: `Bearer ${randomBytes(32).toString("hex")}` }, body: JSON.stringify(forged) });
    expect(finalize.status).toBe(401);
    expect((await p.job(id)).status).toBe("generating");
    for (let i = 0; i < 3; i++) expect((await fetch(`${p.kie.url}/__admin/tasks/${taskId}/advance`, { method: "POST" })).status).toBe(200);
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("completed");
    await expectInvariants();
  });

  it("callback target down for a while: the callback fails, polling and finalize finish the job once it is back", async () => {
    await p.setSecret("functions_base_url", `http://127.0.0.1:${await closedPort()}/functions/v1`);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "nobody home" });
    await p.tickUntil(async () => p.kie.state.counters.callbacks.failed > 0, { jobs: [id] });
    expect((await p.job(id)).status).toBe("generating");
    await p.setSecret("functions_base_url", `${p.stack.gateway.url}/functions/v1`);
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("completed");
    await expectInvariants();
  });

  it("Storage failing midway: the first upload answers 500, the callback is retried and the job completes", async () => {
    p.stack.gateway.faults.failUploads = 1;
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "stored at last" });
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("completed");
    expect(p.stack.gateway.faults.failUploads).toBe(0);
    expect(p.kie.state.counters.callbacks.failed).toBeGreaterThan(0);
    await expectInvariants();
  });
});

describe("KIE account errors pause dispatch", () => {
  it("code=402: alert, nothing sent, then the credit check succeeds and the job completes", async () => {
    p.kie.state.faults.add("createTask", "code=402", 1);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "account code=402" });
    await p.tickUntil(async () => (await p.sql`select 1 from private.active_alerts where key = 'kie_account'`).length > 0, { jobs: [id] });
    const [{ paused }] = await p.sql<{ paused: boolean }[]>`select private.dispatch_paused() as paused`;
    expect(paused).toBe(true);
    const creates = p.kie.state.counters.requests.createTask;
    for (let i = 0; i < 5; i++) await p.tick();
    expect(p.kie.state.counters.requests.createTask).toBe(creates);
    const [row] = await p.untilTerminal([id], { account: true });
    expect(row.status).toBe("completed");
    await expectInvariants();
  });

  it.each(["code=401", "code=433"])("%s: paused past a successful credit check, until an operator clears the alert", async (spec) => {
    p.kie.state.faults.add("createTask", spec, 1);
    const user = await p.createUser(10);
    const id = await start(user, { prompt: `account ${spec}` });
    await p.tickUntil(async () => (await p.sql`select 1 from private.active_alerts where key = 'kie_account'`).length > 0, { jobs: [id] });
    // The account still has credits (a bad key or a sub-key cap): the credit check succeeds and
    // must not lift this pause.
    const checks = p.kie.state.counters.requests.credit;
    await p.tickUntil(async () => {
      await p.settle();
      return p.kie.state.counters.requests.credit > checks;
    }, { jobs: [id], account: true });
    await p.settle();
    for (let i = 0; i < 5; i++) await p.tick(undefined, true);
    const [{ paused }] = await p.sql<{ paused: boolean }[]>`select private.dispatch_paused() as paused`;
    expect(paused).toBe(true);
    expect((await p.job(id)).status).toBe("pending");
    await p.sql`select private.clear_alert('kie_account')`;
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("completed");
    await expectInvariants();
  });
});

/** The Deno processes of the kie-callback function started by this process's gateway. */
function functionPids(): number[] {
  const out = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.includes("kie-callback")).map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe("processes killed and restarted", () => {
  it("the pg_net worker stopped mid-flight: requests wait in the queue and go out when it is back", async () => {
    p.kie.state.faults.add("createTask", "callback=drop");
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "patience" });
    await p.tickUntil(async () => (await p.job(id)).status === "generating", { jobs: [id] });
    await p.stopWorker();
    for (let i = 0; i < 15; i++) {
      await p.tick();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await p.job(id)).status).toBe("generating");
    await p.startWorker();
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("completed");
    await expectInvariants();
  });

  it("the function killed: the next delivery starts it again and the job completes", async () => {
    const pids = functionPids();
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, "SIGKILL");
    const user = await p.createUser(10);
    const id = await start(user, { prompt: "phoenix" });
    const [row] = await p.untilTerminal([id]);
    expect(row.status).toBe("completed");
    expect(functionPids().some((pid) => !pids.includes(pid))).toBe(true);
    await expectInvariants();
  });
});

// Last: the heaviest scenario. Postgres is crashed for real (a backend killed with SIGKILL, as
// the pg_net worker suites do), which empties pg_net's unlogged queue: the createTask queued
// before the crash is never sent, and reconcile must count it lost and send it again.
describe("Postgres restarted mid-flight", () => {
  it("the queued createTask is lost with the pg_net queue; reconcile notices and the job completes", async () => {
    const admin = connectAsAdmin({ max: 1 });
    try {
      await p.setSetting("kie.create_timeout_ms", 500);
      await p.setSetting("reconcile.lost_after_seconds", 1);
      await p.stopWorker();
      const user = await p.createUser(10);
      const id = await start(user, { prompt: "through the storm" });
      await p.tick();
      const [{ queued }] = await admin<{ queued: number }[]>`select count(*)::int as queued from net.http_request_queue`;
      expect(queued).toBeGreaterThan(0);
      const checkpointer = async () => (await admin<{ pid: number }[]>`select pid from pg_stat_activity where backend_type = 'checkpointer'`)[0]?.pid;
      const before = await checkpointer();
      // The test cluster commits asynchronously: flush, so the crash loses only what is unlogged.
      await admin`checkpoint`;
      await admin`do $$ begin execute format('copy (select 1) to program %L', 'kill -KILL ' || pg_backend_pid()); end $$`.catch(() => {});
      await until("postgres back after crash recovery", async () => {
        const pid = await checkpointer().catch(() => undefined);
        return pid !== undefined && pid !== before;
      }, 30_000);
      const [{ left }] = await admin<{ left: number }[]>`select count(*)::int as left from net.http_request_queue`;
      expect(left).toBe(0);
      await p.startWorker();
      const [row] = await p.untilTerminal([id], { timeoutMs: 20_000 });
      expect(row.status).toBe("completed");
      const outcomes = await p.sql<{ outcome: string }[]>`select outcome from private.requests where job_id = ${id} and kind = 'create' order by id`;
      expect(outcomes[0].outcome).toMatch(/lost/);
      await expectInvariants();
    } finally {
      await admin.end({ timeout: 5 });
    }
  });
});
