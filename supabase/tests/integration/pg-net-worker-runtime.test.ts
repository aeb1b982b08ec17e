// How pg_net 0.20.4's background worker runs: one batch at a time, batch_size, the pause after a
// busy batch, expiry only on a wake, libcurl resending a POST on a dropped reused connection,
// at-least-once on a worker error, and what a SIGTERM, a terminated session and a crash of the
// database do to requests in flight.
//
// As in pg-net-worker.test.ts, every test that states a behaviour of pg_net runs against whichever
// pg_net is installed (the look-alike's Node worker, or the real background worker thawed and
// frozen); only the test of killing the look-alike's Node process is skipped with the real one.
// It owns the queue: no other look-alike worker may be connected.
import type http from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PG_NET_WORKER_APPLICATION_NAME } from "../../../scripts/dev-stack/pg-net-worker.ts";
import { connectAsAdmin } from "./support/db.ts";
import {
  assertNoOtherWorker,
  installedPgNet,
  REAL_WORKER_BACKEND_TYPE,
  responseQueries,
  setWorkerSettings,
  spawnWorkerCli,
  TestServer,
  testPath,
  testWorkers,
  type TestWorker,
  until,
  withDeadline,
} from "./support/pg-net.ts";

const pgNet = await installedPgNet();
// These suites test a platform extension (or its stand-in), so they act as the platform does
// (supabase_admin): triggers on pg_net's tables, its settings, terminating its worker, crashing the server.
const sql = connectAsAdmin();
const server = new TestServer();
const { responseRow, waitForResponse, responseCount, queued } = responseQueries(sql);
const clis: ReturnType<typeof spawnWorkerCli>[] = [];
let workerLog: string[] = [];
const problems: unknown[] = [];
const onProblem = (err: unknown) => problems.push(err);
const workers = testWorkers(pgNet === "real" ? "real" : "lookalike", sql, (msg) => workerLog.push(msg));

function startWorker(): Promise<TestWorker> {
  return workers.start();
}

/** Answers a held request. */
function answer(res: http.ServerResponse, body = "ok") {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(body);
}

/** Holds each request on `path` until `release()` or until `fallbackMs` (so a wrong order cannot hang the test). */
function holdRoute(path: string, fallbackMs = 3_000) {
  const held: http.ServerResponse[] = [];
  server.route(path, (_req, res) => {
    held.push(res);
    setTimeout(() => !res.writableEnded && answer(res, "released by timer"), fallbackMs);
  });
  return {
    held,
    release() {
      for (const res of held.splice(0)) if (!res.writableEnded) answer(res);
    },
  };
}

/** Kills a backend with SIGKILL: the postmaster resets every session and runs crash recovery. */
async function crashPostgres() {
  const checkpointer = async () =>
    (await sql<{ pid: number }[]>`select pid from pg_stat_activity where backend_type = 'checkpointer'`)[0]?.pid;
  const before = await checkpointer();
  await sql`
    do $$ begin
      execute format('copy (select 1) to program %L', 'kill -KILL ' || pg_backend_pid());
    end $$`.catch(() => {});
  // Crash recovery starts every auxiliary process again.
  await until("postgres to be back after crash recovery", async () => {
    const pid = await checkpointer();
    return pid !== undefined && pid !== before;
  }, 30_000);
}

describe(`pg_net 0.20.4's worker (${pgNet === "real" ? "the real extension" : "the look-alike"}) at run time`, () => {
  beforeAll(async () => {
    if (pgNet === "missing") throw new Error("the pg_net extension is not installed in the test database");
    await assertNoOtherWorker(sql);
    await server.start();
    process.on("uncaughtException", onProblem);
    process.on("unhandledRejection", onProblem);
  });

  afterEach(async (context) => {
    await workers.stopAll();
    for (const { child } of clis.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    if (context.task.result?.state === "fail" && workerLog.length > 0)
      console.error(`worker log of "${context.task.name}":\n  ${workerLog.join("\n  ")}`);
    workerLog = [];
    // A crash inside the worker (or its database driver) must fail the test that caused it.
    expect(problems).toEqual([]);
  });

  afterAll(async () => {
    process.off("uncaughtException", onProblem);
    process.off("unhandledRejection", onProblem);
    await server.close();
    await sql.end({ timeout: 1 });
  });

  it("one batch at a time: a slow request holds back a request queued behind it", async () => {
    const base = testPath();
    const slow = holdRoute(`${base}/slow`);
    await startWorker();

    const [{ id: slowId }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/slow`)}) as id`;
    await until("the slow request to arrive", async () => slow.held.length === 1);
    const [{ id: fastId }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/fast`)}) as id`;
    await waitForResponse(fastId);

    // The fast request was sent only once the slow one was answered (here by the hold's timer).
    expect(server.eventsOf(base)).toEqual(["in /slow", "out /slow", "in /fast", "out /fast"]);
    expect(await responseRow(slowId)).toMatchObject({ content: "released by timer" });
  });

  it("a batch holds at most pg_net.batch_size requests; the rest go in the next batch", async () => {
    const base = testPath();
    const hold = holdRoute(`${base}/r`, 1_500);
    const restore = await setWorkerSettings(sql, { batch_size: "2" });
    try {
      await startWorker();
      const ids = await sql.begin(async (tx) =>
        (await tx<{ id: string }[]>`select net.http_get(${server.url(`${base}/r`)}) as id from generate_series(1, 3)`).map((r) => r.id),
      );
      await Promise.all(ids.map((id) => waitForResponse(id)));

      // Two went out together and were answered; only then did the third go out.
      expect(server.eventsOf(base)).toEqual(["in /r", "in /r", "out /r", "out /r", "in /r", "out /r"]);
    } finally {
      await restore();
      hold.release();
    }
  });

  it("pauses about a second after a busy batch before taking the next one", async () => {
    const base = testPath();
    const arrivals: number[] = [];
    server.route(`${base}/tick`, (_req, res) => {
      arrivals.push(performance.now());
      answer(res);
    });
    const restore = await setWorkerSettings(sql, { batch_size: "1" });
    try {
      const worker = await startWorker();
      // From idle: a wake that arrives during a batch cuts the pause short (pg_net's latch), so the
      // requests must not be queued while the start-up round runs.
      await withDeadline("the worker's first round to end", worker.whenIdle(), 30_000);
      const ids = await sql.begin(async (tx) =>
        (await tx<{ id: string }[]>`select net.http_get(${server.url(`${base}/tick`)}) as id from generate_series(1, 2)`).map((r) => r.id),
      );
      await Promise.all(ids.map((id) => waitForResponse(id)));
    } finally {
      await restore();
    }

    // A lower bound only: a loaded machine can make the gap longer, never shorter.
    expect(arrivals).toHaveLength(2);
    expect(arrivals[1] - arrivals[0]).toBeGreaterThanOrEqual(900);
  });

  it("deletes expired responses only when a request wakes the worker (pg_net.ttl)", async () => {
    const restore = await setWorkerSettings(sql, { ttl: "1 hour" });
    try {
      const worker = await startWorker();
      // A round ends after a batch that found nothing (each batch deletes expired rows first).
      await withDeadline("the worker's first round to end", worker.whenIdle(), 30_000);
      const [{ id: oldId }] = await sql<{ id: string }[]>`select nextval('net.http_request_queue_id_seq')::text as id`;
      await sql`insert into net._http_response (id, status_code, content, timed_out, created)
                values (${oldId}::bigint, 200, 'old', false, now() - interval '2 hours')`;

      // Idle, nothing wakes the worker: the old response stays (a poll would have deleted it by now).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await responseRow(oldId)).toMatchObject({ content: "old" });

      const [{ id }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${testPath()}/wake`)}) as id`;
      await waitForResponse(id);
      await until("the expired response to be deleted", async () => (await responseRow(oldId)) === undefined);
    } finally {
      await restore();
    }
  });

  it("sends a POST again when the server drops the reused connection it arrived on (libcurl's retry)", async () => {
    const base = testPath();
    const sockets = new Set<unknown>();
    server.route(`${base}/create`, (req, res) => {
      // The first request on a connection is answered (keep-alive); a later one on the same
      // connection is received and then the connection is dropped without an answer.
      if (sockets.has(req.socket)) return req.socket.destroy();
      sockets.add(req.socket);
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end('{"code": 200}');
    });
    await startWorker();

    const [{ id: first }] = await sql<{ id: string }[]>`
      select net.http_post(${server.url(`${base}/create`)}, '{"task": 1}'::jsonb) as id`;
    await waitForResponse(first);
    const [{ id: second }] = await sql<{ id: string }[]>`
      select net.http_post(${server.url(`${base}/create`)}, '{"task": 2}'::jsonb) as id`;
    const row = await waitForResponse(second);

    expect(server.hits(`${base}/create`).map((r) => JSON.parse(r.body).task)).toEqual([1, 2, 2]);
    expect(row).toMatchObject({ status_code: 200, error_msg: null });
    expect(await responseCount(second)).toBe(1);
  });

  it("a worker error rolls the batch back into the queue and sends it again (at-least-once)", async () => {
    const base = testPath();
    const failures = `pg_net_test_failures_${Math.random().toString(36).slice(2, 8)}`;
    // An insert that fails once, as any error while storing a batch would (a sequence, because
    // the failed transaction rolls everything else back).
    await sql.unsafe(`
      create sequence public.${failures};
      create function public.${failures}_trigger() returns trigger language plpgsql as $$
      begin
        if nextval('public.${failures}') = 1 then
          raise exception 'storing failed once';
        end if;
        return new;
      end $$;
      create trigger fail_once before insert on net._http_response
        for each row execute function public.${failures}_trigger();`);
    try {
      await startWorker();
      const [{ id }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/twice`)}) as id`;
      const row = await waitForResponse(id);

      expect(row).toMatchObject({ status_code: 200, content: "ok" });
      expect(server.hits(`${base}/twice`)).toHaveLength(2);
      expect(await responseCount(id)).toBe(1);
    } finally {
      await sql.unsafe(`drop trigger if exists fail_once on net._http_response;
                        drop function if exists public.${failures}_trigger(); drop sequence if exists public.${failures};`);
    }
  });

  it("a SIGTERM while requests are in flight: the worker finishes the batch, each request sent once and stored once", async () => {
    const base = testPath();
    const hold = holdRoute(`${base}/r`);
    const worker = await startWorker();
    const ids = await sql.begin(async (tx) =>
      (await tx<{ id: string }[]>`select net.http_post(${server.url(`${base}/r`)}, '{}'::jsonb) as id from generate_series(1, 3)`).map(
        (r) => r.id,
      ),
    );
    await until("the requests to arrive", async () => hold.held.length === 3);
    const stopping = worker.terminate();
    hold.release();
    await withDeadline("the worker to finish its batch and exit", stopping, 30_000);

    expect(server.hits(base)).toHaveLength(3);
    for (const id of ids) expect(await responseCount(id)).toBe(1);
    expect(await queued(ids)).toBe(0);
  });

  it("the database ending the worker's session mid-batch (a restart): each request sent once, stored once, no crash", async () => {
    const base = testPath();
    const hold = holdRoute(`${base}/r`, 10_000);
    await startWorker();
    const ids = await sql.begin(async (tx) =>
      (await tx<{ id: string }[]>`select net.http_post(${server.url(`${base}/r`)}, '{}'::jsonb) as id from generate_series(1, 3)`).map(
        (r) => r.id,
      ),
    );
    await until("the requests to arrive", async () => hold.held.length === 3);
    // What a fast shutdown does to the worker's session: a client session of the look-alike's
    // worker is ended at once; the real worker finishes its batch first.
    await sql`
      select pg_terminate_backend(pid) from pg_stat_activity
       where application_name = ${PG_NET_WORKER_APPLICATION_NAME} or backend_type like ${REAL_WORKER_BACKEND_TYPE}`;
    hold.release();
    await Promise.all(ids.map((id) => waitForResponse(id)));
    // A later request shows the worker is still running, and gives a re-send time to happen.
    await waitForResponse((await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/after`)}) as id`)[0].id);

    expect(server.hits(`${base}/r`)).toHaveLength(3);
    for (const id of ids) expect(await responseCount(id)).toBe(1);
    expect(await queued(ids)).toBe(0);
  });

  it("a crash wipes the queue and the responses, ends the request in flight, and ids start again at 1; an old response never lands on a reused id", async () => {
    const base = testPath();
    const hold = holdRoute(`${base}/before-crash`, 15_000);
    await startWorker();
    // Start from id 1, so the request made after the crash gets the id of the one in flight.
    await sql`select setval('net.http_request_queue_id_seq', 1, false)`;
    // A timeout longer than the test waits for its connection to close: only the crash can close it.
    const [{ id: inFlight }] = await sql<{ id: string }[]>`
      select net.http_get(${server.url(`${base}/before-crash`)}, timeout_milliseconds => 20000) as id`;
    await until("the first request to arrive", async () => hold.held.length === 1);
    // Queued behind the batch in flight.
    const [{ id: waiting }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/waiting`)}) as id`;
    await sql`insert into net._http_response (id, status_code, content, timed_out) values (-1, 200, 'older', false)`;

    await crashPostgres();
    const [{ n: left }] = await sql<{ n: number }[]>`
      select (select count(*) from net.http_request_queue)::int + (select count(*) from net._http_response)::int as n`;
    expect(left).toBe(0);
    const [{ id: after }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/after-crash`)}) as id`;
    expect([inFlight, after]).toEqual(["1", "1"]);

    // The worker died with the server (the look-alike's abandons its transfers once the database
    // is back): the server never gets to answer the request that was in flight.
    await until(
      "the connection of the request in flight to close",
      async () => server.hits(`${base}/before-crash`)[0].socket.destroyed,
      10_000,
    );
    hold.release();
    const row = await waitForResponse(after);
    expect(row).toMatchObject({ content: "ok" });
    expect(await responseCount(after)).toBe(1);
    expect(server.eventsOf(base)).toEqual(["in /before-crash", "in /after-crash", "out /after-crash"]);
    // The request queued behind the one in flight was lost with the queue: never sent.
    expect(waiting).toBe("2");
    expect(server.hits(`${base}/waiting`)).toHaveLength(0);
  });

  // Killing the look-alike's Node process: killing the real worker (a server process) is a crash
  // of the server, tested above.
  it.skipIf(pgNet === "real")("a worker killed mid-request leaves the request queued, and the next worker sends it (at-least-once)", async () => {
    const base = testPath();
    let calls = 0;
    let firstArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (firstArrived = resolve));
    server.route(`${base}/charge`, (_req, res) => {
      calls++;
      if (calls === 1) return firstArrived(); // held: the worker is killed before it gets an answer
      answer(res, "charged");
    });

    const cli = spawnWorkerCli([]);
    clis.push(cli);
    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_post(${server.url(`${base}/charge`)}, '{"amount": 5}'::jsonb, timeout_milliseconds => 20000) as id
    `;
    await withDeadline("the CLI worker to send the request", arrived, 20_000);
    cli.child.kill("SIGKILL");
    await withDeadline("the CLI worker to exit", cli.exited);

    // Its claim rolled back with its session: the request is queued again, with no response.
    await until("the request to be back in the queue", async () => (await queued([id])) === 1);
    expect(await responseRow(id)).toBeUndefined();

    await startWorker();
    const row = await waitForResponse(id);
    expect(row).toMatchObject({ status_code: 200, content: "charged", timed_out: false, error_msg: null });
    expect(calls).toBe(2);
    expect(await responseCount(id)).toBe(1);
  });
});
