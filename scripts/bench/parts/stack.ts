/**
 * The whole pipeline on the bench cluster, for parts 2, 3 and 5: the KIE emulator (in this
 * process), the gateway with the kie-callback function under Deno, and the dev workers (the
 * pg_net look-alike worker and the tick driver) as their own processes so their memory can be
 * read. Vault secrets and settings point the pipeline at them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { type Gateway, startGateway } from "../../dev-stack/gateway/gateway.ts";
import { type KieEmulator, startKieEmulator } from "../../dev-stack/kie-emulator/server.ts";
import type { Rate } from "../../dev-stack/kie-emulator/options.ts";
import { PG_NET_WORKER_APPLICATION_NAME } from "../../dev-stack/pg-net-worker.ts";
import { TICK_DRIVER_APPLICATION_NAME } from "../../dev-stack/tick-driver.ts";
import { findDescendant } from "./memory.ts";
import type { Context } from "./types.ts";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const BENCH_FUNCTIONS = join(ROOT, "scripts/bench/functions");

export interface StackOptions {
  createRate: Rate;
  pollRate: Rate;
  /** The engine's budgets: dispatch.create_per_window / create_window_seconds, poll.per_window / window_seconds. */
  createBudget: { perWindow: number; windowSeconds: number };
  pollBudget: { perWindow: number; windowSeconds: number };
  firstPollSeconds: number;
  imageSize: number;
  /** Start the tick driver (registry cadence); without it the part runs ticks itself. */
  tickDriver: boolean;
}

export interface Stack {
  sql: postgres.Sql;
  kie: KieEmulator;
  gateway: Gateway;
  pids: { "pg_net worker": number; "tick driver": number | null };
  /** The Deno process of a function, once it has served a request. */
  functionPid(name: string): Promise<number | null>;
  /** A plan without per-user limits in the way, and `count` users on it with credits. */
  users(count: number): Promise<string[]>;
  /** start_generation as PostgREST calls it, for the user; resolves with the job id after commit. */
  start(userId: string, prompt: string): Promise<string>;
  stop(): Promise<void>;
}

function spawnWorker(script: string, databaseUrl: string, extra: string[], log: (m: string) => void): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, script), "--database-url", databaseUrl, ...extra], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.on("data", (chunk: Buffer) => log(`${script}: ${chunk.toString().trimEnd()}`));
  return child;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

function callbackDatabaseUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.username = "kiln_callback";
  url.password = "";
  return url.toString();
}

export async function startStack(context: Context, options: StackOptions): Promise<Stack> {
  const sql = postgres(context.databaseUrl, { max: 8, onnotice: () => {} });
  const suffix = randomUUID().slice(0, 8);
  const kieKey = `kie-bench-${suffix}`;
  const finalize = randomBytes(32).toString("hex");
  const dir = await mkdtemp(join(tmpdir(), "kiln-bench-stack-"));
  const storageDir = join(dir, "storage");
  // The gateway's functions directory: links to the real kie-callback and the do-nothing baseline.
  // Deno runs each from its real directory, so it finds the repository's deno.json (import map).
  const functionsDir = join(dir, "functions");
  await mkdir(functionsDir);
  await symlink(join(ROOT, "supabase/functions/kie-callback"), join(functionsDir, "kie-callback"));
  await symlink(join(ROOT, "supabase/functions/_shared"), join(functionsDir, "_shared"));
  await symlink(join(BENCH_FUNCTIONS, "bench-noop"), join(functionsDir, "bench-noop"));
  const kie = await startKieEmulator({
    apiKeys: [kieKey],
    taskMs: 0,
    createRate: options.createRate,
    pollRate: options.pollRate,
    callbackRetryMs: [200, 500],
    imageSize: options.imageSize,
  });
  const gateway = await startGateway({
    port: 0,
    databaseUrl: context.databaseUrl,
    storageDir,
    functionsDir,
    configPath: join(BENCH_FUNCTIONS, "config.toml"),
    // The function's own login where the schema has one (kiln_callback; loopback needs no password).
    functionEnv: { KILN_FINALIZE_CREDENTIAL: finalize, KILN_CALLBACK_DB_URL: callbackDatabaseUrl(context.databaseUrl) },
    log: (line) => /error|fail/i.test(line) && context.log(`gateway: ${line}`),
  });

  // Jobs, requests and alerts left by earlier parts (tick-cost's active jobs, its alerts) would
  // compete for the budgets or pause dispatch: the pipeline starts empty. Ledger rows go with the
  // jobs (cascade); the users made below get theirs afterwards.
  const admin = postgres(context.adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.begin(async (tx) => {
      // As the tick-cost fixtures do: the ledger's append-only trigger stays out of a reset.
      await tx`set local session_replication_role = replica`;
      await tx`truncate public.generation_jobs, private.job_pipeline, private.requests, private.late_results,
                        private.result_purges, private.alerts, net._http_response, net.http_request_queue cascade`;
    });
  } finally {
    await admin.end();
  }
  // Part 1 removes the pg_cron jobs to keep ticks out of its numbers; the tick driver finds the
  // ticks through them.
  await sql`select private.schedule_ticks()`;
  const setting = (key: string, value: unknown) => sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
  await setting("kie.base_url", kie.url);
  // The emulator serves the result files (a no-op where results.allowed_hosts does not exist).
  await sql`update private.settings set value = value || ${sql.json(kie.url)}
             where key = 'results.allowed_hosts' and not value ? ${kie.url}`;
  await setting("dispatch.create_per_window", options.createBudget.perWindow);
  await setting("dispatch.create_window_seconds", options.createBudget.windowSeconds);
  await setting("poll.per_window", options.pollBudget.perWindow);
  await setting("poll.window_seconds", options.pollBudget.windowSeconds);
  await setting("poll.first_after_seconds", options.firstPollSeconds);
  await sql`update private.rate_slots set available_at = '-infinity'`;
  const secrets = ["kie_api_key", "functions_base_url", "finalize_credential"];
  await sql`delete from vault.secrets where name = any(${secrets})`;
  await sql`select vault.create_secret(${kieKey}, 'kie_api_key'),
                   vault.create_secret(${`${gateway.url}/functions/v1`}, 'functions_base_url'),
                   vault.create_secret(${finalize}, 'finalize_credential')`;

  const worker = spawnWorker("scripts/dev-stack/pg-net-worker.ts", context.adminUrl, ["--quiet"], context.log);
  // As pg_cron runs them: a superuser session that switches to each job's user (and records the run).
  const driver = options.tickDriver ? spawnWorker("scripts/dev-stack/tick-driver.ts", context.adminUrl, [], context.log) : null;
  const connected = async (name: string) =>
    (await sql`select 1 from pg_stat_activity where application_name = ${name}`).length > 0;
  await waitFor(() => connected(PG_NET_WORKER_APPLICATION_NAME), "the pg_net worker to connect");
  if (driver) await waitFor(() => connected(TICK_DRIVER_APPLICATION_NAME), "the tick driver to connect");

  // The functions' Deno processes start on their first request: start them outside the timings.
  for (const name of ["kie-callback", "bench-noop"]) {
    await fetch(`${gateway.url}/functions/v1/${name}`, { method: "POST", body: "{}" }).then((r) => r.arrayBuffer());
  }

  const planId = `bench_${suffix}`;
  let planMade = false;
  return {
    sql,
    kie,
    gateway,
    pids: { "pg_net worker": worker.pid!, "tick driver": driver?.pid ?? null },
    functionPid: (name) => findDescendant(process.pid, `${name}/index.ts`),
    async users(count) {
      if (!planMade) {
        const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 as rank from public.plans`;
        await sql`insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
                  values (${planId}, 'Bench', ${rank}, 1000, 1000, 0, true)`;
        planMade = true;
      }
      const ids = Array.from({ length: count }, () => randomUUID());
      await sql`insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                select id, 'authenticated', 'authenticated', 'bench-' || id || '@bench.kiln.local', '{}', '{}', now(), now()
                  from unnest(${ids}::uuid[]) as id`;
      await sql.begin(async (tx) => {
        await tx`set local role service_role`;
        await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
        await tx`select public.set_plan(id, ${planId}), public.grant_credits(id, 100000, 'bench credits') from unnest(${ids}::uuid[]) as id`;
      });
      return ids;
    },
    async start(userId, prompt) {
      const [job] = await sql.begin(async (tx) => {
        await tx`set local role authenticated`;
        await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
        return tx<{ id: string }[]>`select id from public.start_generation(prompt => ${prompt})`;
      });
      return job.id;
    },
    async stop() {
      await stopChild(driver);
      await stopChild(worker);
      await gateway.stop();
      await kie.close();
      await sql.end({ timeout: 5 });
      await rm(dir, { recursive: true, force: true });
    },
  };
}
