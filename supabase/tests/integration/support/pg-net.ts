// Shared by the pg_net worker suites: which pg_net is installed, its worker started and stopped
// whichever it is, its settings, a recording HTTP server and polling helpers.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { PG_NET_WORKER_APPLICATION_NAME, startPgNetWorker, type PgNetWorker } from "../../../../scripts/dev-stack/pg-net-worker.ts";
import { adminDatabaseUrl, connect, connectAsAdmin } from "./db.ts";

const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL("../../../../scripts/dev-stack/pg-net-worker.ts", import.meta.url));

/** Which pg_net is installed: the look-alike's URL helpers are PL/pgSQL, the real ones are C. */
export async function installedPgNet(): Promise<"missing" | "real" | "lookalike"> {
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

/** The real extension's background worker shows in pg_stat_activity as `pg_net <version> worker`. */
export const REAL_WORKER_BACKEND_TYPE = "pg_net % worker";

export async function realWorkerPids(): Promise<number[]> {
  const admin = connectAsAdmin({ max: 1 });
  try {
    const rows = await admin<{ pid: number }[]>`
      select pid from pg_stat_activity where backend_type like ${REAL_WORKER_BACKEND_TYPE}`;
    return rows.map((r) => r.pid);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** True when the worker sleeps on its latch outside a transaction (pg_stat_activity as it last reported). */
async function realWorkerAsleep(pid: number): Promise<boolean> {
  const admin = connectAsAdmin({ max: 1 });
  try {
    const rows = await admin<{ asleep: boolean }[]>`
      select xact_start is null and wait_event_type = 'Extension' as asleep from pg_stat_activity where pid = ${pid}`;
    return rows[0]?.asleep ?? true;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/**
 * Signals the real extension's background worker. After an error, a terminate or a crash the
 * postmaster starts a new one about a second later: wait for it rather than miss it. A worker is
 * frozen asleep on its latch when it gets there within two seconds, not in the middle of a batch
 * holding its transaction and locks (or, for a few instructions, a spinlock other backends need).
 */
export async function signalRealWorker(signal: "SIGSTOP" | "SIGCONT"): Promise<void> {
  if (signal === "SIGSTOP") {
    const until = Date.now() + 2_000;
    for (const pid of await realWorkerPids()) {
      for (;;) {
        try {
          process.kill(pid, "SIGSTOP");
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
          break; // exited meanwhile: the loop below finds its successor
        }
        if (Date.now() > until || (await realWorkerAsleep(pid))) break;
        process.kill(pid, "SIGCONT");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
  // Every worker gets the signal (again, for a frozen one: harmless), and a worker the postmaster
  // is about to start is waited for.
  const deadline = Date.now() + 30_000;
  for (;;) {
    let signalled = 0;
    for (const pid of await realWorkerPids()) {
      try {
        process.kill(pid, signal);
        signalled++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err; // exited meanwhile
      }
    }
    if (signalled > 0) return;
    if (Date.now() > deadline) throw new Error("the real pg_net is installed but its background worker is not running");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** pg_net's worker as the worker suites drive it, whichever pg_net is installed. */
export interface TestWorker {
  /** It sends nothing more until the next start: the look-alike's stops, the real one is frozen (SIGSTOP). */
  stop(): Promise<void>;
  /**
   * What pg_net's worker does on SIGTERM (a fast shutdown, pg_terminate_backend): it finishes and
   * stores the batch in flight, then exits; resolves once it has. The look-alike's CLI does the
   * same on SIGTERM (stop()); the real worker is started again by the postmaster a second later.
   */
  terminate(): Promise<void>;
  /** Resolves once the worker has ended its round and sleeps until the next wake. */
  whenIdle(): Promise<void>;
}

/**
 * Starts and stops pg_net's worker for the worker suites. The look-alike: a Node worker per
 * start(). The real extension: its background worker always exists (the postmaster restarts it),
 * so start() thaws it (SIGCONT) and stop() freezes it (SIGSTOP), as support/net-worker.ts does.
 */
export function testWorkers(kind: "real" | "lookalike", sql: ReturnType<typeof connect>, log: (msg: string) => void) {
  let started: PgNetWorker[] = [];

  /**
   * The real worker is idle when it has held no transaction (each batch is one) for longer than
   * the pause that follows a batch: the round is over, it sleeps until woken.
   */
  async function realWorkerIdle(): Promise<void> {
    const quietMs = 2_000;
    let quietSince = performance.now();
    await until(
      "the pg_net worker to be idle",
      async () => {
        const [{ busy }] = await sql<{ busy: boolean }[]>`
          select exists (
            select from pg_stat_activity where backend_type like ${REAL_WORKER_BACKEND_TYPE} and xact_start is not null
          ) or not exists (select from pg_stat_activity where backend_type like ${REAL_WORKER_BACKEND_TYPE}) as busy`;
        if (busy) quietSince = performance.now();
        return performance.now() - quietSince > quietMs;
      },
      30_000,
    );
  }

  async function terminateReal(): Promise<void> {
    const pids = await realWorkerPids();
    await sql`select pg_terminate_backend(pid) from unnest(${pids}::int[]) as pid`;
    await until(
      "the pg_net worker to finish its batch and exit",
      async () => (await sql`select from pg_stat_activity where pid = any(${pids}::int[])`).length === 0,
      30_000,
    );
  }

  return {
    async start(): Promise<TestWorker> {
      if (kind === "real") {
        await signalRealWorker("SIGCONT");
        return { stop: () => signalRealWorker("SIGSTOP"), terminate: terminateReal, whenIdle: realWorkerIdle };
      }
      const worker = await startPgNetWorker({ databaseUrl: adminDatabaseUrl(), log });
      started.push(worker);
      return { stop: () => worker.stop(), terminate: () => worker.stop(), whenIdle: () => worker.whenIdle() };
    },
    /** After each test: no worker sends anything until the next start(). */
    async stopAll(): Promise<void> {
      if (kind === "real") return signalRealWorker("SIGSTOP");
      await Promise.all(started.map((w) => w.stop()));
      started = [];
    },
  };
}

/**
 * Sets pg_net's worker settings as the real extension reads them (PGC_SIGHUP GUCs: ALTER SYSTEM
 * and a reload), which is also where the look-alike's worker reads them; returns the undo. The
 * settings are in effect once a session of this pool sees them (the postmaster reloads first,
 * then signals every backend, the worker included).
 */
export async function setWorkerSettings(
  sql: ReturnType<typeof connect>,
  settings: Partial<Record<"batch_size" | "ttl", string>>,
): Promise<() => Promise<void>> {
  const names = Object.keys(settings);
  const current = async (name: string) =>
    (await sql<{ value: string | null }[]>`select current_setting(${`pg_net.${name}`}, true) as value`)[0].value;
  /** ALTER SYSTEM each setting (null: RESET) on one connection, then reload. */
  const alterSystem = async (values: [string, string | null][]) => {
    const session = await sql.reserve();
    try {
      for (const [name, value] of values) {
        // ALTER SYSTEM refuses a parameter the session does not know: the real extension defines
        // its GUCs, the look-alike cannot, so it gets a placeholder (set, then reset at once).
        const [{ known }] = await session<{ known: boolean }[]>`
          select current_setting(${`pg_net.${name}`}, true) is not null as known`;
        if (!known) await session.unsafe(`select set_config('pg_net.${name}', '', false); reset pg_net.${name}`);
        if (value === null) await session.unsafe(`alter system reset pg_net.${name}`);
        else await session.unsafe(`alter system set pg_net.${name} = '${value.replace(/'/g, "''")}'`);
      }
      await session`select pg_reload_conf()`;
    } finally {
      session.release();
    }
  };
  await alterSystem(Object.entries(settings) as [string, string][]);
  await until("the pg_net settings to be reloaded", async () => {
    for (const [name, value] of Object.entries(settings)) if ((await current(name)) !== value) return false;
    return true;
  });
  return async () => {
    await alterSystem(names.map((name) => [name, null]));
    await until("the pg_net settings to be reset", async () => {
      for (const name of names) if ((await current(name)) === settings[name as keyof typeof settings]) return false;
      return true;
    });
  };
}

/** These suites start and stop workers themselves: no other look-alike worker may be connected. */
export async function assertNoOtherWorker(sql: ReturnType<typeof connect>): Promise<void> {
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity where application_name = ${PG_NET_WORKER_APPLICATION_NAME}
  `;
  if (n > 0)
    throw new Error(
      `${n} session(s) of another pg_net look-alike worker are connected: these tests start and stop ` +
        "their own worker and need the queue to themselves; stop the other worker first",
    );
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  /** The server-side socket, to tell connections apart. */
  socket: Socket;
}
export type Handler = (req: SeenRequest, res: http.ServerResponse) => void;

/** A local HTTP server that records every request (and its connection) and answers per route. */
export class TestServer {
  readonly seen: SeenRequest[] = [];
  /** What happened, in order: `in <path>` when a request arrives, `out <path>` when answered. */
  readonly events: string[] = [];
  private readonly routes = new Map<string, Handler>();
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const seen = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString("utf8"),
        socket: req.socket,
      };
      const path = new URL(seen.url, "http://x").pathname;
      this.seen.push(seen);
      this.events.push(`in ${path}`);
      res.on("finish", () => this.events.push(`out ${path}`));
      const handler = this.routes.get(path);
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

  /** The events of paths starting with `prefix`, with the prefix cut off. */
  eventsOf(prefix: string): string[] {
    return this.events.filter((e) => e.slice(e.indexOf(" ") + 1).startsWith(prefix)).map((e) => e.replace(prefix, ""));
  }
}

export interface ResponseRow {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean | null;
  error_msg: string | null;
}

/** Polls `check` until it returns a truthy value; fails after `timeoutMs`. */
export async function until<T>(label: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export async function withDeadline<T>(label: string, promise: Promise<T>, timeoutMs = 10_000): Promise<T> {
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
export async function closedPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A path prefix only the current test uses. */
export function testPath(): string {
  return `/t/${randomUUID()}`;
}

export function responseQueries(sql: ReturnType<typeof connect>) {
  async function responseRow(id: string): Promise<ResponseRow | undefined> {
    const rows = await sql<ResponseRow[]>`
      select id::text, status_code, content_type, headers, content, timed_out, error_msg
      from net._http_response where id = ${id}::bigint
    `;
    return rows[0];
  }
  return {
    responseRow,
    waitForResponse: (id: string, timeoutMs = 10_000) => until(`the response of request ${id}`, () => responseRow(id), timeoutMs),
    async responseCount(id: string): Promise<number> {
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from net._http_response where id = ${id}::bigint`;
      return n;
    },
    async queued(ids: string[]): Promise<number> {
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from net.http_request_queue where id = any(${ids}::bigint[])
      `;
      return n;
    },
  };
}

/** Runs the worker's CLI the way the local stack does (tsx, own process group). */
export function spawnWorkerCli(args: string[], env: NodeJS.ProcessEnv = { DATABASE_URL: adminDatabaseUrl() }) {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", WORKER_SCRIPT, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, DATABASE_URL: undefined, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}
