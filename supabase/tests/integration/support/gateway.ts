import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import { type Gateway, startGateway } from "../../../../scripts/dev-stack/gateway/gateway.ts";
import { LOCAL_ANON_KEY, LOCAL_SERVICE_ROLE_KEY, userJwt } from "../../../../scripts/dev-stack/gateway/keys.ts";
import { databaseUrl } from "./db.ts";

export interface TestGateway {
  gateway: Gateway;
  /** The temporary directory holding the storage files (and any test functions). */
  dir: string;
  storageDir: string;
  stop(): Promise<void>;
}

/** The local gateway on a free port, with its storage in a fresh temporary directory. */
export async function startTestGateway(
  options: { functionsDir?: string; configPath?: string; functionEnv?: Record<string, string> } = {},
): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-gateway-"));
  const storageDir = join(dir, "storage");
  const gateway = await startGateway({
    port: 0,
    databaseUrl: databaseUrl(),
    storageDir,
    functionsDir: options.functionsDir ?? join(dir, "functions"),
    configPath: options.configPath,
    functionEnv: options.functionEnv,
  });
  return {
    gateway,
    dir,
    storageDir,
    async stop() {
      await gateway.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// Node 20 has no WebSocket, which supabase-js wants for Realtime even when no channel is opened;
// these clients never subscribe, so a constructor that refuses to connect stands in for it.
class NoWebSocket {
  constructor() {
    throw new Error("these test clients do not open Realtime channels");
  }
}
const clientOptions = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: NoWebSocket as never },
};

/** The app's client for a signed-in user (the user's access token on every request). */
export function userClient(url: string, jwt: string): SupabaseClient {
  return createClient(url, LOCAL_ANON_KEY, { ...clientOptions, global: { headers: { Authorization: `Bearer ${jwt}` } } });
}

/** A client with no signed-in user: the anon key only. */
export function anonClient(url: string): SupabaseClient {
  return createClient(url, LOCAL_ANON_KEY, clientOptions);
}

/** A trusted server's client (service key, bypasses RLS). */
export function serviceClient(url: string): SupabaseClient {
  return createClient(url, LOCAL_SERVICE_ROLE_KEY, clientOptions);
}

/** A new auth user (the signup trigger gives it a profile) and its access token. */
export async function createUser(sql: postgres.Sql, label: string): Promise<{ id: string; jwt: string }> {
  const id = randomUUID();
  await sql`insert into auth.users (id, email) values (${id}, ${`${label}-${id}@storage.kiln.local`})`;
  return { id, jwt: userJwt(id) };
}

/** A tiny PNG (1x1) followed by `extra` bytes of padding, to reach a given size. */
export function png(extra = 0): Uint8Array<ArrayBuffer> {
  const base = Buffer.from(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
      "1f15c4890000000d49444154789c6360000002000105fe02fea70000000049454e44ae426082",
    "hex",
  );
  const bytes = new Uint8Array(new ArrayBuffer(base.length + extra)).fill(0x20);
  bytes.set(base);
  return bytes;
}

/**
 * A job of the user, started through start_generation and then marked completed with these
 * result paths (bucket first), as the callback function's completion leaves it: its pipeline row
 * finished too, or a later file's dispatch tick would still send it.
 */
export async function completedJob(sql: postgres.Sql, userId: string, resultPaths: (jobId: string) => string[]): Promise<string> {
  const jobId = (await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
    const [job] = await tx`select (public.start_generation(prompt => 'a lighthouse at dusk')).id`;
    return job.id as string;
  })) as string;
  await sql`update public.generation_jobs
               set status = 'completed', stage = 'completed', completed_at = now(), result_urls = ${resultPaths(jobId)}
             where id = ${jobId}`;
  await sql`update private.job_pipeline
               set stage = 'completed', task_id = ${`task-${jobId}`}, finished_at = now(), next_run_at = null
             where job_id = ${jobId}`;
  return jobId;
}
