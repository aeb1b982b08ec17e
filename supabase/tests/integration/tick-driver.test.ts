import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { localIntervalSeconds, startTickDriver, type TickDriver } from "../../../scripts/dev-stack/tick-driver.ts";
import { connect, databaseUrl } from "./support/db.ts";

const sql = connect();
let driver: TickDriver | undefined;
const suffix = Math.random().toString(36).slice(2, 8);
const table = `tick_driver_probe_${suffix}`;

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met before the deadline");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function probeCount(source: string): Promise<number> {
  const [{ count }] = await sql`select count(*)::int as count from ${sql(table)} where source = ${source} and runner = 'kiln-tick-driver'`;
  return count;
}

beforeAll(async () => {
  // pg_cron itself also runs every-minute jobs; rows record who ran them so only the driver's count.
  await sql`create table ${sql(table)} (
    source text not null,
    runner text not null default current_setting('application_name'),
    at timestamptz not null default clock_timestamp())`;
});

afterEach(async () => {
  await driver?.stop();
  driver = undefined;
  await sql`select cron.unschedule(jobid) from cron.job where jobname like ${`kiln-test-${suffix}-%`}`;
});

afterAll(async () => {
  await sql`drop table if exists ${sql(table)}`;
  await sql.end();
});

describe("localIntervalSeconds", () => {
  it("runs every-minute jobs every second and keeps seconds schedules", () => {
    expect(localIntervalSeconds("* * * * *")).toBe(1);
    expect(localIntervalSeconds("5 seconds")).toBe(5);
    expect(localIntervalSeconds("1 second")).toBe(1);
  });

  it("leaves slower cron schedules to pg_cron", () => {
    expect(localIntervalSeconds("0 3 * * *")).toBeNull();
    expect(localIntervalSeconds("*/5 * * * *")).toBeNull();
  });
});

describe("tick driver", () => {
  it("runs an every-minute pg_cron job's command every second", async () => {
    await sql`select cron.schedule(${`kiln-test-${suffix}-fast`}, '* * * * *',
      ${`insert into public.${table} (source) values ('fast')`})`;
    driver = await startTickDriver({ databaseUrl: databaseUrl(), intervalMs: 50 });
    await waitFor(async () => (await probeCount("fast")) >= 2);

    const [{ gap }] = await sql`
      select extract(epoch from max(at) - min(at))::float as gap from ${sql(table)}
       where source = 'fast' and runner = 'kiln-tick-driver'`;
    // Two runs, about a second apart: the driver paces each job at its local interval.
    expect(gap).toBeGreaterThanOrEqual(0.9);
  });

  it("leaves slow schedules alone and keeps going when a job fails", async () => {
    await sql`select cron.schedule(${`kiln-test-${suffix}-nightly`}, '0 3 * * *',
      ${`insert into public.${table} (source) values ('nightly')`})`;
    await sql`select cron.schedule(${`kiln-test-${suffix}-broken`}, '* * * * *', 'select 1/0')`;
    await sql`select cron.schedule(${`kiln-test-${suffix}-healthy`}, '* * * * *',
      ${`insert into public.${table} (source) values ('healthy')`})`;
    const failures: string[] = [];
    driver = await startTickDriver({
      databaseUrl: databaseUrl(),
      intervalMs: 50,
      log: (message) => failures.push(message),
    });
    await waitFor(async () => (await probeCount("healthy")) >= 2);

    expect(await probeCount("nightly")).toBe(0);
    expect(failures.some((message) => message.includes("broken") && message.includes("division by zero"))).toBe(true);
  });

  it("stops cleanly: no run after stop()", async () => {
    await sql`select cron.schedule(${`kiln-test-${suffix}-stop`}, '* * * * *',
      ${`insert into public.${table} (source) values ('stop')`})`;
    driver = await startTickDriver({ databaseUrl: databaseUrl(), intervalMs: 50 });
    await waitFor(async () => (await probeCount("stop")) >= 1);
    await driver.stop();
    driver = undefined;
    const countAtStop = await probeCount("stop");
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    expect(await probeCount("stop")).toBe(countAtStop);
  });
});
