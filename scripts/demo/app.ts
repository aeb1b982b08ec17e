import { randomUUID } from "node:crypto";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { PNG } from "pngjs";
import type { Sql } from "postgres";
import { LOCAL_ANON_KEY, userJwt } from "../dev-stack/gateway/keys.ts";

// What the app and the platform's servers do for one user, against the local stack: GoTrue's
// signup insert, a trusted server's credit grant, the app's Storage calls with the user's JWT,
// and RPCs made the way PostgREST makes them.

export interface JobRow {
  id: string;
  status: string;
  error_code: string | null;
  error_message: string | null;
  result_urls: string[] | null;
  credits_charged: number;
  model_key: string;
}

export interface LedgerLine {
  created_at: Date;
  kind: string;
  amount: number;
  balance_after: number;
  reason: string;
  job_id: string | null;
}

/** A user as GoTrue creates one on email signup: a row in auth.users written by the auth role. */
export async function signUp(auth: Sql, email: string): Promise<string> {
  const id = randomUUID();
  await auth`
    insert into auth.users (instance_id, id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                            is_anonymous, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated', ${email}, now(),
            '{"provider": "email", "providers": ["email"]}', '{}', false, now(), now())`;
  return id;
}

/** Runs `work` as PostgREST runs an RPC: one transaction, `role`, and the request's JWT claims. */
export function asRole<T>(sql: Sql, claims: { role: string; sub?: string }, work: (tx: Sql) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => {
    await tx.unsafe(`set local role ${claims.role === "service_role" ? "service_role" : "authenticated"}`);
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
    return work(tx as unknown as Sql);
  }) as Promise<T>;
}

/** A trusted server (service key) grants credits: `grant_credits` as the service role. */
export async function grantCredits(sql: Sql, userId: string, amount: number, reason: string): Promise<void> {
  await asRole(sql, { role: "service_role" }, (tx) => tx`select public.grant_credits(${userId}, ${amount}, ${reason}, ${`demo:${userId}`})`);
}

export interface StartArgs {
  prompt?: string;
  templateId?: string;
  imageUrls?: string[];
  style?: string;
}

/** `supabase.rpc('start_generation', …)` as PostgREST executes it for the signed-in user. */
export async function startGeneration(sql: Sql, userId: string, args: StartArgs): Promise<JobRow> {
  const [row] = await asRole(sql, { role: "authenticated", sub: userId }, (tx) => tx<JobRow[]>`
    select id, status, error_code, error_message, result_urls, credits_charged, model_key
      from public.start_generation(prompt => ${args.prompt ?? null}, template_id => ${args.templateId ?? null},
                                   image_urls => ${args.imageUrls ?? null}, style => ${args.style ?? null})`);
  return row;
}

/** The user's own rows through RLS, as the app reads them. */
export async function myJobs(sql: Sql, userId: string, ids: string[]): Promise<JobRow[]> {
  return asRole(sql, { role: "authenticated", sub: userId }, (tx) => tx<JobRow[]>`
    select id, status, error_code, error_message, result_urls, credits_charged, model_key
      from public.generation_jobs where id = any(${ids}::uuid[])`);
}

export async function myCredits(sql: Sql, userId: string): Promise<number> {
  const [row] = await asRole(sql, { role: "authenticated", sub: userId }, (tx) => tx<{ credits: number }[]>`
    select credits from public.profiles where id = ${userId}`);
  if (!row) throw new Error("the user has no profile (the signup trigger did not run)");
  return row.credits;
}

export async function myLedger(sql: Sql, userId: string): Promise<LedgerLine[]> {
  return asRole(sql, { role: "authenticated", sub: userId }, (tx) => tx<LedgerLine[]>`
    select created_at, kind, amount, balance_after, reason, job_id from public.credit_ledger order by id`);
}

// Node 20 has no WebSocket, which supabase-js wants for Realtime even when no channel is opened.
// The demo reads the change stream Realtime reads itself (follow.ts), so the client never
// subscribes: a constructor that refuses to connect stands in for it.
class NoWebSocket {
  constructor() {
    throw new Error("the demo's client opens no Realtime channel");
  }
}

/** The app's Supabase client for the signed-in user (storage-js for Storage). */
export function appClient(url: string, userId: string): SupabaseClient {
  return createClient(url, LOCAL_ANON_KEY, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: NoWebSocket as never },
    global: { headers: { Authorization: `Bearer ${userJwt(userId)}` } },
  });
}

/** A made-up photo: a warm gradient with a dark disc, so image-to-image results show their input. */
export function photo(size = 256): Buffer {
  const png = new PNG({ width: size, height: size });
  const c = size / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 4;
      const disc = (x - c) ** 2 + (y - c * 0.9) ** 2 < (size / 4) ** 2;
      png.data.set(disc ? [40, 30, 60, 255] : [230, Math.round(120 + (100 * y) / size), Math.round((80 * x) / size), 255], i);
    }
  }
  return PNG.sync.write(png);
}

/**
 * Uploads the photo to user-uploads/<uid>/ with the user's JWT and signs it, as the app does. A
 * new name per upload, never an upsert: a retention delete of an old name cannot take it.
 */
export async function uploadPhoto(client: SupabaseClient, userId: string): Promise<{ path: string; signedUrl: string }> {
  const bucket = client.storage.from("user-uploads");
  const path = `${userId}/portrait-${randomUUID()}.png`;
  const upload = await bucket.upload(path, photo(), { contentType: "image/png" });
  if (upload.error) throw new Error(`upload refused: ${upload.error.message}`);
  const signed = await bucket.createSignedUrl(path, 3600);
  if (signed.error || !signed.data) throw new Error(`signing the upload failed: ${signed.error?.message}`);
  return { path: `user-uploads/${path}`, signedUrl: signed.data.signedUrl };
}

/** Fresh signed URLs for a job's results (`createSignedUrls`, as the app shows them), downloaded. */
export async function downloadResults(client: SupabaseClient, resultUrls: string[]): Promise<{ path: string; bytes: Buffer }[]> {
  const paths = resultUrls.map((p) => p.replace(/^generated-images\//, ""));
  const { data, error } = await client.storage.from("generated-images").createSignedUrls(paths, 600);
  if (error || !data) throw new Error(`signing the results failed: ${error?.message}`);
  return Promise.all(data.map(async (item) => {
    if (item.error || !item.signedUrl) throw new Error(`signing ${item.path} failed: ${item.error}`);
    const res = await fetch(item.signedUrl);
    if (!res.ok) throw new Error(`downloading ${item.path}: HTTP ${res.status}`);
    return { path: item.path ?? "", bytes: Buffer.from(await res.arrayBuffer()) };
  }));
}
