// Shared by the pg_net look-alike suites: a recording HTTP server, polling helpers, and the
// checks that the look-alike (not the real extension) is installed and nobody else drains it.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { PG_NET_WORKER_APPLICATION_NAME } from "../../../../scripts/dev-stack/pg-net-worker.ts";
import { adminDatabaseUrl, connect } from "./db.ts";

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
