// The local tick driver (scripts/dev-stack/tick-driver.ts) against the tick registry
// (private.ticks + private.schedule_ticks) and pg_cron's tables. Each test registers its own
// ticks, calling probe functions that record who ran them and when.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTickDriver, TICK_DRIVER_APPLICATION_NAME, type TickDriver } from "../../../scripts/dev-stack/tick-driver.ts";
import { adminDatabaseUrl, connect, connectAsAdmin } from "./support/db.ts";

const sql = connect();
const suffix = Math.random().toString(36).slice(2, 8);
const probe = `tick_probe_${suffix}`;
const tickName = (what: string) => `kiln-test-${suffix}-${what}`;
let driver: TickDriver | undefined;

async function waitFor(label: string, condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A private function a tick can call: records the run, optionally sleeps or fails first. */
async function probeFunction(what: string, body = ""): Promise<string> {
  const fn = `private.${probe}_${what}`;
  await sql.unsafe(`
    create function ${fn}() returns void language plpgsql set search_path = '' as $$
    declare started timestamptz := clock_timestamp();
    begin
      ${body}
      insert into public.${probe} (tick, runner, who, started, ended)
      values ('${what}', current_setting('application_name'), current_user, started, clock_timestamp());
    end $$`);
  return `select ${fn}()`;
}

/**
 * Registers a tick (the insert's trigger derives its pg_cron job) and returns the jobid. Every
 * sub-minute test tick's job is then moved to a date that never comes (31 February), so pg_cron's
 * own minute run cannot mix into what the test observes; the driver still sees a schedule that
 * does not express the cadence. All of them, not only the new one: the trigger rescheduled the
 * ticks registered before too.
 */
async function registerTick(what: string, everySeconds: number, command: string): Promise<string> {
  await sql`insert into private.ticks (name, every_seconds, command, description)
            values (${tickName(what)}, ${everySeconds}, ${command}, 'tick driver test')`;
  await sql`select cron.alter_job(j.jobid, schedule => '0 0 31 2 *')
              from cron.job j join private.ticks t on t.name = j.jobname
             where t.description = 'tick driver test' and t.every_seconds < 60`;
  const [{ jobid }] = await sql<{ jobid: string }[]>`select jobid::text from cron.job where jobname = ${tickName(what)}`;
  return jobid;
}

async function runsBy(what: string, runner = TICK_DRIVER_APPLICATION_NAME) {
  return sql<{ who: string; started: Date; ended: Date }[]>`
    select who, started, ended from ${sql(probe)} where tick = ${what} and runner = ${runner} order by started`;
}

async function history(jobid: string) {
  return sql<
    {
      runid: string;
      jobid: string;
      job_pid: number | null;
      database: string;
      username: string;
      command: string;
      status: string;
      return_message: string | null;
      start_time: Date | null;
      end_time: Date | null;
    }[]
  >`select runid::text, jobid::text, job_pid, database, username, command, status, return_message, start_time, end_time
      from cron.job_run_details where jobid = ${jobid}::bigint order by runid`;
}

beforeAll(async () => {
  await sql.unsafe(`create table public.${probe} (
    tick text not null, runner text not null, who text not null, started timestamptz not null, ended timestamptz not null)`);
});

afterEach(async () => {
  await driver?.stop();
  driver = undefined;
  await sql`delete from private.ticks where name like ${`kiln-test-${suffix}-%`}`;
  await sql`select private.schedule_ticks()`;
  await sql`select cron.unschedule(jobid) from cron.job where jobname like ${`kiln-test-${suffix}-%`}`;
});

afterAll(async () => {
  await sql.unsafe(`drop table if exists public.${probe}`);
  const fns = await sql<{ f: string }[]>`
    select p.oid::regprocedure::text as f from pg_proc p where p.proname like ${`${probe}%`}`;
  for (const { f } of fns) await sql.unsafe(`drop function ${f}`);
  await sql.end();
});

describe("tick driver", () => {
  it("runs a 1 s tick every second and leaves a 60 s tick to pg_cron (which schedules it exactly)", async () => {
    const fast = await registerTick("fast", 1, await probeFunction("fast"));
    const slow = await registerTick("slow", 60, await probeFunction("slow"));
    driver = await startTickDriver({ databaseUrl: adminDatabaseUrl(), intervalMs: 50 });
    await waitFor("four runs of the fast tick", async () => (await runsBy("fast")).length >= 4);
    await driver.stop();
    driver = undefined;

    const runs = await runsBy("fast");
    // Paced by its cadence, not by the driver's 50 ms look: about a second between starts. The
    // starts are read inside the database, so each includes that run's own start-up delay, which
    // varies on a loaded machine (seen: 828 ms between two runs): one gap can shrink by the
    // difference of two delays, the mean only by the first run's delay spread over all gaps. An
    // unpaced driver would start one every 50 ms, which both bounds still tell apart.
    const gaps = runs.slice(1).map((run, i) => run.started.getTime() - runs[i].started.getTime());
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(250);
    expect(gaps.reduce((sum, gap) => sum + gap, 0) / gaps.length).toBeGreaterThanOrEqual(700);
    expect(await runsBy("slow")).toHaveLength(0);
    expect((await history(slow)).length).toBeLessThanOrEqual(1); // pg_cron's own minute run, at most
    // Every run of the driver is in the history (pg_cron may add its own).
    expect((await history(fast)).length).toBeGreaterThanOrEqual(runs.length);
  });

  it("writes pg_cron's run history: succeeded, and failed with the error message", async () => {
    const okCommand = await probeFunction("ok");
    const ok = await registerTick("ok", 1, okCommand);
    const failCommand = await probeFunction("boom", "raise exception 'tick exploded';");
    const boom = await registerTick("boom", 1, failCommand);
    const messages: string[] = [];
    driver = await startTickDriver({ databaseUrl: adminDatabaseUrl(), intervalMs: 50, log: (m) => messages.push(m) });
    await waitFor("a finished run of each tick", async () => {
      const done = (rows: Awaited<ReturnType<typeof history>>) => rows.some((r) => r.end_time !== null);
      return done(await history(ok)) && done(await history(boom));
    });
    await driver.stop();
    driver = undefined;

    const [succeeded] = (await history(ok)).filter((r) => r.end_time !== null);
    expect(succeeded).toMatchObject({
      jobid: ok,
      database: "postgres",
      username: "postgres",
      command: okCommand,
      status: "succeeded",
      return_message: "1 row",
    });
    expect(succeeded.job_pid).toEqual(expect.any(Number));
    expect(succeeded.start_time!.getTime()).toBeLessThanOrEqual(succeeded.end_time!.getTime());

    const [failed] = (await history(boom)).filter((r) => r.end_time !== null);
    expect(failed).toMatchObject({ command: failCommand, status: "failed", return_message: "ERROR:  tick exploded\n" });
    expect(messages.some((m) => m.includes(tickName("boom")) && m.includes("tick exploded"))).toBe(true);
  });

  it("runs each command as its cron job's username", async () => {
    const role = `kiln_tick_runner_${suffix}`;
    // Only the platform's superuser may hand a cron job to another user (postgres cannot write cron.job).
    const admin = connectAsAdmin({ max: 1 });
    await admin.unsafe(`create role ${role} nologin`);
    try {
      const command = await probeFunction("as_role");
      await sql.unsafe(`grant usage on schema private to ${role};
                        grant execute on function private.${probe}_as_role() to ${role};
                        grant insert on public.${probe} to ${role};`);
      const jobid = await registerTick("as-role", 1, command);
      await admin`update cron.job set username = ${role} where jobid = ${jobid}::bigint`;
      driver = await startTickDriver({ databaseUrl: adminDatabaseUrl(), intervalMs: 50 });
      await waitFor("a run of the tick", async () => (await runsBy("as_role")).length >= 1);
      await driver.stop();
      driver = undefined;

      expect((await runsBy("as_role")).map((r) => r.who)).toContain(role);
      expect(new Set((await runsBy("as_role")).map((r) => r.who))).toEqual(new Set([role]));
      expect((await history(jobid))[0]).toMatchObject({ username: role });
    } finally {
      await admin`select cron.unschedule(jobid) from cron.job where username = ${role}`;
      await admin`delete from cron.job_run_details where username = ${role}`;
      await admin.unsafe(`drop owned by ${role}; drop role ${role}`);
      await admin.end();
    }
  });

  it("leaves pg_cron jobs that are not in the registry alone", async () => {
    const registered = await probeFunction("registered");
    await registerTick("registered", 1, registered);
    const stray = await probeFunction("stray");
    await sql`select cron.schedule(${tickName("stray")}, '* * * * *', ${stray})`;
    driver = await startTickDriver({ databaseUrl: adminDatabaseUrl(), intervalMs: 50 });
    await waitFor("two runs of the registered tick", async () => (await runsBy("registered")).length >= 2);
    await driver.stop();
    driver = undefined;

    expect(await runsBy("stray")).toHaveLength(0);
  });

  it("never overlaps a tick with itself, and stop() lets the run in progress finish", async () => {
    // Takes 1.5 s and is due every second.
    const jobid = await registerTick("slow-run", 1, await probeFunction("slow_run", "perform pg_sleep(1.5);"));
    driver = await startTickDriver({ databaseUrl: adminDatabaseUrl(), intervalMs: 50 });
    await waitFor("two finished runs", async () => (await runsBy("slow_run")).length >= 2);
    let inProgress: string | undefined;
    await waitFor("a run of the driver in progress", async () => {
      const [row] = await sql<{ runid: string }[]>`
        select d.runid::text from cron.job_run_details d join pg_stat_activity a on a.pid = d.job_pid
         where d.jobid = ${jobid}::bigint and d.status = 'running' and a.application_name = ${TICK_DRIVER_APPLICATION_NAME}`;
      inProgress = row?.runid;
      return inProgress !== undefined;
    });
    await driver.stop();
    driver = undefined;

    const runs = await runsBy("slow_run");
    for (let i = 1; i < runs.length; i++) expect(runs[i].started.getTime()).toBeGreaterThanOrEqual(runs[i - 1].ended.getTime());
    const finished = (await history(jobid)).find((r) => r.runid === inProgress);
    expect(finished).toMatchObject({ status: "succeeded", return_message: "1 row" });
    expect(finished?.end_time).not.toBeNull();

    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(await runsBy("slow_run")).toHaveLength(runs.length);
  });

  it("CLI: --help, exit code 2 on bad arguments", async () => {
    const script = fileURLToPath(new URL("../../../scripts/dev-stack/tick-driver.ts", import.meta.url));
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
        child.on("exit", (code) => resolve({ code, out }));
      });

    const help = await run(["--help"]);
    expect(help).toMatchObject({ code: 0, out: expect.stringContaining("Usage: tsx scripts/dev-stack/tick-driver.ts") });
    expect(await run(["--interval-ms", "soon"])).toMatchObject({ code: 2, out: expect.stringContaining("--interval-ms") });
    expect((await run(["--frobnicate"])).code).toBe(2);
  });
});
