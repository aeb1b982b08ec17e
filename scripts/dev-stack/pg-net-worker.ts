/**
 * The worker of the pg_net look-alike (sql/pg_net_lookalike): development and tests only.
 *
 * Hosted Supabase runs pg_net's background worker inside Postgres. Locally, without the real
 * extension, this process plays that part the way pg_net 0.20.4's worker does (src/worker.c,
 * src/core.c), so that code written against the local stack meets the real behaviour:
 *
 *  - It sleeps until woken. net.wake() (called by every net.http_*) wakes it at commit; here a
 *    NOTIFY on `pg_net_lookalike`. Only the first wake after it starts a round counts, as with
 *    pg_net's should_wake flag. There is no polling: nothing happens until a request commits.
 *  - A round repeats until it finds no work: delete up to batch_size responses older than
 *    pg_net.ttl, then in ONE transaction take up to batch_size queued requests (oldest id first),
 *    send them all at once, wait for the LAST one to finish, insert every response and commit;
 *    then sleep about a second (cut short by a wake that arrived during the batch). A slow
 *    request therefore holds back every request queued behind it, and under load there is about
 *    a second between batches. Expired responses go only when a request wakes the worker.
 *  - A request and its response commit together (pg_net >= 0.20). A worker error (a failed
 *    insert) rolls the batch back into the queue and it is sent again: at-least-once.
 *  - Stopping (stop(), SIGTERM) finishes the batch in flight and stores it, as pg_net's worker
 *    does on SIGTERM. If the database goes away meanwhile (a restart), the responses are stored
 *    once it is back, for the requests still queued (same id and row version). A crash kills
 *    pg_net's worker with the server: here the requests in flight are abandoned (their
 *    connections closed) as soon as the database is back, and nothing is stored, since the
 *    unlogged queue and responses are empty and ids (even transaction ids) start again. A crash
 *    is told from a clean restart by an unlogged marker row (net_lookalike.no_crash_since),
 *    which only a crash empties.
 *  - Settings: pg_net.batch_size (default 200) and pg_net.ttl (default '6 hours') are read from
 *    the database at the start of each batch; set them as the real extension reads them, with
 *    ALTER SYSTEM + pg_reload_conf() (the real GUCs cannot be set per database or session). The
 *    options below override them.
 *
 * The HTTP side (libcurl's behaviour) is in pg-net-http.ts.
 *
 * Library: `startPgNetWorker({ databaseUrl })`. CLI: `tsx scripts/dev-stack/pg-net-worker.ts --help`.
 */
import { setMaxListeners } from "node:events";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { CurlLikeClient, PG_NET_VERSION, type CurlOutcome } from "./pg-net-http.ts";

export interface PgNetWorkerOptions {
  databaseUrl: string;
  /** Requests per batch; overrides pg_net.batch_size (default 200). */
  batchSize?: number;
  /** Age after which responses are deleted; overrides pg_net.ttl (default '6 hours'). */
  responseTtl?: string;
  /** Progress and error lines (default: stderr). */
  log?: (msg: string) => void;
}

export interface PgNetWorker {
  /** Finishes and stores the batch in flight, then closes the connections. */
  stop(): Promise<void>;
  /** Resolves once the worker has finished its round and sleeps until the next wake. */
  whenIdle(): Promise<void>;
}

/** The channel the look-alike's net.wake() notifies. */
export const PG_NET_WAKE_CHANNEL = "pg_net_lookalike";
/** Sessions with this application_name count as "the pg_net worker" (net.check_worker_is_up()). */
export const PG_NET_WORKER_APPLICATION_NAME = "pg_net_lookalike_worker";

const DEFAULTS = { batchSize: 200, responseTtl: "6 hours" } as const;
/** pg_net's worker sleeps this long after each round (WORKER_WAIT_ONE_SECOND). */
const PAUSE_AFTER_BATCH_MS = 1000;
/** pg_net's background worker is restarted this long after an error (bgw_restart_time). */
const RESTART_DELAY_MS = 1000;

interface QueueRow {
  id: string;
  /** The row version: with the id, it tells this request from a later one with the same id. */
  xmin: string;
  method: string;
  url: string;
  timeout_milliseconds: number;
  header_lines: string[];
  body: Buffer | null;
}

/** A wake-up flag a sleeper can wait on with a timeout (pg_net's latch). */
class Latch {
  private set = false;
  private waiter: (() => void) | null = null;

  signal() {
    this.set = true;
    this.waiter?.();
  }

  /** Resolves when signalled (or at once if it already was), or after timeoutMs. Resets it. */
  async wait(timeoutMs: number): Promise<void> {
    if (!this.set) {
      await new Promise<void>((resolve) => {
        const timer = timeoutMs === Infinity ? undefined : setTimeout(resolve, timeoutMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    this.set = false;
  }
}

/** Errors that mean "the connection is gone", as opposed to an error of the statement. */
function connectionLost(err: unknown): boolean {
  const code = String((err as { code?: string }).code ?? "");
  return (
    code.startsWith("CONNECTION_") ||
    ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "CONNECT_TIMEOUT"].includes(code) ||
    code.startsWith("57P") ||
    code.startsWith("08")
  );
}

const STORE_RESPONSES = `
  insert into net._http_response (id, status_code, content, headers, content_type, timed_out, error_msg)
  select r.id, r.status_code,
         net_lookalike.unchecked_text(decode(r.content, 'hex'), 1),
         net_lookalike.unchecked_text(decode(r.headers, 'hex'), 1)::jsonb,
         net_lookalike.unchecked_text(decode(r.content_type, 'hex'), 1),
         r.timed_out, r.error_msg
    from jsonb_to_recordset($1::text::jsonb)
      as r(id bigint, status_code integer, content text, headers text, content_type text, timed_out boolean, error_msg text)`;

export async function startPgNetWorker(options: PgNetWorkerOptions): Promise<PgNetWorker> {
  const log = options.log ?? ((msg: string) => process.stderr.write(`[pg-net-worker] ${msg}\n`));
  if (!options.databaseUrl) throw new Error("startPgNetWorker: databaseUrl is required");
  if (options.batchSize !== undefined && (!Number.isInteger(options.batchSize) || options.batchSize <= 0))
    throw new Error(`startPgNetWorker: batchSize must be a positive integer, got ${options.batchSize}`);

  const connection = { application_name: PG_NET_WORKER_APPLICATION_NAME };
  const newPool = () => postgres(options.databaseUrl, { max: 1, onnotice: () => {}, connection });
  let sql = newPool();
  // The batch transaction has a connection of its own, so that its loss is known before anything
  // is written to it: postgres.js crashes (a TypeError in its write path) and never settles a
  // query sent on a connection the server has just closed.
  // A reserved connection that closed is handed out again by its pool, so a lost one is dropped
  // with its pool.
  let batchConnectionClosed = false;
  // Set while a batch's requests are in flight: told when the batch's connection closes.
  let onBatchConnectionLost: (() => void) | null = null;
  const newBatchPool = () =>
    postgres(options.databaseUrl, {
      max: 1,
      onnotice: () => {},
      connection,
      onclose: () => {
        batchConnectionClosed = true;
        onBatchConnectionLost?.();
      },
    });
  let batchSql = newBatchPool();
  const listener = postgres(options.databaseUrl, { max: 1, onnotice: () => {}, connection });
  const client = new CurlLikeClient();
  const latch = new Latch();
  // pg_net starts with should_wake set: requests queued while no worker ran are sent at once.
  let shouldWake = true;
  let stopping = false;
  let lastProblem: string | null = null;
  let idleWaiters: (() => void)[] = [];
  let idle = false;

  function problem(message: string) {
    if (message !== lastProblem) log(message);
    lastProblem = message;
  }

  function wake() {
    if (shouldWake) return;
    shouldWake = true;
    latch.signal();
  }

  async function settings(): Promise<{ batchSize: number; ttl: string }> {
    const [row] = await sql<{ batch_size: string | null; ttl: string | null }[]>`
      select current_setting('pg_net.batch_size', true) as batch_size, current_setting('pg_net.ttl', true) as ttl`;
    const fromGuc = row.batch_size === null || row.batch_size === "" ? NaN : Number(row.batch_size);
    return {
      batchSize: options.batchSize ?? (Number.isInteger(fromGuc) && fromGuc >= 0 ? fromGuc : DEFAULTS.batchSize),
      ttl: options.responseTtl ?? (row.ttl || DEFAULTS.responseTtl),
    };
  }

  async function ready(): Promise<boolean> {
    const [row] = await sql<{ queue: boolean; plumbing: boolean }[]>`
      select to_regclass('net.http_request_queue') is not null as queue,
             to_regclass('net_lookalike.no_crash_since') is not null as plumbing`;
    if (!row.queue) {
      problem("net.http_request_queue does not exist (is the pg_net extension created?); waiting for it");
      return false;
    }
    if (!row.plumbing) {
      problem("this database has an older pg_net look-alike: run `alter extension pg_net update`; waiting");
      return false;
    }
    return true;
  }

  async function deleteExpired(ttl: string, batchSize: number): Promise<number> {
    const deleted = await sql`
      with expired as (
        select ctid from net._http_response
         where created < now() - ${ttl}::interval
         order by created
         limit ${batchSize}
      )
      delete from net._http_response r using expired where r.ctid = expired.ctid`;
    if (deleted.count > 0) log(`deleted ${deleted.count} response(s) older than ${ttl}`);
    return deleted.count;
  }

  function responseRows(rows: QueueRow[], outcomes: CurlOutcome[]) {
    const hex = (b: Buffer | null) => (b === null ? null : b.toString("hex"));
    return rows.map((row, i) => {
      const o = outcomes[i];
      return o.ok
        ? {
            id: row.id,
            status_code: o.statusCode,
            content: hex(o.body),
            headers: jsonObjectBytes(o.headers).toString("hex"),
            content_type: hex(o.contentType),
            timed_out: false,
            error_msg: null,
          }
        : { id: row.id, status_code: null, content: null, headers: null, content_type: null, timed_out: o.timedOut, error_msg: o.errorMsg };
    });
  }

  /** One batch in one transaction; returns how many requests it took from the queue. */
  async function runBatch(batchSize: number): Promise<number> {
    await sql`insert into net_lookalike.no_crash_since select where not exists (select from net_lookalike.no_crash_since)`;
    const tx = await batchSql.reserve();
    let rows: QueueRow[] = [];
    let outcomes: CurlOutcome[] = [];
    try {
      batchConnectionClosed = false;
      await tx`begin`;
      // The claim stays open while the requests are in flight.
      await tx`set local idle_in_transaction_session_timeout = 0`;
      rows = await tx<QueueRow[]>`
        with next_requests as (
          select id from net.http_request_queue order by id limit ${batchSize} for update skip locked
        )
        delete from net.http_request_queue q using next_requests where q.id = next_requests.id
        returning q.id, q.xmin::text as xmin, q.method, q.url, q.timeout_milliseconds,
          array(select h.key || ': ' || h.value from jsonb_each_text(q.headers) as h where h.value is not null) as header_lines,
          q.body`;
      if (rows.length === 0) {
        await tx`commit`;
        return 0;
      }
      const inFlight = { abort: new AbortController(), done: false };
      // Every request of the batch listens on this one signal (a batch holds up to batch_size).
      setMaxListeners(0, inFlight.abort.signal);
      onBatchConnectionLost = () => void abandonIfCrashed(inFlight);
      try {
        outcomes = await Promise.all(
          rows.map((row) =>
            client.perform(
              {
                method: row.method,
                url: row.url,
                headerLines: row.header_lines,
                body: row.body,
                timeoutMs: row.timeout_milliseconds,
              },
              inFlight.abort.signal,
            ),
          ),
        );
      } finally {
        inFlight.done = true;
        onBatchConnectionLost = null;
      }
      for (const [i, row] of rows.entries()) {
        const o = outcomes[i];
        const retried = o.resends > 0 ? ` (sent ${o.resends + 1} times: reused connections died)` : "";
        log(`${row.method} ${describeUrl(row.url)} -> ${o.ok ? o.statusCode : o.errorMsg} (request ${row.id})${retried}`);
      }
      // A close of this connection while the requests were in flight is seen before writing to it.
      await new Promise((resolve) => setImmediate(resolve));
      if (batchConnectionClosed) throw Object.assign(new Error("the batch's connection was closed"), { code: "CONNECTION_CLOSED" });
      await tx.unsafe(STORE_RESPONSES, [JSON.stringify(responseRows(rows, outcomes))]);
      await tx`commit`;
      return rows.length;
    } catch (err) {
      if (rows.length > 0 && outcomes.length === rows.length && connectionLost(err)) {
        await storeAfterReconnect(rows, outcomes);
        return rows.length;
      }
      if (!batchConnectionClosed) await tx`rollback`.catch(() => {});
      if (rows.length > 0)
        log(`worker error, the batch of ${rows.length} goes back to the queue and will be sent again: ${(err as Error).message}`);
      throw err;
    } finally {
      if (batchConnectionClosed) {
        const lost = batchSql;
        batchSql = newBatchPool();
        void lost.end({ timeout: 0 }).catch(() => {});
      } else {
        tx.release();
      }
    }
  }

  /**
   * The batch's connection closed while its requests are in flight. pg_net's worker is a process
   * of the server: a crash kills it, and the connections of its requests close with it, so the
   * servers never get to answer them. A restart or a terminated session lets it finish instead.
   * Once the database is back, a crash (the marker is gone) abandons the transfers.
   */
  async function abandonIfCrashed(inFlight: { abort: AbortController; done: boolean }) {
    while (!inFlight.done && !stopping) {
      const probe = newPool();
      try {
        const [{ crashed }] = await probe<{ crashed: boolean }[]>`
          select not exists (select from net_lookalike.no_crash_since) as crashed`;
        if (crashed && !inFlight.done) {
          log("the database crashed during a batch: its requests in flight are abandoned, as a crash ends pg_net's worker");
          inFlight.abort.abort();
        }
        return;
      } catch (err) {
        if (!connectionLost(err)) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        void probe.end({ timeout: 1 }).catch(() => {});
      }
    }
  }

  /**
   * The claim was lost with its connection (the database restarted): the requests were rolled
   * back into the queue, or wiped if it was a crash. Unless it was a crash, store the responses of
   * those still queued (same id and same row version), taking them from the queue in the same
   * transaction.
   */
  async function storeAfterReconnect(rows: QueueRow[], outcomes: CurlOutcome[]) {
    const giveUpAt = Date.now() + 30_000;
    for (;;) {
      // A pool of its own: postgres.js pools do not always recover from a server-side close.
      const rescue = newPool();
      try {
        const stored = await rescue.begin(async (tx) => {
          const [{ crashed }] = await tx<{ crashed: boolean }[]>`
            select not exists (select from net_lookalike.no_crash_since) as crashed`;
          if (crashed) return 0;
          const mine = await tx<{ id: string }[]>`
            delete from net.http_request_queue q
             using unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.xmin)}::text[]) as c(id, xmin)
             where q.id = c.id and q.xmin = c.xmin::xid
            returning q.id`;
          const still = new Set(mine.map((r) => r.id));
          const keep = responseRows(rows, outcomes).filter((r) => still.has(r.id));
          if (keep.length > 0) await tx.unsafe(STORE_RESPONSES, [JSON.stringify(keep)]);
          return keep.length;
        });
        log(
          `the database restarted during a batch: stored ${stored} of ${rows.length} responses` +
            (stored < rows.length ? `; ${rows.length - stored} request(s) were gone (a crash resets the unlogged queue)` : ""),
        );
        return;
      } catch (err) {
        if (!connectionLost(err) || Date.now() > giveUpAt || stopping) {
          log(`could not store ${rows.length} response(s) after losing the database: ${(err as Error).message}; ` + "the requests stay queued and will be sent again");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      } finally {
        void rescue.end({ timeout: 1 }).catch(() => {});
      }
    }
  }

  async function loop() {
    while (!stopping) {
      try {
        if (!(await ready())) {
          await latch.wait(RESTART_DELAY_MS);
          continue;
        }
        if (!shouldWake) {
          idle = true;
          for (const resolve of idleWaiters.splice(0)) resolve();
          await latch.wait(Infinity);
          idle = false;
          continue;
        }
        shouldWake = false;
        let consumed = 0;
        let expired = 0;
        do {
          const { batchSize, ttl } = await settings();
          expired = await deleteExpired(ttl, batchSize);
          consumed = await runBatch(batchSize);
          if (lastProblem !== null) log("recovered: processing the queue again");
          lastProblem = null;
          // pg_net: "slow down queue processing to avoid using too much CPU"
          if (!stopping) await latch.wait(PAUSE_AFTER_BATCH_MS);
        } while (!stopping && (consumed > 0 || expired > 0));
      } catch (err) {
        // pg_net's worker exits on an error and is restarted a second later, with work pending.
        problem(`database error: ${(err as Error).message}`);
        shouldWake = true;
        if (connectionLost(err)) {
          const lost = sql;
          sql = newPool();
          void lost.end({ timeout: 0 }).catch(() => {});
        }
        if (!stopping) await latch.wait(RESTART_DELAY_MS);
      }
    }
  }

  // Fail fast on a bad URL, credentials or TTL; a missing extension is waited for instead.
  try {
    if (options.responseTtl !== undefined) await sql`select ${options.responseTtl}::interval`;
    await listener.listen(
      PG_NET_WAKE_CHANNEL,
      (payload) => {
        if (payload === "restart") log("net.worker_restart(): settings are read again at the next batch");
        wake();
      },
      // Called again after every reconnect: requests may have been committed meanwhile.
      () => wake(),
    );
  } catch (err) {
    await Promise.allSettled([sql.end({ timeout: 1 }), batchSql.end({ timeout: 1 }), listener.end({ timeout: 1 })]);
    throw err;
  }
  log(`started as pg_net ${PG_NET_VERSION}: one batch at a time, woken by requests`);
  const running = loop();

  let stopped: Promise<void> | null = null;
  return {
    whenIdle() {
      if (idle && !shouldWake) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        latch.signal();
        await running;
        for (const resolve of idleWaiters.splice(0)) resolve();
        client.close();
        await Promise.allSettled([sql.end({ timeout: 5 }), batchSql.end({ timeout: 5 }), listener.end({ timeout: 1 })]);
        log("stopped");
      })();
      return stopped;
    },
  };
}

/** Scheme, host and path: never the query string, which may hold a token. */
function describeUrl(raw: string): string {
  try {
    const url = new URL(raw);
    return `${url.origin}${url.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

/**
 * A JSON object as bytes, keys and values copied byte for byte (only `"`, `\` and control bytes
 * escaped), in order: Postgres' jsonb keeps the last of duplicate keys, as pg_net's jsonb does.
 */
function jsonObjectBytes(pairs: [Buffer, Buffer][]): Buffer {
  const parts: Buffer[] = [Buffer.from("{")];
  pairs.forEach(([name, value], i) => {
    if (i > 0) parts.push(Buffer.from(","));
    parts.push(jsonStringBytes(name), Buffer.from(":"), jsonStringBytes(value));
  });
  parts.push(Buffer.from("}"));
  return Buffer.concat(parts);
}

function jsonStringBytes(bytes: Buffer): Buffer {
  const out: number[] = [0x22];
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) out.push(0x5c, b);
    else if (b < 0x20) out.push(...Buffer.from(`\\u${b.toString(16).padStart(4, "0")}`));
    else out.push(b);
  }
  out.push(0x22);
  return Buffer.from(out);
}

// ------------------------------------------------------------------------------------------------
// CLI
// ------------------------------------------------------------------------------------------------

const USAGE = `Usage: tsx scripts/dev-stack/pg-net-worker.ts [options]

Sends the HTTP requests queued by the pg_net look-alike (net.http_get/post/delete) and stores the
responses in net._http_response, as pg_net ${PG_NET_VERSION}'s background worker does. Development and
tests only; runs until SIGTERM or SIGINT (a second signal exits at once: the batch in flight goes
back to the queue and is sent again later).

Options:
  --database-url URL       database to serve (default: $DATABASE_URL)
  --ttl INTERVAL           delete responses older than this (default: pg_net.ttl, else '${DEFAULTS.responseTtl}')
  --batch-size N           requests per batch (default: pg_net.batch_size, else ${DEFAULTS.batchSize})
  --quiet                  only log problems
  -h, --help               show this help
`;

class UsageError extends Error {}

function positiveInteger(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(raw)) throw new UsageError(`${flag} must be a positive integer, got '${raw}'`);
  return Number(raw);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        "database-url": { type: "string" },
        ttl: { type: "string" },
        "batch-size": { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`pg-net-worker: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  let options: PgNetWorkerOptions;
  try {
    const databaseUrl = parsed["database-url"] ?? process.env.DATABASE_URL;
    if (!databaseUrl) throw new UsageError("no database: set DATABASE_URL or pass --database-url");
    if (parsed.ttl !== undefined && parsed.ttl.trim() === "") throw new UsageError("--ttl must not be empty");
    options = { databaseUrl, batchSize: positiveInteger("--batch-size", parsed["batch-size"]), responseTtl: parsed.ttl };
  } catch (err) {
    process.stderr.write(`pg-net-worker: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }

  const print = (msg: string) => process.stderr.write(`[pg-net-worker] ${msg}\n`);
  options.log = parsed.quiet
    ? (msg) => {
        if (!/ -> \d{3} \(request \d+\)$|^started|^stopped/.test(msg)) print(msg);
      }
    : print;

  let worker: PgNetWorker;
  try {
    worker = await startPgNetWorker(options);
  } catch (err) {
    const code = (err as { code?: string }).code;
    // An invalid --ttl is a usage error, anything else (unreachable database...) a runtime one.
    if (code === "22007" || code === "22P02" || code === "22008") {
      process.stderr.write(`pg-net-worker: --ttl is not a valid interval: ${(err as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`pg-net-worker: could not start: ${(err as Error).message}\n`);
    return 1;
  }

  return await new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        print(`${signal} again: exiting without waiting`);
        resolve(1);
        return;
      }
      signalled = true;
      print(`${signal}: stopping after the batch in flight`);
      worker.stop().then(
        () => resolve(0),
        (err) => {
          print(`error while stopping: ${(err as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

function isMainModule(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`pg-net-worker: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
