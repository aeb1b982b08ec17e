/**
 * The whole local pipeline in one process, for the end-to-end suites and the soak run: the KIE
 * emulator, the gateway (Storage stand-in and the kie-callback function under Deno), pg_net's
 * worker (the look-alike's, or the real one's: support/net-worker.ts), and ticks driven by the
 * caller (with an explicit `at` where the clock must move). Plus the invariants every run must
 * keep (see `checkInvariants`).
 *
 * No test framework here: the soak run uses it too.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import type postgres from "postgres";
import { userJwt } from "../../../../scripts/dev-stack/gateway/keys.ts";
import type { KieEmulatorOptions } from "../../../../scripts/dev-stack/kie-emulator/options.ts";
import { type KieEmulator, startKieEmulator } from "../../../../scripts/dev-stack/kie-emulator/server.ts";
import { pauseCronJobs } from "./cron.ts";
import { connect, databaseUrl } from "./db.ts";
import { startTestGateway, type TestGateway, userClient } from "./gateway.ts";
import { type NetWorker, startNetWorker } from "./net-worker.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const SECRETS = ["kie_api_key", "functions_base_url", "finalize_credential"];

export type Status = "pending" | "generating" | "completed" | "failed";
export interface JobRow {
  id: string;
  user_id: string;
  status: Status;
  error_code: string | null;
  result_urls: string[];
  model_key: string;
}

export interface StartOptions {
  prompt?: string;
  quality?: "fast" | "standard" | "ultra";
  templateId?: string;
  imageUrls?: string[];
  aspectRatio?: string;
}

export interface PipelineOptions {
  kie?: Partial<KieEmulatorOptions>;
  /** Settings changed for the whole run (restored by stop()). */
  settings?: Record<string, unknown>;
  log?: (line: string) => void;
}

export interface InvariantOptions {
  /** A scenario that forced 429s (a lowered emulator rate) may see them. */
  allow429?: boolean;
  /** Extra seconds past deadline + final grace a job may finish (ticks run every 100 ms here). */
  slackSeconds?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The callback function connects as its own login role (loopback is trusted: no password locally). */
export function callbackDatabaseUrl(): string {
  const url = new URL(databaseUrl());
  url.username = "kiln_callback";
  url.password = "";
  return url.toString();
}

export class Pipeline {
  readonly sql: postgres.Sql;
  readonly suffix = randomUUID().replaceAll("-", "").slice(0, 12);
  readonly planId = `e2e_${this.suffix}`;
  readonly kieKey = `kie-e2e-${this.suffix}`;
  readonly finalize = randomBytes(32).toString("hex");
  templateId = "";
  kie!: KieEmulator;
  stack!: TestGateway;
  private worker: NetWorker | undefined;
  readonly users: string[] = [];
  private savedSettings = new Map<string, unknown>();
  private savedSecrets: { name: string; secret: string; description: string }[] | null = null;
  private resumeCronJobs = async () => {};
  private runSettings = new Map<string, unknown>();
  readonly log: (line: string) => void;

  private constructor(readonly options: PipelineOptions) {
    this.sql = connect({ max: 6 });
    this.log = options.log ?? (() => {});
  }

  static async start(options: PipelineOptions = {}): Promise<Pipeline> {
    const p = new Pipeline(options);
    try {
      await p.setUp();
    } catch (err) {
      await p.stop().catch(() => {});
      throw err;
    }
    return p;
  }

  private async setUp() {
    const { sql } = this;
    this.kie = await startKieEmulator({ taskMs: 300, callbackRetryMs: [200, 500], imageSize: 64, ...this.options.kie, apiKeys: [this.kieKey] });
    this.stack = await startTestGateway({
      functionsDir: join(ROOT, "supabase/functions"),
      configPath: join(ROOT, "supabase/config.toml"),
      functionEnv: { KILN_FINALIZE_CREDENTIAL: this.finalize, KILN_CALLBACK_DB_URL: callbackDatabaseUrl() },
    });
    await this.setSetting("kie.base_url", this.kie.url);
    // A dropped callback is noticed after a second, not 15 s.
    await this.setSetting("poll.first_after_seconds", 1);
    const [{ value: hosts }] = await sql<{ value: string[] }[]>`select value from private.settings where key = 'images.allowed_hosts'`;
    await this.setSetting("images.allowed_hosts", [...hosts, this.stack.gateway.url]);
    // The emulator serves the result files: its origin is an accepted result host.
    const [{ value: resultHosts }] = await sql<{ value: string[] }[]>`select value from private.settings where key = 'results.allowed_hosts'`;
    await this.setSetting("results.allowed_hosts", [...resultHosts, this.kie.url]);
    for (const [key, value] of Object.entries(this.options.settings ?? {})) await this.setSetting(key, value);
    const current = await sql<{ key: string; value: unknown }[]>`select key, value from private.settings where key = any(${[...this.savedSettings.keys()]})`;
    this.runSettings = new Map(current.map((r) => [r.key, r.value]));
    await sql`update private.rate_slots set available_at = '-infinity'`;
    await this.installSecrets();
    // pg_cron's own minute runs of the ticks would act behind a scenario's back (the account
    // tick lifting a 402 pause it asserts, a poll tick holding the row a deadline tick must
    // take); the suites run each tick when they mean to.
    this.resumeCronJobs = await pauseCronJobs(sql, "kiln-%");
    await sql`delete from private.alerts`;

    const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
    await sql`insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
              values (${this.planId}, 'End-to-end test', ${rank}, 10000, 10000, 0, true)`;
    [{ id: this.templateId }] = await sql<{ id: string }[]>`
      insert into public.templates (name, category, prompt_template, is_active)
      values (${`End-to-end ${this.suffix}`}, 'test', 'the same photo as a watercolour painting', true) returning id`;
    await this.startWorker();
    // The function's Deno process starts on its first request: start it now, outside any timing.
    const warm = await fetch(`${this.stack.gateway.url}/functions/v1/kie-callback`, { method: "POST", body: "{}" });
    if (warm.status !== 400) throw new Error(`kie-callback warm-up answered ${warm.status}`);
  }

  /** Starts pg_net's worker: the look-alike's, or the real extension's, thawed (support/net-worker.ts). */
  async startWorker() {
    this.worker = await startNetWorker();
  }

  async stopWorker() {
    await this.worker?.stop();
    this.worker = undefined;
  }

  private async installSecrets() {
    const { sql } = this;
    this.savedSecrets ??= await sql<{ name: string; secret: string; description: string }[]>`select name, secret, description from vault.secrets where name = any(${SECRETS})`;
    await sql`delete from vault.secrets where name = any(${SECRETS})`;
    await sql`select vault.create_secret(${this.kieKey}, 'kie_api_key'),
                     vault.create_secret(${`${this.stack.gateway.url}/functions/v1`}, 'functions_base_url'),
                     vault.create_secret(${this.finalize}, 'finalize_credential')`;
  }

  async stop() {
    const { sql } = this;
    try {
      await this.stopWorker();
      if (this.savedSecrets) {
        await sql`delete from vault.secrets where name = any(${SECRETS})`;
        for (const { name, secret, description } of this.savedSecrets) await sql`select vault.create_secret(${secret}, ${name}, ${description})`;
      }
      for (const [key, value] of this.savedSettings) await sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
      await sql`delete from private.alerts`;
      for (const id of this.users) await sql`delete from auth.users where id = ${id}`;
      await sql`delete from public.plans where id = ${this.planId}`;
      if (this.templateId) await sql`delete from public.templates where id = ${this.templateId}`;
    } finally {
      try {
        // Last, once the settings and secrets are back: a minute run in between would act on the run's.
        await this.resumeCronJobs();
      } finally {
        await this.stack?.stop();
        await this.kie?.close();
        await sql.end({ timeout: 5 });
      }
    }
  }

  /** Changes a setting; the first value seen is restored by stop(), the run's by restoreScenario(). */
  async setSetting(key: string, value: unknown) {
    const { sql } = this;
    if (!this.savedSettings.has(key)) {
      const [row] = await sql<{ value: unknown }[]>`select value from private.settings where key = ${key}`;
      if (!row) throw new Error(`no setting ${key}`);
      this.savedSettings.set(key, row.value);
    }
    await sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
  }

  async setSecret(name: string, value: string) {
    await this.sql`select vault.update_secret(id, ${value}) from vault.secrets where name = ${name}`;
  }

  /**
   * Back to the run's shared state after a scenario: settings, Vault secrets, alerts, emulator
   * (tasks, counters, faults, config), a running worker, and rate slots that a scenario's
   * clock moved into the future (counted as taken now, so the real KIE window is still kept;
   * tokens held by unanswered requests stay held).
   */
  async restoreScenario() {
    const { sql } = this;
    for (const [key, value] of this.savedSettings) {
      const runValue = this.runSettings.has(key) ? this.runSettings.get(key) : value;
      await sql`update private.settings set value = ${sql.json(runValue as never)} where key = ${key}`;
    }
    await this.installSecrets();
    await this.settle();
    await sql`delete from private.alerts`;
    await sql`update private.rate_slots set available_at = now() + interval '10 seconds' where available_at > now() + interval '10 seconds' and available_at <> 'infinity'`;
    this.kie.state.reset();
    if (!this.worker) await this.startWorker();
  }

  /**
   * Waits (up to 5 s) until every request sent so far is reconciled, so a response of one
   * scenario (a credit check lifting a pause) cannot land in the next one.
   */
  async settle() {
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      await this.sql`select private.reconcile_tick()`;
      const [{ n }] = await this.sql<{ n: number }[]>`select count(*)::int as n from private.requests where resolved_at is null`;
      if (n === 0) return;
      await sleep(100);
    }
  }

  /** A user on the run's plan (every model allowed) with `credits`. */
  async createUser(credits: number, planId = this.planId): Promise<string> {
    const id = randomUUID();
    await this.sql`insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                   values (${id}, 'authenticated', 'authenticated', ${`e2e-${id}@test.kiln.local`}, '{}', '{}', now(), now())`;
    this.users.push(id);
    await this.sql.begin(async (tx) => {
      await tx`set local role service_role`;
      await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
      await tx`select public.set_plan(${id}, ${planId})`;
      if (credits > 0) await tx`select public.grant_credits(${id}, ${credits}, 'end-to-end test credits')`;
    });
    return id;
  }

  /** start_generation as PostgREST calls it for the user. */
  async startJob(userId: string, o: StartOptions): Promise<string> {
    const [job] = await this.sql.begin(async (tx) => {
      await tx`set local role authenticated`;
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
      return tx<{ id: string }[]>`
        select id from public.start_generation(
          prompt => ${o.prompt ?? null}, template_id => ${o.templateId ?? null}, image_urls => ${o.imageUrls ?? null},
          quality => ${o.quality ?? "fast"}, aspect_ratio => ${o.aspectRatio ?? null})`;
    });
    return job.id;
  }

  /** Uploads a small photo to the user's folder and returns a signed URL of it (the app's input). */
  async uploadPhoto(userId: string): Promise<string> {
    const photo = new PNG({ width: 16, height: 16 });
    for (let i = 0; i < photo.data.length; i += 4) photo.data.set([255, 0, 0, 255], i);
    const uploads = userClient(this.stack.gateway.url, userJwt(userId)).storage.from("user-uploads");
    const path = `${userId}/${randomUUID()}.png`;
    const up = await uploads.upload(path, PNG.sync.write(photo), { contentType: "image/png" });
    if (up.error) throw up.error;
    const signed = await uploads.createSignedUrl(path, 3600);
    if (signed.error) throw signed.error;
    return signed.data.signedUrl;
  }

  async jobs(ids: string[]): Promise<JobRow[]> {
    return this.sql<JobRow[]>`
      select id, user_id, status, error_code, result_urls, model_key from public.generation_jobs where id = any(${ids})`;
  }

  async job(id: string): Promise<JobRow> {
    return (await this.jobs([id]))[0];
  }

  async taskIdOf(id: string): Promise<string | null> {
    const [row] = await this.sql<{ task_id: string | null }[]>`select task_id from private.job_pipeline where job_id = ${id}`;
    return row?.task_id ?? null;
  }

  /** One round of the ticks the tick driver runs (the account tick only when asked). */
  async tick(at?: Date, account = false) {
    const t = at ?? null;
    await this.sql`select private.reconcile_tick(coalesce(${t}::timestamptz, now())),
                          private.dispatch_tick(coalesce(${t}::timestamptz, now())),
                          private.poll_tick(coalesce(${t}::timestamptz, now())),
                          private.deadline_tick(coalesce(${t}::timestamptz, now()))`;
    if (account) await this.sql`select private.account_tick(coalesce(${t}::timestamptz, now()))`;
  }

  /**
   * Ticks every `everyMs` until `done()` holds. `at` gives the clock each round (default: now);
   * the error names the jobs' pipeline rows.
   */
  async tickUntil(
    done: () => Promise<boolean>,
    o: { timeoutMs?: number; everyMs?: number; at?: () => Date; account?: boolean; jobs?: string[] } = {},
  ): Promise<void> {
    const deadline = Date.now() + (o.timeoutMs ?? 15_000);
    for (;;) {
      if (await done()) return;
      if (Date.now() > deadline) {
        const rows = o.jobs?.length
          ? await this.sql`select job_id, stage, attempt, retries, last_error from private.job_pipeline where job_id = any(${o.jobs})`
          : [];
        throw new Error(`condition not met after ${o.timeoutMs ?? 15_000} ms: ${JSON.stringify(rows)}`);
      }
      await this.tick(o.at?.(), o.account);
      await sleep(o.everyMs ?? 100);
    }
  }

  /** Ticks until every job is completed or failed; returns their rows. */
  async untilTerminal(ids: string[], o: Parameters<Pipeline["tickUntil"]>[1] = {}): Promise<JobRow[]> {
    await this.tickUntil(async () => {
      const [{ n }] = await this.sql<{ n: number }[]>`
        select count(*)::int as n from public.generation_jobs where id = any(${ids}) and status in ('completed', 'failed')`;
      return n === ids.length;
    }, { ...o, jobs: ids });
    return this.jobs(ids);
  }

  /** Reads one stored object through the gateway as its owner would (a signed URL, then a GET). */
  async download(userId: string, path: string): Promise<Buffer> {
    const bucket = userClient(this.stack.gateway.url, userJwt(userId)).storage.from("generated-images");
    const { data, error } = await bucket.createSignedUrl(path.replace(/^generated-images\//, ""), 60);
    if (error) throw new Error(`signed URL for ${path}: ${error.message}`);
    const res = await fetch(data.signedUrl);
    if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }

  /**
   * The invariants, as a list of violations (empty when all hold), over the given jobs:
   *  - every job is terminal, and finished by its deadline plus the final-poll grace;
   *  - exactly one debit per job; at most one refund, and a refund exactly when it failed
   *    (with credits charged), each for the amount charged;
   *  - each involved profile's credits equal the sum of its ledger;
   *  - every completed job names its images, each has its storage.objects row and reads back
   *    through the gateway as a PNG;
   *  - the emulator answered no 429 (unless the scenario forced them).
   */
  async checkInvariants(ids: string[], o: InvariantOptions = {}): Promise<string[]> {
    const { sql } = this;
    const problems: string[] = [];
    const slack = o.slackSeconds ?? 5;
    const rows = await sql<{
      id: string; user_id: string; status: string; result_urls: string[]; credits_charged: number; late: boolean;
      debits: number; refunds: number; debit_sum: number; refund_sum: number; objects: number;
    }[]>`
      select j.id, j.user_id, j.status, j.result_urls, j.credits_charged,
             coalesce(j.completed_at > p.deadline_at + make_interval(secs => private.setting_number('deadline.final_grace_seconds')::double precision + ${slack}), true) as late,
             (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'debit') as debits,
             (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds,
             (select coalesce(sum(l.amount), 0)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'debit') as debit_sum,
             (select coalesce(sum(l.amount), 0)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refund_sum,
             (select count(*)::int from storage.objects s
               where s.bucket_id = 'generated-images' and ('generated-images/' || s.name) = any(j.result_urls)) as objects
        from public.generation_jobs j left join private.job_pipeline p on p.job_id = j.id
       where j.id = any(${ids})`;
    if (rows.length !== ids.length) problems.push(`${ids.length - rows.length} jobs not found`);
    for (const r of rows) {
      const name = `job ${r.id} (${r.status})`;
      if (r.status !== "completed" && r.status !== "failed") problems.push(`${name}: not terminal`);
      else if (r.late) problems.push(`${name}: finished after its deadline`);
      if (r.debits !== 1) problems.push(`${name}: ${r.debits} debits`);
      else if (r.debit_sum !== -r.credits_charged) problems.push(`${name}: debit ${r.debit_sum} for ${r.credits_charged} charged`);
      if (r.refunds > 1) problems.push(`${name}: ${r.refunds} refunds`);
      const wantsRefund = r.status === "failed" && r.credits_charged > 0;
      if (r.refunds === 1 && !wantsRefund) problems.push(`${name}: refunded`);
      if (r.refunds === 0 && wantsRefund) problems.push(`${name}: failed without a refund`);
      if (r.refunds === 1 && r.refund_sum !== r.credits_charged) problems.push(`${name}: refund ${r.refund_sum} for ${r.credits_charged} charged`);
      if (r.status === "completed") {
        if (r.result_urls.length === 0) problems.push(`${name}: no images`);
        if (r.objects !== r.result_urls.length) problems.push(`${name}: ${r.objects} of ${r.result_urls.length} images in storage.objects`);
      }
    }
    const completed = rows.filter((r) => r.status === "completed");
    for (let i = 0; i < completed.length; i += 16) {
      await Promise.all(completed.slice(i, i + 16).flatMap((r) => r.result_urls.map(async (path) => {
        try {
          const png = PNG.sync.read(await this.download(r.user_id, path));
          if (!(png.width > 0 && png.height > 0)) problems.push(`job ${r.id}: ${path} has no pixels`);
        } catch (err) {
          problems.push(`job ${r.id}: ${path} unreadable: ${(err as Error).message}`);
        }
      })));
    }
    const users = [...new Set(rows.map((r) => r.user_id))];
    const balances = await sql<{ id: string; credits: number; ledger: number }[]>`
      select p.id, p.credits, (select coalesce(sum(l.amount), 0)::int from public.credit_ledger l where l.user_id = p.id) as ledger
        from public.profiles p where p.id = any(${users})`;
    for (const b of balances) if (b.credits !== b.ledger) problems.push(`profile ${b.id}: credits ${b.credits}, ledger sums to ${b.ledger}`);
    const limited = this.kie.state.counters.rateLimited;
    if (!o.allow429 && limited.createTask + limited.recordInfo > 0) {
      problems.push(`the emulator answered 429 (createTask ${limited.createTask}, recordInfo ${limited.recordInfo})`);
    }
    return problems;
  }
}
