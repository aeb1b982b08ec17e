// The pg_net look-alike (sql/pg_net_lookalike) and its worker (scripts/dev-stack/pg-net-worker.ts),
// against the prepared database and a real HTTP server on 127.0.0.1.
//
// These tests start and stop workers themselves and need to own the queue: no other look-alike
// worker may be connected to the database while they run. With the real pg_net installed (a C
// extension with its own background worker) the suite is skipped: there is no look-alike to test.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  PG_NET_WORKER_APPLICATION_NAME,
  startPgNetWorker,
  type PgNetWorker,
  type PgNetWorkerOptions,
} from "../../../scripts/dev-stack/pg-net-worker.ts";
import { connect, databaseUrl } from "./support/db.ts";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL("../../../scripts/dev-stack/pg-net-worker.ts", import.meta.url));

// ------------------------------------------------------------------------------------------------
// Which pg_net is installed: the look-alike's URL helpers are PL/pgSQL, the real ones are C.
// ------------------------------------------------------------------------------------------------
async function installedPgNet(): Promise<"missing" | "real" | "lookalike"> {
  const probe = connect({ max: 1 });
  try {
    const rows = await probe<{ language: string }[]>`
      select l.lanname as language
      from pg_proc p join pg_language l on l.oid = p.prolang
      where p.oid = to_regprocedure('net._urlencode_string(character varying)')
    `;
    if (rows.length === 0) return "missing";
    return rows[0].language === "c" ? "real" : "lookalike";
  } finally {
    await probe.end();
  }
}
const pgNet = await installedPgNet();

// ------------------------------------------------------------------------------------------------
// A local HTTP server that records every request and answers per route.
// ------------------------------------------------------------------------------------------------
interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
type Handler = (req: SeenRequest, res: http.ServerResponse) => void;

class TestServer {
  readonly seen: SeenRequest[] = [];
  private readonly routes = new Map<string, Handler>();
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const seen = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      this.seen.push(seen);
      const handler = this.routes.get(new URL(seen.url, "http://x").pathname);
      if (handler) return handler(seen, res);
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok");
    });
  });

  async start() {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  url(path: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  route(path: string, handler: Handler) {
    this.routes.set(path, handler);
  }

  /** Requests whose path starts with `prefix`. */
  hits(prefix: string): SeenRequest[] {
    return this.seen.filter((r) => r.url.startsWith(prefix));
  }
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------
interface ResponseRow {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean | null;
  error_msg: string | null;
}

/** Polls `check` until it returns a truthy value; fails after `timeoutMs`. */
async function until<T>(label: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function withDeadline<T>(label: string, promise: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port nothing listens on: bound by the OS, then released. */
async function closedPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function spawnWorkerCli(args: string[], env: NodeJS.ProcessEnv = { DATABASE_URL: databaseUrl() }) {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER_SCRIPT, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: undefined, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

// ------------------------------------------------------------------------------------------------
// Suite
// ------------------------------------------------------------------------------------------------
const sql = connect();
const server = new TestServer();
const children = new Set<ChildProcess>();
let worker: PgNetWorker | undefined;
let workerLog: string[] = [];

async function startWorker(options: Partial<PgNetWorkerOptions> = {}): Promise<PgNetWorker> {
  worker = await startPgNetWorker({
    databaseUrl: databaseUrl(),
    pollIntervalMs: 200,
    log: (msg) => workerLog.push(msg),
    ...options,
  });
  return worker;
}

async function responseRow(id: string): Promise<ResponseRow | undefined> {
  const rows = await sql<ResponseRow[]>`
    select id::text, status_code, content_type, headers, content, timed_out, error_msg
    from net._http_response where id = ${id}::bigint
  `;
  return rows[0];
}

function waitForResponse(id: string, timeoutMs = 10_000): Promise<ResponseRow> {
  return until(`the response of request ${id}`, () => responseRow(id), timeoutMs);
}

async function queued(ids: string[]): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from net.http_request_queue where id = any(${ids}::bigint[])
  `;
  return n;
}

/** A path prefix only the current test uses. */
function testPath(): string {
  return `/t/${randomUUID()}`;
}

describe.skipIf(pgNet === "real")("pg_net look-alike and its worker", () => {
  beforeAll(async () => {
    if (pgNet === "missing")
      throw new Error("the pg_net extension is not installed in the test database (the migrations create it)");
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where application_name = ${PG_NET_WORKER_APPLICATION_NAME}
    `;
    if (n > 0)
      throw new Error(
        `${n} session(s) of another pg_net look-alike worker are connected: these tests start and stop ` +
          "their own worker and need the queue to themselves; stop the other worker first",
      );
    await server.start();
  });

  afterEach(async (context) => {
    await worker?.stop();
    worker = undefined;
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    children.clear();
    if (context.task.result?.state === "fail" && workerLog.length > 0)
      console.error(`worker log of "${context.task.name}":\n  ${workerLog.join("\n  ")}`);
    workerLog = [];
  });

  afterAll(async () => {
    await server.close();
    await sql.end();
  });

  it("installs as pg_net 0.20.0 with pg_net's public SQL API, tables and grants to PUBLIC", async () => {
    const [ext] = await sql`select extversion, extrelocatable from pg_extension where extname = 'pg_net'`;
    expect(ext).toEqual({ extversion: "0.20.0", extrelocatable: false });

    const functions = await sql<{ name: string; args: string; result: string }[]>`
      select p.proname as name, pg_get_function_arguments(p.oid) as args, pg_get_function_result(p.oid) as result
      from pg_proc p where p.pronamespace = 'net'::regnamespace order by 1
    `;
    expect(functions).toEqual([
      { name: "_await_response", args: "request_id bigint", result: "boolean" },
      { name: "_encode_url_with_params_array", args: "url text, params_array text[]", result: "text" },
      { name: "_http_collect_response", args: "request_id bigint, async boolean DEFAULT true", result: "net.http_response_result" },
      { name: "_urlencode_string", args: "string character varying", result: "text" },
      { name: "check_worker_is_up", args: "", result: "void" },
      { name: "http_collect_response", args: "request_id bigint, async boolean DEFAULT true", result: "net.http_response_result" },
      {
        name: "http_delete",
        args: "url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, timeout_milliseconds integer DEFAULT 5000, body jsonb DEFAULT NULL::jsonb",
        result: "bigint",
      },
      {
        name: "http_get",
        args: "url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, timeout_milliseconds integer DEFAULT 5000",
        result: "bigint",
      },
      {
        name: "http_post",
        args: `url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb, timeout_milliseconds integer DEFAULT 5000`,
        result: "bigint",
      },
      { name: "wait_until_running", args: "", result: "void" },
      { name: "wake", args: "", result: "void" },
      { name: "worker_restart", args: "", result: "boolean" },
    ]);

    const columns = await sql`
      select table_name, column_name, coalesce(domain_name, data_type) as type, is_nullable
      from information_schema.columns
      where table_schema = 'net' and table_name in ('http_request_queue', '_http_response')
      order by table_name, ordinal_position
    `;
    expect(columns.map((c) => `${c.table_name}.${c.column_name} ${c.type} ${c.is_nullable}`)).toEqual([
      "_http_response.id bigint YES",
      "_http_response.status_code integer YES",
      "_http_response.content_type text YES",
      "_http_response.headers jsonb YES",
      "_http_response.content text YES",
      "_http_response.timed_out boolean YES",
      "_http_response.error_msg text YES",
      "_http_response.created timestamp with time zone NO",
      "http_request_queue.id bigint NO",
      "http_request_queue.method http_method NO",
      "http_request_queue.url text NO",
      "http_request_queue.headers jsonb YES",
      "http_request_queue.body bytea YES",
      "http_request_queue.timeout_milliseconds integer NO",
    ]);

    const [grants] = await sql`
      select
        has_schema_privilege('public', 'net', 'usage') as schema_usage,
        has_table_privilege('public', 'net.http_request_queue', 'insert') as queue_insert,
        has_table_privilege('public', 'net._http_response', 'select') as response_select,
        has_sequence_privilege('public', 'net.http_request_queue_id_seq', 'usage') as sequence_usage
    `;
    // Function EXECUTE is left to Postgres' defaults, as pg_net does: the project's default
    // privileges decide it, so it is not checked here.
    expect(grants).toEqual({
      schema_usage: true,
      queue_insert: true,
      response_select: true,
      sequence_usage: true,
    });
  });

  it("enqueues like pg_net: url-encoded params, JSON body and Content-Type rules, URL validation", async () => {
    class Rollback extends Error {}
    await sql
      .begin(async (tx) => {
        // The request functions return the id of the row they queued (a second statement sees it).
        const queuedRow = async (id: string) =>
          (
            await tx`
              select method, url, headers, convert_from(body, 'UTF8') as body, timeout_milliseconds
              from net.http_request_queue where id = ${id}::bigint
            `
          )[0];

        const [get] = await tx<{ id: string }[]>`
          select net.http_get(
            'http://example.test/search?fixed=1#top',
            params => '{"q": "a cat & dog", "lang": "fr-CA", "emoji": "é"}'
          ) as id
        `;
        expect(await queuedRow(get.id)).toEqual({
          method: "GET",
          url: "http://example.test/search?fixed=1&q=a%20cat%20%26%20dog&lang=fr-CA&emoji=%C3%A9#top",
          headers: {},
          body: null,
          timeout_milliseconds: 5000,
        });

        const [bare] = await tx<{ id: string }[]>`
          select net.http_get('http://example.test', params => '{"a": "1"}') as id
        `;
        expect((await queuedRow(bare.id)).url).toBe("http://example.test/?a=1");

        const [post] = await tx<{ id: string }[]>`
          select net.http_post('http://example.test/x', '{"b": [1, 2]}', headers => '{"X-A": "1"}', timeout_milliseconds => 900) as id
        `;
        expect(await queuedRow(post.id)).toEqual({
          method: "POST",
          url: "http://example.test/x",
          headers: { "X-A": "1", "Content-Type": "application/json" },
          body: '{"b": [1, 2]}',
          timeout_milliseconds: 900,
        });

        const [del] = await tx<{ id: string }[]>`select net.http_delete('http://example.test/x') as id`;
        expect(await queuedRow(del.id)).toMatchObject({ method: "DELETE", body: null });
        throw new Rollback();
      })
      .catch((err) => {
        if (!(err instanceof Rollback)) throw err;
      });

    await expect(
      sql`select net.http_post('http://example.test/x', headers => '{"content-type": "text/plain"}')`,
    ).rejects.toThrow('Content-Type header must be "application/json"');
    await expect(sql`select net.http_get('not a url')`).rejects.toThrow("URL using bad/illegal format or missing URL");
  });

  it("POST: sends method, headers and the JSON body; stores status, content type, headers and content", async () => {
    const base = testPath();
    server.route(`${base}/generate`, (req, res) => {
      res.writeHead(201, { "Content-Type": "application/json; charset=utf-8", "X-Kiln-Test": "yes" });
      res.end(JSON.stringify({ received: JSON.parse(req.body), taskId: "task-1" }));
    });
    await startWorker();

    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_post(
        url => ${server.url(`${base}/generate`)},
        body => ${sql.json({ prompt: "a cat", n: 2 })}::jsonb,
        headers => '{"Authorization": "Bearer kiln-test-token", "X-Request-Source": "kiln"}'::jsonb
      ) as id
    `;
    const row = await waitForResponse(id);

    const hits = server.hits(base);
    expect(hits).toHaveLength(1);
    expect(hits[0].method).toBe("POST");
    expect(hits[0].headers).toMatchObject({
      "content-type": "application/json",
      authorization: "Bearer kiln-test-token",
      "x-request-source": "kiln",
      "user-agent": "pg_net/0.20.0",
    });
    expect(JSON.parse(hits[0].body)).toEqual({ prompt: "a cat", n: 2 });

    expect(row).toMatchObject({
      id,
      status_code: 201,
      content_type: "application/json; charset=utf-8",
      timed_out: false,
      error_msg: null,
    });
    expect(row.headers).toMatchObject({ "x-kiln-test": "yes", "content-type": "application/json; charset=utf-8" });
    expect(JSON.parse(row.content ?? "")).toEqual({ received: { prompt: "a cat", n: 2 }, taskId: "task-1" });
    expect(await queued([id])).toBe(0);

    const [collected] = await sql`
      select status::text as status, message, (response).status_code as status_code
      from net._http_collect_response(${id}::bigint)
    `;
    expect(collected).toEqual({ status: "SUCCESS", message: "ok", status_code: 201 });
  });

  it("GET: puts the url-encoded params in the query string and sends no body", async () => {
    const base = testPath();
    await startWorker();

    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_get(
        url => ${server.url(`${base}/search?fixed=1`)},
        params => '{"q": "a cat & dog", "emoji": "é"}'::jsonb,
        headers => '{"X-Trace": "abc"}'::jsonb
      ) as id
    `;
    const row = await waitForResponse(id);

    const hits = server.hits(base);
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({
      method: "GET",
      url: `${base}/search?fixed=1&q=a%20cat%20%26%20dog&emoji=%C3%A9`,
      body: "",
    });
    expect(hits[0].headers["x-trace"]).toBe("abc");
    const params = new URL(hits[0].url, "http://x").searchParams;
    expect(params.get("q")).toBe("a cat & dog");
    expect(params.get("emoji")).toBe("é");
    expect(row).toMatchObject({ status_code: 200, content_type: "text/plain", content: "ok", timed_out: false, error_msg: null });
  });

  it("DELETE: sends the optional body; an empty response body is stored as null content", async () => {
    const base = testPath();
    server.route(`${base}/task`, (_req, res) => {
      res.writeHead(204);
      res.end();
    });
    await startWorker();

    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_delete(${server.url(`${base}/task`)}, body => '{"id": 7}'::jsonb) as id
    `;
    const row = await waitForResponse(id);

    const hits = server.hits(base);
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ method: "DELETE", body: '{"id": 7}' });
    expect(row).toMatchObject({ status_code: 204, content: null, content_type: null, timed_out: false, error_msg: null });
    expect(row.headers).toMatchObject({ connection: expect.any(String), date: expect.any(String) });
  });

  it("sends a batch concurrently", async () => {
    const base = testPath();
    // Answers only once all three requests have arrived: sending them one after the other would
    // leave the first waiting until its timeout.
    const waiting: http.ServerResponse[] = [];
    server.route(`${base}/barrier`, (_req, res) => {
      waiting.push(res);
      if (waiting.length < 3) return;
      for (const r of waiting) {
        r.writeHead(200, { "Content-Type": "text/plain" });
        r.end(`released with ${waiting.length}`);
      }
    });
    const ids = await sql.begin(async (tx) => {
      const rows = await tx<{ id: string }[]>`
        select net.http_get(${server.url(`${base}/barrier`)}, timeout_milliseconds => 5000) as id
        from generate_series(1, 3)
      `;
      return rows.map((r) => r.id);
    });
    await startWorker();

    const rows = await Promise.all(ids.map((id) => waitForResponse(id)));
    for (const row of rows) expect(row).toMatchObject({ status_code: 200, content: "released with 3", timed_out: false });
  });

  it("a request slower than timeout_milliseconds is stored as timed out, without a status", async () => {
    const base = testPath();
    server.route(`${base}/slow`, () => {
      // never answers; the server closes the connection in afterAll
    });
    await startWorker();

    const started = Date.now();
    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_get(${server.url(`${base}/slow`)}, timeout_milliseconds => 300) as id
    `;
    const row = await waitForResponse(id);

    expect(server.hits(base)).toHaveLength(1);
    expect(row).toMatchObject({ status_code: null, content: null, headers: null, timed_out: true });
    expect(row.error_msg).toMatch(/^Timeout of 300 ms reached\. Total time: \d+\.\d+ ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a refused connection is stored with error_msg and no status", async () => {
    const port = await closedPort();
    await startWorker();

    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_post(${`http://127.0.0.1:${port}/nobody-home`}, '{"a": 1}'::jsonb) as id
    `;
    const row = await waitForResponse(id);

    expect(row).toMatchObject({
      status_code: null,
      content: null,
      headers: null,
      timed_out: false,
      error_msg: "Couldn't connect to server",
    });
    const [collected] = await sql`
      select status::text as status, message from net._http_collect_response(${id}::bigint)
    `;
    expect(collected).toEqual({ status: "ERROR", message: "Couldn't connect to server" });
  });

  it("sends nothing before commit, and never a request whose transaction rolled back", async () => {
    const base = testPath();
    await startWorker();
    const reserved = await sql.reserve();
    try {
      await reserved`begin`;
      const [{ id: rolledBackId }] = await reserved<{ id: string }[]>`
        select net.http_post(${server.url(`${base}/rolled-back`)}, '{"charge": 5}'::jsonb) as id
      `;

      // Committed requests made later are sent while that transaction is still open...
      const [{ id: firstMarker }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/marker-1`)}) as id`;
      await waitForResponse(firstMarker);
      expect(server.hits(`${base}/rolled-back`)).toHaveLength(0);

      // ...and after the rollback the request never existed.
      await reserved`rollback`;
      const [{ id: secondMarker }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/marker-2`)}) as id`;
      await waitForResponse(secondMarker);

      expect(server.hits(`${base}/rolled-back`)).toHaveLength(0);
      expect(await responseRow(rolledBackId)).toBeUndefined();
      expect(await queued([rolledBackId])).toBe(0);
      expect(server.hits(`${base}/marker-`)).toHaveLength(2);
    } finally {
      await reserved`rollback`.catch(() => {});
      reserved.release();
    }
  });

  it("requests committed while no worker runs are sent when a worker starts", async () => {
    const base = testPath();
    const first = await startWorker();
    await first.stop();
    worker = undefined;

    const [{ id: a }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/a`)}) as id`;
    const [{ id: b }] = await sql<{ id: string }[]>`select net.http_post(${server.url(`${base}/b`)}, '{"n": 2}'::jsonb) as id`;
    const [{ id: c }] = await sql<{ id: string }[]>`select net.http_delete(${server.url(`${base}/c`)}) as id`;
    expect(await queued([a, b, c])).toBe(3);
    expect(server.hits(base)).toHaveLength(0);

    await startWorker();
    const rows = await Promise.all([a, b, c].map((id) => waitForResponse(id)));

    for (const row of rows) expect(row).toMatchObject({ status_code: 200, content: "ok", error_msg: null });
    expect(server.hits(base).map((r) => `${r.method} ${r.url}`).sort()).toEqual([
      `DELETE ${base}/c`,
      `GET ${base}/a`,
      `POST ${base}/b`,
    ]);
    expect(await queued([a, b, c])).toBe(0);
  });

  it("wakes on commit through LISTEN/NOTIFY, without waiting for the poll", async () => {
    const base = testPath();
    await startWorker({ pollIntervalMs: 120_000 });
    // Busy = a worker session in a transaction or running a statement (its startup pass, or the
    // look at the queue that follows every batch). Once idle, only a NOTIFY can make it look again.
    const workerIdle = async () => {
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where application_name = ${PG_NET_WORKER_APPLICATION_NAME} and state <> 'idle'
      `;
      return n === 0;
    };

    for (const round of [1, 2, 3]) {
      await until("the worker to be idle", workerIdle);
      const [{ id }] = await sql<{ id: string }[]>`select net.http_get(${server.url(`${base}/ping-${round}`)}) as id`;
      const row = await waitForResponse(id, 5_000);
      expect(row.status_code).toBe(200);
    }
  });

  it("a worker killed mid-request leaves the request queued, and the next worker sends it (at-least-once)", async () => {
    const base = testPath();
    let calls = 0;
    let firstArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (firstArrived = resolve));
    server.route(`${base}/charge`, (_req, res) => {
      calls++;
      if (calls === 1) {
        firstArrived(); // held: the worker is killed before it gets an answer
        return;
      }
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("charged");
    });

    const cli = spawnWorkerCli(["--poll-interval-ms", "100"]);
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
    const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from net._http_response where id = ${id}::bigint`;
    expect(n).toBe(1);
  });

  it("deletes responses older than the TTL (default 6 hours, like pg_net.ttl) and keeps newer ones", async () => {
    const ids = await sql<{ id: string }[]>`
      select nextval('net.http_request_queue_id_seq')::text as id from generate_series(1, 3)
    `;
    const [sevenHours, fiveHours, tenMinutes] = ids.map((r) => r.id);
    await sql`
      insert into net._http_response (id, status_code, content, timed_out, created) values
        (${sevenHours}::bigint, 200, 'old', false, now() - interval '7 hours'),
        (${fiveHours}::bigint, 200, 'older than an hour', false, now() - interval '5 hours'),
        (${tenMinutes}::bigint, 200, 'recent', false, now() - interval '10 minutes')
    `;

    const defaults = await startWorker();
    await until("the 7 hour old response to be deleted", async () => (await responseRow(sevenHours)) === undefined);
    expect(await responseRow(fiveHours)).toBeDefined();
    await defaults.stop();
    worker = undefined;

    await startWorker({ responseTtl: "1 hour" });
    await until("the 5 hour old response to be deleted", async () => (await responseRow(fiveHours)) === undefined);
    expect(await responseRow(tenMinutes)).toMatchObject({ content: "recent" });
    await sql`delete from net._http_response where id = ${tenMinutes}::bigint`;
  });

  it("CLI: --help, exit code 2 on bad arguments, clean stop on SIGTERM", async () => {
    const help = spawnWorkerCli(["--help"]);
    expect(await withDeadline("--help", help.exited, 20_000)).toBe(0);
    expect(help.output().stdout).toContain("Usage: tsx scripts/dev-stack/pg-net-worker.ts");

    const badFlag = spawnWorkerCli(["--batch-size", "lots"]);
    expect(await withDeadline("a bad --batch-size", badFlag.exited, 20_000)).toBe(2);
    expect(badFlag.output().stderr).toContain("--batch-size must be a positive integer");

    const unknown = spawnWorkerCli(["--frobnicate"]);
    expect(await withDeadline("an unknown option", unknown.exited, 20_000)).toBe(2);

    const noDatabase = spawnWorkerCli([], {});
    expect(await withDeadline("a missing DATABASE_URL", noDatabase.exited, 20_000)).toBe(2);
    expect(noDatabase.output().stderr).toContain("DATABASE_URL");

    const noWorker = () => sql`select net.check_worker_is_up()`.then(() => false, () => true);
    await until("no worker session to be left from earlier tests", noWorker);
    await expect(sql`select net.check_worker_is_up()`).rejects.toThrow("the pg_net background worker is not up");
    const running = spawnWorkerCli(["--poll-interval-ms", "100"]);
    await until("the CLI worker to start", async () => running.output().stderr.includes("started"), 20_000);
    await sql`select net.check_worker_is_up()`;
    running.child.kill("SIGTERM");
    expect(await withDeadline("the CLI worker to stop", running.exited)).toBe(0);
    expect(running.output().stderr).toContain("stopped");
    await until("the worker's sessions to end", noWorker);
  });
});
