/**
 * The HTTP side of the pg_net look-alike worker: sends one queued request the way pg_net 0.20.4
 * does with libcurl, and reports what pg_net would store. Development and tests only.
 *
 * What it reproduces (pg_net's src/core.c, libcurl 7.88):
 *  - request headers are the queue's `name: value` lines, then `User-Agent: pg_net/<version>`
 *    (a caller's own User-Agent is sent too: both lines go out); libcurl adds an Accept header
 *    for any type, a Content-Length for a body and, for a body without a Content-Type, the form
 *    type;
 *  - redirects are followed (at most 30); the stored headers are those of the FIRST response
 *    (curl_easy_nextheader with request 0), the status, content type and body those of the last;
 *  - header names keep the server's letter case; a repeated header keeps its last value (the
 *    jsonb object is built key by key and the last duplicate wins);
 *  - the body and header bytes are kept as the server sent them (no decoding, no charset
 *    check); the body ends at its first NUL byte, and an empty body is null;
 *  - connections are kept alive and reused across batches, and a request whose reused
 *    connection dies before any byte of the answer is sent again on another connection (libcurl
 *    retries up to 5 times, whatever the method: a POST can reach the server more than once);
 *  - errors are libcurl's curl_easy_strerror() texts; a timeout (timeout_milliseconds over the
 *    whole transfer, 0 = none) gets pg_net's detailed message.
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";

/** The version pg_net reports in its User-Agent. */
export const PG_NET_VERSION = "0.20.4";
const MAX_REDIRECTS = 30;
/** libcurl's CONN_MAX_RETRIES. */
const MAX_RETRIES_ON_DEAD_CONNECTION = 5;
/** libcurl closes cached connections idle for longer (CURLOPT_MAXAGE_CONN). */
const MAX_IDLE_CONNECTION_MS = 118_000;

export interface CurlRequest {
  method: string;
  url: string;
  /** `name: value` lines, as pg_net builds them from the queue's headers jsonb. */
  headerLines: string[];
  body: Buffer | null;
  timeoutMs: number;
}

export type CurlOutcome =
  | {
      ok: true;
      statusCode: number;
      /** The first response's headers, raw bytes, in order (duplicates included). */
      headers: [Buffer, Buffer][];
      /** The last response's first Content-Type header, raw bytes. */
      contentType: Buffer | null;
      /** The last response's body, up to its first NUL byte; null when empty. */
      body: Buffer | null;
      /** Times the request went out again after a reused connection died. */
      resends: number;
    }
  | { ok: false; timedOut: boolean; errorMsg: string; resends: number };

interface Exchange {
  statusCode: number;
  rawHeaders: string[];
  body: Buffer;
}

class CurlError extends Error {
  constructor(readonly curlMessage: string) {
    super(curlMessage);
  }
}

class TimedOut extends Error {}

/** Times of one transfer, in ms since it started, for pg_net's timeout message. */
interface Timings {
  started: number;
  namelookup: number;
  connect: number;
  appconnect: number;
  pretransfer: number;
}

export class CurlLikeClient {
  private readonly agents = {
    "http:": new http.Agent({ keepAlive: true, scheduling: "lifo", timeout: MAX_IDLE_CONNECTION_MS }),
    "https:": new https.Agent({ keepAlive: true, scheduling: "lifo", timeout: MAX_IDLE_CONNECTION_MS }),
  };
  private readonly active = new Set<http.ClientRequest>();

  /** Never rejects: every failure is an outcome, as pg_net stores it. */
  async perform(request: CurlRequest, signal?: AbortSignal): Promise<CurlOutcome> {
    const timings: Timings = { started: performance.now(), namelookup: 0, connect: 0, appconnect: 0, pretransfer: 0 };
    let resends = 0;
    const deadline = request.timeoutMs > 0 ? timings.started + request.timeoutMs : Infinity;
    try {
      let url = parseUrl(request.url);
      let method = request.method.toUpperCase();
      let body = request.body;
      let headerLines = request.headerLines;
      let firstHeaders: [Buffer, Buffer][] | null = null;
      for (let redirects = 0; ; redirects++) {
        const exchange = await this.exchangeWithRetries(url, method, headerLines, body, deadline, timings, () => resends++, signal);
        firstHeaders ??= headerPairs(exchange.rawHeaders);
        const location = headerValue(exchange.rawHeaders, "location");
        if ([301, 302, 303, 307, 308].includes(exchange.statusCode) && location !== null) {
          if (redirects >= MAX_REDIRECTS) throw new CurlError("Number of redirects hit maximum amount");
          const next = parseUrl(new URL(location, url).toString());
          // libcurl turns a redirected POST into a GET for 301, 302 and 303 (no CURLOPT_POSTREDIR).
          if (method === "POST" && [301, 302, 303].includes(exchange.statusCode)) {
            method = "GET";
            body = null;
          }
          // Custom Authorization and Cookie headers never go to another host (libcurl >= 7.58).
          if (next.origin !== url.origin)
            headerLines = headerLines.filter((line) => !/^(authorization|cookie)\s*:/i.test(line));
          url = next;
          continue;
        }
        const contentType = headerValue(exchange.rawHeaders, "content-type");
        const nul = exchange.body.indexOf(0);
        const kept = nul === -1 ? exchange.body : exchange.body.subarray(0, nul);
        return {
          ok: true,
          statusCode: exchange.statusCode,
          headers: firstHeaders,
          contentType: contentType === null ? null : Buffer.from(contentType, "latin1"),
          body: kept.length === 0 ? null : kept,
          resends,
        };
      }
    } catch (err) {
      if (err instanceof TimedOut) return { ok: false, timedOut: true, errorMsg: timeoutMessage(request.timeoutMs, timings), resends };
      if (err instanceof CurlError) return { ok: false, timedOut: false, errorMsg: err.curlMessage, resends };
      return { ok: false, timedOut: false, errorMsg: `pg_net look-alike: ${(err as Error).message}`, resends };
    }
  }

  /** Abandons every transfer in flight and closes the cached connections. */
  close(): void {
    for (const req of this.active) req.destroy();
    for (const agent of Object.values(this.agents)) agent.destroy();
  }

  private async exchangeWithRetries(
    url: URL,
    method: string,
    headerLines: string[],
    body: Buffer | null,
    deadline: number,
    timings: Timings,
    countResend: () => void,
    signal: AbortSignal | undefined,
  ): Promise<Exchange> {
    for (let retries = 0; ; retries++) {
      if (retries > 0) countResend();
      const result = await this.exchange(url, method, headerLines, body, deadline, timings, signal);
      if (!("deadConnection" in result)) return result;
      // The connection was reused and died before any byte of the answer: libcurl sends the
      // request again on a fresh connect (which may pick another cached connection).
      if (retries >= MAX_RETRIES_ON_DEAD_CONNECTION) throw new CurlError("Failed sending data to the peer");
    }
  }

  private exchange(
    url: URL,
    method: string,
    headerLines: string[],
    body: Buffer | null,
    deadline: number,
    timings: Timings,
    signal: AbortSignal | undefined,
  ): Promise<Exchange | { deadConnection: true }> {
    return new Promise((resolve, reject) => {
      const headers = requestHeaders(url, headerLines, body, method);
      if (typeof headers === "string") return reject(new CurlError(headers));
      const transport = url.protocol === "https:" ? https : http;
      let req: http.ClientRequest;
      try {
        req = transport.request({
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
          port: url.port || undefined,
          path: `${url.pathname}${url.search}`,
          method,
          headers,
          agent: this.agents[url.protocol as "http:" | "https:"],
          insecureHTTPParser: true,
          signal,
        });
      } catch (err) {
        return reject(new CurlError(`pg_net look-alike: ${(err as Error).message}`));
      }
      this.active.add(req);
      let answered = false;
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.active.delete(req);
        fn();
      };
      const remaining = deadline - performance.now();
      // libcurl times out once the time is up, never before: Node's timers can fire up to a
      // millisecond early, so round up and add one.
      const timer = setTimeout(
        () => {
          finish(() => reject(new TimedOut()));
          req.destroy();
        },
        Math.max(0, Math.min(Math.ceil(remaining) + 1, 2 ** 31 - 1)),
      );
      if (remaining === Infinity) clearTimeout(timer);

      req.on("socket", (socket: Socket) => {
        const since = () => performance.now() - timings.started;
        if (req.reusedSocket) {
          // A reused connection: libcurl stamps the name lookup at once and leaves the connect
          // time at 0, so pg_net's handshake time (connect - namelookup) comes out negative.
          timings.namelookup ||= since();
          timings.pretransfer = since();
          return;
        }
        timings.namelookup = since();
        socket.once("lookup", () => (timings.namelookup = since()));
        socket.once("connect", () => {
          timings.connect = since();
          timings.pretransfer = since();
        });
        socket.once("secureConnect", () => {
          timings.appconnect = since();
          timings.pretransfer = since();
        });
      });
      req.on("response", (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          finish(() => resolve({ statusCode: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) })),
        );
        res.on("aborted", () => finish(() => reject(new CurlError("Transferred a partial file"))));
        res.on("error", () => finish(() => reject(new CurlError("Failure when receiving data from the peer"))));
      });
      req.on("error", (err) => {
        if (!answered && req.reusedSocket && isDeadConnection(err)) return finish(() => resolve({ deadConnection: true }));
        finish(() => reject(answered ? new CurlError("Failure when receiving data from the peer") : new CurlError(curlMessage(err))));
      });
      req.end(body ?? undefined);
    });
  }
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CurlError("URL using bad/illegal format or missing URL");
  }
  // CURLOPT_PROTOCOLS_STR "http,https"
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new CurlError("Unsupported protocol");
  return url;
}

/** The request headers libcurl would send, as [name, value, ...], or an error message. */
function requestHeaders(url: URL, lines: string[], body: Buffer | null, method: string): string[] | string {
  const flat: string[] = [];
  const has = (name: string) => flat.some((v, i) => i % 2 === 0 && v.toLowerCase() === name);
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    // `Name:` with nothing after the colon tells libcurl to leave that header out.
    if (value === "") continue;
    try {
      http.validateHeaderName(name);
      http.validateHeaderValue(name, value);
    } catch {
      // libcurl would put the line on the wire as is (a CR/LF in it could inject headers);
      // Node refuses. The value may hold a credential, so only the name is reported.
      return `pg_net look-alike: header "${name}" is not a valid HTTP header`;
    }
    flat.push(name, value);
  }
  flat.push("User-Agent", `pg_net/${PG_NET_VERSION}`);
  // Node adds no Host to headers given as a list; libcurl sends one unless the caller did.
  if (!has("host")) flat.unshift("Host", url.host);
  if (!has("accept")) flat.push("Accept", "*/*");
  if (body !== null || method === "POST") {
    if (!has("content-length")) flat.push("Content-Length", String(body?.length ?? 0));
    if (body !== null && !has("content-type")) flat.push("Content-Type", "application/x-www-form-urlencoded");
  }
  return flat;
}

/** rawHeaders (latin1 strings, as Node reads them) as byte pairs. */
function headerPairs(raw: string[]): [Buffer, Buffer][] {
  const pairs: [Buffer, Buffer][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([Buffer.from(raw[i], "latin1"), Buffer.from(raw[i + 1], "latin1")]);
  return pairs;
}

/** The first value of a header (any letter case), as a latin1 string, or null. */
function headerValue(raw: string[], name: string): string | null {
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() === name) return raw[i + 1];
  return null;
}

function isDeadConnection(err: NodeJS.ErrnoException): boolean {
  return err.code === "ECONNRESET" || err.code === "EPIPE" || err.code === "ECONNABORTED";
}

/** Node's socket errors as the libcurl messages (curl_easy_strerror) pg_net stores in error_msg. */
function curlMessage(err: NodeJS.ErrnoException): string {
  const code = String(err.code ?? "");
  if (["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "EHOSTDOWN", "ENETDOWN"].includes(code))
    return "Couldn't connect to server";
  if (["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"].includes(code)) return "Couldn't resolve host name";
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
    return "SSL peer certificate or SSH remote key was not OK";
  if (code.startsWith("ERR_SSL") || code === "EPROTO") return "SSL connect error";
  // The peer closed without a byte of answer ("socket hang up") or reset the connection.
  if (code === "ECONNRESET" && err.message === "socket hang up") return "Server returned nothing (no headers, no data)";
  if (code === "ECONNRESET") return "Failure when receiving data from the peer";
  if (code === "EPIPE") return "Failed sending data to the peer";
  if (code.startsWith("HPE_")) return "Weird server reply";
  return `pg_net look-alike: ${code ? `${code}: ` : ""}${err.message}`;
}

/** pg_net's detailed_timeout_strerror() (src/errors.c), from the transfer's timings. */
function timeoutMessage(timeoutMs: number, t: Timings): string {
  const total = performance.now() - t.started;
  const atDns = t.namelookup === 0 && t.connect === 0;
  const atHandshake = !atDns && t.pretransfer === 0;
  const dns = atDns ? total : t.namelookup;
  const handshake = atDns ? 0 : atHandshake ? total - t.namelookup : t.connect - t.namelookup + (t.appconnect > 0 ? t.appconnect - t.connect : 0);
  const httpTime = atDns || atHandshake ? 0 : total - t.pretransfer;
  // libcurl's timers count microseconds; pg_net prints milliseconds with %f.
  const f = (ms: number) => (Math.round(ms * 1000) / 1000).toFixed(6);
  return (
    `Timeout of ${timeoutMs} ms reached. Total time: ${f(total)} ms (DNS time: ${f(dns)} ms, ` +
    `TCP/SSL handshake time: ${f(handshake)} ms, HTTP Request/Response time: ${f(httpTime)} ms)`
  );
}
