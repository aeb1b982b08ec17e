/**
 * The worker of the pg_net look-alike (sql/pg_net_lookalike): development and tests only.
 *
 * Hosted Supabase runs pg_net's background worker inside Postgres. Locally, without the real
 * extension, this process plays that part: it drains `net.http_request_queue`, sends each request
 * with fetch and stores the outcome in `net._http_response` under the request's id, in the same
 * shape as pg_net 0.20 (status_code, content_type, headers, content, timed_out, error_msg).
 *
 * Delivery: at-least-once. pg_net itself is at-most-once (its worker deletes a batch in one
 * transaction and stores the responses in a later one, so a crash in between loses those
 * requests without a trace). Here a batch is claimed (`delete ... returning` over rows locked
 * with `for update skip locked`), sent, and its responses stored in one transaction that stays
 * open while the requests are in flight: if the worker dies or loses its connection before the
 * commit, the claim rolls back and the requests are sent again by the next worker. A request is
 * thus never lost, and in the rare crash case it can reach its server twice. Only committed
 * requests are ever seen, so a request made in a transaction that rolls back is never sent.
 *
 * Waking: the look-alike's net.wake() does NOTIFY pg_net_lookalike on enqueue; the worker LISTENs
 * and also polls every pollIntervalMs (which also catches requests committed while it was down,
 * and re-establishes LISTEN after a lost connection). Responses older than responseTtl are
 * deleted, like pg_net.ttl.
 *
 * Library: `startPgNetWorker({ databaseUrl })`. CLI: `tsx scripts/dev-stack/pg-net-worker.ts --help`.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";

export interface PgNetWorkerOptions {
  databaseUrl: string;
  /** Fallback poll for queued requests and TTL purge, in ms (default 1000). */
  pollIntervalMs?: number;
  /** Responses older than this interval are deleted, like pg_net.ttl (default '6 hours'). */
  responseTtl?: string;
  /** Requests claimed and sent together, like pg_net.batch_size (default 200). */
  batchSize?: number;
  /** Progress and error lines (default: stderr). */
  log?: (msg: string) => void;
}

export interface PgNetWorker {
  /** Stops claiming, waits for the requests in flight to be stored, closes the connections. */
  stop(): Promise<void>;
}

/** The channel the look-alike's net.wake() notifies. */
export const PG_NET_WAKE_CHANNEL = "pg_net_lookalike";
/** Sessions with this application_name count as "the pg_net worker" (net.check_worker_is_up()). */
export const PG_NET_WORKER_APPLICATION_NAME = "pg_net_lookalike_worker";

const DEFAULTS = { pollIntervalMs: 1000, responseTtl: "6 hours", batchSize: 200 } as const;
/** The User-Agent pg_net 0.20.0 sends. */
const USER_AGENT = "pg_net/0.20.0";
/** Batches in flight at once: a slow batch does not hold back requests queued after it. */
const MAX_CONCURRENT_BATCHES = 4;
/**
 * libcurl treats timeout_milliseconds <= 0 as "no timeout"; the look-alike still bounds such a
 * request, because its claim transaction stays open until the response is stored.
 */
const UNBOUNDED_TIMEOUT_CAP_MS = 10 * 60_000;

interface QueueRow {
  id: string;
  method: string;
  url: string;
  timeout_milliseconds: number;
  /** [name, value] pairs from jsonb_each_text(headers), null values left out, like pg_net. */
  header_pairs: [string, string][] | null;
  body: Buffer | null;
}

interface Outcome {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean;
  error_msg: string | null;
}

type Sql = postgres.Sql;
type TxSql = postgres.TransactionSql;

export async function startPgNetWorker(options: PgNetWorkerOptions): Promise<PgNetWorker> {
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULTS.pollIntervalMs;
  const responseTtl = options.responseTtl ?? DEFAULTS.responseTtl;
  const batchSize = options.batchSize ?? DEFAULTS.batchSize;
  const log = options.log ?? ((msg: string) => process.stderr.write(`[pg-net-worker] ${msg}\n`));
  if (!options.databaseUrl) throw new Error("startPgNetWorker: databaseUrl is required");
  if (!Number.isInteger(pollIntervalMs) || pollIntervalMs <= 0)
    throw new Error(`startPgNetWorker: pollIntervalMs must be a positive integer, got ${pollIntervalMs}`);
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new Error(`startPgNetWorker: batchSize must be a positive integer, got ${batchSize}`);

  const connection = { application_name: PG_NET_WORKER_APPLICATION_NAME };
  const sql: Sql = postgres(options.databaseUrl, {
    max: MAX_CONCURRENT_BATCHES + 1,
    onnotice: () => {},
    connection,
  });

  let stopping = false;
  let listening = false;
  let pendingWake = false;
  let activeBatches = 0;
  let lastProblem: string | null = null;
  const inFlight = new Set<Promise<unknown>>();

  // A dedicated session for LISTEN, so that a lost connection is noticed (onclose) and LISTEN is
  // issued again on the next poll tick; notifications missed meanwhile are caught by that poll.
  const listenerOptions = {
    max: 1,
    idle_timeout: null,
    max_lifetime: null,
    fetch_types: false,
    onnotice: () => {},
    connection,
    onnotify: () => wake(),
    onclose: () => {
      listening = false;
    },
  };
  const listener: Sql = postgres(options.databaseUrl, listenerOptions as unknown as postgres.Options<{}>);

  function track<T>(promise: Promise<T>): Promise<T> {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  function problem(message: string) {
    if (message !== lastProblem) log(message);
    lastProblem = message;
  }

  function healthy() {
    if (lastProblem !== null) log("recovered: processing the queue again");
    lastProblem = null;
  }

  function describeDbError(err: unknown): string {
    const code = (err as { code?: string }).code;
    if (code === "42P01" || code === "3F000")
      return "net.http_request_queue does not exist (is the pg_net extension created?); waiting for it";
    return `database error: ${err instanceof Error ? err.message : String(err)}`;
  }

  function wake() {
    if (stopping) return;
    pendingWake = true;
    pump();
  }

  function pump() {
    while (pendingWake && !stopping && activeBatches < MAX_CONCURRENT_BATCHES) {
      pendingWake = false;
      activeBatches++;
      track(
        runBatch()
          .then(
            (claimed) => {
              healthy();
              // A full or partial batch may not be the end of the queue: look again.
              if (claimed > 0) pendingWake = true;
            },
            (err) => problem(describeDbError(err)),
          )
          .finally(() => {
            activeBatches--;
            pump();
          }),
      );
    }
  }

  async function runBatch(): Promise<number> {
    let claimed = 0;
    await sql.begin(async (tx) => {
      // The claim stays open while the requests are in flight (see the delivery note above).
      await tx`set local idle_in_transaction_session_timeout = 0`;
      await tx`set local statement_timeout = 0`;
      const rows = await tx<QueueRow[]>`
        with next_requests as (
          select id
          from net.http_request_queue
          order by id
          limit ${batchSize}
          for update skip locked
        )
        delete from net.http_request_queue q
        using next_requests
        where q.id = next_requests.id
        returning
          q.id,
          q.method,
          q.url,
          q.timeout_milliseconds,
          (select jsonb_agg(jsonb_build_array(h.key, h.value))
             from jsonb_each_text(q.headers) as h
            where h.value is not null) as header_pairs,
          q.body
      `;
      claimed = rows.length;
      if (rows.length === 0) return;
      const outcomes = await Promise.all(rows.map((row) => send(row)));
      for (const outcome of outcomes) await store(tx, outcome);
    });
    return claimed;
  }

  async function store(tx: TxSql, o: Outcome) {
    try {
      await tx.savepoint(
        (sp) => sp`
          insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
          values (
            ${o.id}::bigint, ${o.status_code}::int, ${o.content_type}::text,
            ${o.headers === null ? null : tx.json(o.headers)}::jsonb,
            ${o.content}::text, ${o.timed_out}, ${o.error_msg}::text
          )
        `,
      );
    } catch (err) {
      // A response Postgres cannot hold must not roll the batch back (it would be re-sent forever).
      const reason = err instanceof Error ? err.message : String(err);
      log(`request ${o.id}: could not store the response (${reason}); storing an error instead`);
      await tx`
        insert into net._http_response (id, timed_out, error_msg)
        values (${o.id}::bigint, false, ${`pg_net look-alike: could not store the response: ${reason}`})
      `;
    }
  }

  async function send(row: QueueRow): Promise<Outcome> {
    const failed = (error_msg: string, timed_out = false): Outcome => ({
      id: row.id,
      status_code: null,
      content_type: null,
      headers: null,
      content: null,
      timed_out,
      error_msg,
    });
    const method = row.method.toUpperCase();
    const started = performance.now();

    let target: URL;
    try {
      target = new URL(row.url);
    } catch {
      return failed("URL using bad/illegal format or missing URL");
    }
    if (target.protocol !== "http:" && target.protocol !== "https:") return failed("Unsupported protocol");

    const headers = new Headers();
    for (const [name, value] of row.header_pairs ?? []) {
      try {
        headers.append(name, value);
      } catch {
        // pg_net >= 0.20.5 refuses such headers too (a CR/LF could inject headers); the value
        // may hold a credential, so only the name is reported.
        return failed(`header "${name}" is not a valid HTTP header`);
      }
    }
    if (!headers.has("user-agent")) headers.set("user-agent", USER_AGENT);
    // libcurl, as pg_net uses it, asks for no compression; fetch would ask for gzip and inflate.
    if (!headers.has("accept-encoding")) headers.set("accept-encoding", "identity");

    const timeoutMs =
      row.timeout_milliseconds > 0 ? Math.min(row.timeout_milliseconds, UNBOUNDED_TIMEOUT_CAP_MS) : UNBOUNDED_TIMEOUT_CAP_MS;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const timedOut = () =>
      failed(
        `Timeout of ${row.timeout_milliseconds} ms reached. Total time: ${(performance.now() - started).toFixed(6)} ms` +
          " (the pg_net look-alike does not split it into DNS, TCP/SSL handshake and HTTP time)",
        true,
      );

    try {
      const response = await fetch(target, {
        method,
        headers,
        body: row.body === null ? undefined : new Uint8Array(row.body),
        redirect: "follow",
        signal: controller.signal,
      });
      const bytes = new Uint8Array(await response.arrayBuffer());
      const outcome: Outcome = {
        id: row.id,
        status_code: response.status,
        content_type: response.headers.get("content-type"),
        // One key per header name; for a repeated header (set-cookie) the last one wins, as in pg_net.
        headers: Object.fromEntries(response.headers),
        content: bodyText(bytes),
        timed_out: false,
        error_msg: null,
      };
      log(`${method} ${target.origin}${target.pathname} -> ${response.status} (request ${row.id})`);
      return outcome;
    } catch (err) {
      const outcome = controller.signal.aborted ? timedOut() : classifyFetchError(err, failed, timedOut);
      log(`${method} ${target.origin}${target.pathname} -> ${outcome.error_msg} (request ${row.id})`);
      return outcome;
    } finally {
      clearTimeout(timer);
    }
  }

  async function purgeExpiredResponses() {
    const deleted = await sql`
      delete from net._http_response where created < now() - ${responseTtl}::interval
    `;
    if (deleted.count > 0) log(`deleted ${deleted.count} response(s) older than ${responseTtl}`);
  }

  async function ensureListening() {
    if (listening || stopping) return;
    await listener`listen ${listener(PG_NET_WAKE_CHANNEL)}`;
    listening = true;
    // Requests may have been committed while nobody listened.
    wake();
  }

  let ticking = false;
  async function tick() {
    // A tick can outlast the interval while the database is unreachable: never run two at once.
    if (stopping || ticking) return;
    ticking = true;
    try {
      await ensureListening();
      await purgeExpiredResponses();
      healthy();
    } catch (err) {
      problem(describeDbError(err));
    } finally {
      ticking = false;
    }
    wake();
  }

  // Fail fast on a bad URL, credentials or TTL; a missing extension is waited for instead.
  try {
    await sql`select ${responseTtl}::interval`;
    await ensureListening();
  } catch (err) {
    await Promise.allSettled([sql.end({ timeout: 1 }), listener.end({ timeout: 1 })]);
    throw err;
  }
  log(
    `started: batch size ${batchSize}, poll every ${pollIntervalMs} ms, responses kept ${responseTtl}, ` +
      "at-least-once delivery",
  );
  const timer = setInterval(() => void track(tick()), pollIntervalMs);
  void track(tick());

  let stopped: Promise<void> | null = null;
  return {
    stop() {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(timer);
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        await Promise.allSettled([sql.end({ timeout: 5 }), listener.end({ timeout: 1 })]);
        log("stopped");
      })();
      return stopped;
    },
  };
}

/** pg_net stores the body as a C string: empty means null, and it ends at the first NUL byte. */
function bodyText(bytes: Uint8Array): string | null {
  const nul = bytes.indexOf(0);
  const kept = nul === -1 ? bytes : bytes.subarray(0, nul);
  if (kept.length === 0) return null;
  return new TextDecoder("utf-8").decode(kept);
}

/** fetch failures as the libcurl messages (curl_easy_strerror) pg_net stores in error_msg. */
function classifyFetchError(
  err: unknown,
  failed: (msg: string, timedOut?: boolean) => Outcome,
  timedOut: () => Outcome,
): Outcome {
  const cause = (err as { cause?: unknown }).cause ?? err;
  const first = (cause as { errors?: unknown[] }).errors?.[0];
  const code = String((cause as { code?: string }).code ?? (first as { code?: string } | undefined)?.code ?? "");
  const message = cause instanceof Error ? cause.message : String(cause);

  if (code === "UND_ERR_CONNECT_TIMEOUT" || code === "ETIMEDOUT" || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT")
    return timedOut();
  if (["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "EHOSTDOWN", "ENETDOWN"].includes(code))
    return failed("Couldn't connect to server");
  if (["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"].includes(code))
    return failed("Couldn't resolve host name");
  if (
    [
      "CERT_HAS_EXPIRED",
      "DEPTH_ZERO_SELF_SIGNED_CERT",
      "SELF_SIGNED_CERT_IN_CHAIN",
      "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
      "ERR_TLS_CERT_ALTNAME_INVALID",
    ].includes(code)
  )
    return failed("SSL peer certificate or SSH remote key was not OK");
  if (code.startsWith("ERR_SSL") || code === "EPROTO") return failed("SSL connect error");
  if (code === "UND_ERR_SOCKET") return failed("Server returned nothing (no headers, no data)");
  if (code === "ECONNRESET") return failed("Failure when receiving data from the peer");
  if (code === "EPIPE") return failed("Failed sending data to the peer");
  if (code.startsWith("HPE_")) return failed("Weird server reply");
  if (/redirect count exceeded/i.test(message)) return failed("Number of redirects hit maximum amount");
  // The fetch standard blocks some ports (1, 6000, 6665-6669, ...) that libcurl would connect to.
  if (/^bad port$/i.test(message)) return failed("pg_net look-alike: Node's fetch refuses this port (a fetch \"bad port\")");
  return failed(`pg_net look-alike: ${code ? `${code}: ` : ""}${message}`);
}

// ------------------------------------------------------------------------------------------------
// CLI
// ------------------------------------------------------------------------------------------------

const USAGE = `Usage: tsx scripts/dev-stack/pg-net-worker.ts [options]

Sends the HTTP requests queued by the pg_net look-alike (net.http_get/post/delete) and stores the
responses in net._http_response. Development and tests only; runs until SIGTERM or SIGINT.

Options:
  --database-url URL       database to serve (default: $DATABASE_URL)
  --poll-interval-ms N     fallback poll interval in ms (default: ${DEFAULTS.pollIntervalMs})
  --ttl INTERVAL           delete responses older than this (default: '${DEFAULTS.responseTtl}')
  --batch-size N           requests claimed and sent together (default: ${DEFAULTS.batchSize})
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
        "poll-interval-ms": { type: "string" },
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
    options = {
      databaseUrl,
      pollIntervalMs: positiveInteger("--poll-interval-ms", parsed["poll-interval-ms"]),
      batchSize: positiveInteger("--batch-size", parsed["batch-size"]),
      responseTtl: parsed.ttl,
    };
  } catch (err) {
    process.stderr.write(`pg-net-worker: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }

  const print = (msg: string) => process.stderr.write(`[pg-net-worker] ${msg}\n`);
  const quiet = parsed.quiet === true;
  options.log = quiet
    ? (msg) => {
        if (!/ -> \d{3} \(request |^started|^stopped/.test(msg)) print(msg);
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
      print(`${signal}: stopping after the requests in flight`);
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
