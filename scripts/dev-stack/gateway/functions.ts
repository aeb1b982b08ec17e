/**
 * The gateway's `/functions/v1/<name>` route: each function in the functions directory
 * (`<name>/index.ts`) runs in its own Deno process, started on the first request and kept until
 * the gateway stops, as `supabase functions serve` does. The function sees the path without the
 * `/functions/v1` prefix (`/<name>/...`), as on the platform. Unless config.toml says
 * `verify_jwt = false` for it, a request needs a valid JWT (any API role), as on the platform.
 * Development only.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { JwtError, verifyJwt } from "./keys.ts";

export interface FunctionsOptions {
  /** The directory holding `<name>/index.ts` (the repository's supabase/functions). */
  functionsDir: string;
  /** Path of config.toml for `[functions.<name>] verify_jwt`; absent file: every function verifies. */
  configPath?: string;
  /** The Deno binary (default: the one npm installed). */
  denoBin?: string;
  /** Extra environment for the functions (SUPABASE_URL, keys, SUPABASE_DB_URL), read at each start. */
  env: () => Record<string, string>;
  jwtSecret?: string;
  /** How long a function may take to start listening (ms). */
  startTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface FunctionsHost {
  handle(request: Request, name: string, rest: string): Promise<Response>;
  stop(): Promise<void>;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const RUNNER = join(dirname(fileURLToPath(import.meta.url)), "function-runner.ts");
const READY_LINE = "kiln-function-ready";
const NAME = /^[A-Za-z0-9_-]+$/;

/** `verify_jwt` per function from config.toml's `[functions.<name>]` tables (default true). */
export function readVerifyJwt(configToml: string): Map<string, boolean> {
  const result = new Map<string, boolean>();
  let current: string | null = null;
  for (const line of configToml.split("\n")) {
    const table = /^\s*\[\s*functions\.(?:"([^"]+)"|([A-Za-z0-9_-]+))\s*\]/.exec(line);
    if (table) {
      current = table[1] ?? table[2];
      continue;
    }
    if (/^\s*\[/.test(line)) {
      current = null;
      continue;
    }
    const setting = /^\s*verify_jwt\s*=\s*(true|false)\b/.exec(line);
    if (current && setting) result.set(current, setting[1] === "true");
  }
  return result;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

interface Running {
  process: ChildProcess;
  port: number;
}

function jsonError(status: number, message: string): Response {
  return Response.json({ code: status, message }, { status });
}

export function createFunctionsHost(options: FunctionsOptions): FunctionsHost {
  const denoBin = options.denoBin ?? join(ROOT, "node_modules/.bin/deno");
  const log = options.log ?? (() => {});
  const running = new Map<string, Promise<Running>>();

  function verifyJwtFor(name: string): boolean {
    if (!options.configPath || !existsSync(options.configPath)) return true;
    return readVerifyJwt(readFileSync(options.configPath, "utf8")).get(name) ?? true;
  }

  async function start(name: string, entry: string): Promise<Running> {
    const port = await freePort();
    const child = spawn(
      denoBin,
      ["run", "--allow-net", "--allow-env", "--allow-read", "--no-prompt", RUNNER, pathToFileURL(entry).href],
      {
        cwd: dirname(entry),
        env: {
          // Deno ships its own CA list; the system store too lets npm: imports resolve behind a TLS proxy.
          DENO_TLS_CA_STORE: "system,mozilla",
          ...process.env,
          ...options.env(),
          KILN_FUNCTION_PORT: String(port),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stderr?.on("data", (chunk: Buffer) => log(`[${name}] ${chunk.toString().trimEnd()}`));
    child.on("exit", () => running.delete(name));
    await new Promise<void>((ready, failed) => {
      const timer = setTimeout(() => failed(new Error(`function ${name} did not start listening in time`)), options.startTimeoutMs ?? 30_000);
      let buffered = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        const text = chunk.toString();
        buffered += text;
        for (const line of text.split("\n")) if (line && line !== READY_LINE) log(`[${name}] ${line}`);
        if (buffered.includes(READY_LINE)) {
          clearTimeout(timer);
          ready();
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        failed(new Error(`function ${name} exited with code ${code} before listening`));
      });
    });
    log(`function ${name} listening on 127.0.0.1:${port}`);
    return { process: child, port };
  }

  async function handle(request: Request, name: string, rest: string): Promise<Response> {
    const entry = join(options.functionsDir, name, "index.ts");
    if (!NAME.test(name) || !existsSync(entry)) return jsonError(404, "Requested function was not found");
    if (verifyJwtFor(name)) {
      const header = request.headers.get("authorization");
      if (!header) return jsonError(401, "Missing authorization header");
      try {
        verifyJwt(header.replace(/^bearer\s+/i, ""), options.jwtSecret);
      } catch (err) {
        if (err instanceof JwtError) return jsonError(401, "Invalid JWT");
        throw err;
      }
    }
    let pending = running.get(name);
    if (!pending) {
      pending = start(name, entry);
      running.set(name, pending);
      pending.catch(() => running.delete(name));
    }
    let fn: Running;
    try {
      fn = await pending;
    } catch (err) {
      return jsonError(503, (err as Error).message);
    }
    const headers = new Headers(request.headers);
    headers.delete("host");
    headers.delete("connection");
    const target = `http://127.0.0.1:${fn.port}/${name}${rest}${new URL(request.url).search}`;
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    let response: Response;
    try {
      response = await fetch(target, {
        method: request.method,
        headers,
        body: hasBody ? request.body : undefined,
        redirect: "manual",
        ...(hasBody ? { duplex: "half" } : {}),
      } as RequestInit);
    } catch (err) {
      return jsonError(502, `function ${name} is not reachable: ${(err as Error).message}`);
    }
    // fetch has already decoded the body: drop the headers that describe the encoded one.
    const out = new Headers(response.headers);
    for (const h of ["content-encoding", "content-length", "transfer-encoding", "connection"]) out.delete(h);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers: out });
  }

  async function stop(): Promise<void> {
    const all = await Promise.allSettled([...running.values()]);
    await Promise.all(all.map(async (r) => {
      if (r.status !== "fulfilled" || r.value.process.exitCode !== null) return;
      const child = r.value.process;
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }));
    running.clear();
  }

  return { handle, stop };
}
