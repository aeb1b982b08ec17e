/**
 * The local platform gateway: one base URL like a hosted project's (`SUPABASE_URL`, default
 * http://127.0.0.1:54321), bound to loopback. Development and tests only; nothing here deploys.
 *
 *   /storage/v1/...          the Storage API stand-in (storage.ts)
 *   /functions/v1/<name>/... the Edge Function `supabase/functions/<name>/index.ts` under Deno (functions.ts)
 *   /rest/v1/...             404: there is no PostgREST locally (tests call RPCs as PostgREST does)
 *
 * Library: `startGateway({...})`. CLI: `tsx scripts/dev-stack/gateway/main.ts --help`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import postgres from "postgres";
import { createFunctionsHost } from "./functions.ts";
import { LOCAL_ANON_KEY, LOCAL_JWT_SECRET, LOCAL_SERVICE_ROLE_KEY } from "./keys.ts";
import { createStorageHandler } from "./storage.ts";

export interface GatewayOptions {
  databaseUrl: string;
  /** Where the Storage stand-in keeps object files. */
  storageDir: string;
  /** The directory of Edge Functions (`<name>/index.ts`). */
  functionsDir: string;
  /** config.toml, for `[functions.<name>] verify_jwt`. */
  configPath?: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Extra environment for the functions. */
  functionEnv?: Record<string, string>;
  log?: (line: string) => void;
}

export interface Gateway {
  /** The base URL, e.g. http://127.0.0.1:54321 (what SUPABASE_URL is on the platform). */
  url: string;
  port: number;
  /**
   * Fault injection for tests: the next `failUploads` Storage uploads (POST or PUT on
   * /storage/v1/object/...) answer 500 as a failing Storage server would, and store nothing;
   * the next `failDeletes` bulk deletes (DELETE /storage/v1/object/<bucket>) likewise, and delete
   * nothing.
   */
  faults: { failUploads: number; failDeletes: number };
  stop(): Promise<void>;
}

function toRequest(req: IncomingMessage, base: string): Request {
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    headers.set(key, Array.isArray(value) ? value.join(", ") : value);
  }
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  return new Request(new URL(req.url ?? "/", base), {
    method: req.method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    ...(hasBody ? { duplex: "half" } : {}),
  } as RequestInit);
}

async function send(res: ServerResponse, response: Response): Promise<void> {
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (!response.body) {
    res.end();
    return;
  }
  await new Promise<void>((done, failed) => {
    Readable.fromWeb(response.body as import("node:stream/web").ReadableStream).on("error", failed).pipe(res).on("finish", done);
  });
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const log = options.log ?? (() => {});
  const sql = postgres(options.databaseUrl, { max: 10, onnotice: () => {} });
  const storage = createStorageHandler({ sql, dataDir: options.storageDir, jwtSecret: LOCAL_JWT_SECRET });
  let base = "";
  const faults = { failUploads: 0, failDeletes: 0 };
  const functions = createFunctionsHost({
    functionsDir: options.functionsDir,
    configPath: options.configPath,
    jwtSecret: LOCAL_JWT_SECRET,
    log,
    env: () => ({
      SUPABASE_URL: base,
      SUPABASE_ANON_KEY: LOCAL_ANON_KEY,
      SUPABASE_SERVICE_ROLE_KEY: LOCAL_SERVICE_ROLE_KEY,
      SUPABASE_DB_URL: options.databaseUrl,
      ...options.functionEnv,
    }),
  });

  const server = createServer(async (req, res) => {
    try {
      const request = toRequest(req, base);
      const path = new URL(request.url).pathname;
      let response: Response;
      let m: RegExpExecArray | null;
      if ((m = /^\/storage\/v1(\/.*)$/.exec(path))) {
        if (faults.failUploads > 0 && /^\/object\/(?!sign|list|info|public|authenticated)/.test(m[1]) && ["POST", "PUT"].includes(request.method)) {
          faults.failUploads--;
          response = Response.json({ statusCode: "500", error: "internal", message: "injected storage fault" }, { status: 500 });
        } else if (faults.failDeletes > 0 && /^\/object\/[^/]+\/?$/.test(m[1]) && request.method === "DELETE") {
          faults.failDeletes--;
          response = Response.json({ statusCode: "500", error: "internal", message: "injected storage fault" }, { status: 500 });
        } else {
          response = await storage(request, m[1]);
        }
      } else if ((m = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(path))) {
        response = await functions.handle(request, decodeURIComponent(m[1]), m[2] ?? "");
      } else if (/^\/rest\/v1(\/|$)/.test(path)) {
        response = Response.json({ message: "PostgREST does not run in the local stack" }, { status: 404 });
      } else {
        response = Response.json({ message: "no route matched" }, { status: 404 });
      }
      await send(res, response);
    } catch (err) {
      log(`gateway error on ${req.method} ${req.url}: ${(err as Error).stack ?? err}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: "internal gateway error" }));
    }
  });

  await new Promise<void>((ready, failed) => {
    server.once("error", failed);
    server.listen(options.port, "127.0.0.1", () => ready());
  });
  const port = (server.address() as { port: number }).port;
  base = `http://127.0.0.1:${port}`;
  log(`gateway listening on ${base}`);

  return {
    url: base,
    port,
    faults,
    async stop() {
      await new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      });
      await functions.stop();
      await sql.end({ timeout: 5 });
    },
  };
}
