import { createHash, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";
import { type NetWorker, startNetWorker } from "./support/net-worker.ts";

// The whole database side of the pipeline through pg_net's worker, against a small
// local HTTP server that plays KIE (createTask, recordInfo, chat/credit, callbacks) and the
// callback function (which only calls the SQL functions it is meant to call: verify the token,
// read the report, complete or fail the job). The ticks run as the tick driver would run them.

const sql = connect({ max: 6 });
const suffix = randomUUID().replaceAll("-", "").slice(0, 12);
const planId = `pipeline_${suffix}`;
const SECRETS = ["kie_api_key", "functions_base_url", "finalize_credential"];
const KIE_KEY = `kie-${suffix}`;
const FINALIZE = `finalize-${suffix}`;
const SETTINGS = ["kie.base_url", "kie.user_agent", "poll.first_after_seconds", "dispatch.create_per_window"];
let savedSettings: { key: string; value: unknown }[] = [];
/** Secrets of these names that existed before (the local stack's), put back afterwards. */
let savedSecrets: { name: string; secret: string; description: string }[] = [];
let userId = "";
let worker: NetWorker | undefined;

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
}
const seen: Seen[] = [];
const tasks = new Map<string, { prompt: string; callBackUrl: string; fails: boolean }>();
const createsByPrompt = new Map<string, number>();

function reply(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

function taskReport(taskId: string) {
  const task = tasks.get(taskId)!;
  return task.fails
    ? { code: 501, msg: "generation failed", data: { taskId, state: "fail", failCode: "400", failMsg: "content policy" } }
    : {
        code: 200,
        msg: "success",
        data: { taskId, state: "success", resultJson: JSON.stringify({ resultUrls: [`https://kie.example/${taskId}.png`] }) },
      };
}

/** The callback function's part: token or finalize credential, one reading of KIE, one SQL call. */
async function callbackFunction(req: Seen, res: http.ServerResponse) {
  const jobId = req.query.get("job") ?? "";
  const attempt = Number(req.query.get("attempt"));
  const trusted = req.headers.authorization === `Bearer ${FINALIZE}`;
  if (!trusted) {
    const [target] = await sql<{ token_hash: string }[]>`select token_hash from private.callback_target(${jobId}, ${attempt}, '')`;
    const presented = createHash("sha256").update(req.query.get("token") ?? "").digest("hex");
    if (target?.token_hash !== presented) return reply(res, 401, { code: 401, msg: "bad token" });
  }
  const [report] = await sql<{ kind: string; task_id: string; result_urls: string[]; fail_code: string; fail_message: string }[]>`
    select kind, task_id, result_urls, fail_code, fail_message from private.interpret_task_report(${req.body}::text::jsonb)`;
  if (report.kind === "success") {
    // (The real function copies the images into Storage first; these are the stored paths.)
    const paths = report.result_urls.map((_, i) => `${jobId}/${i}.png`);
    await sql`select private.complete_job(${jobId}, ${attempt}, ${report.task_id}, ${paths}::text[])`;
  } else if (report.kind === "failed") {
    await sql`select private.fail_job_from_provider(${jobId}, ${attempt}, ${report.task_id}, ${report.fail_code}, ${report.fail_message})`;
  }
  reply(res, 200, { code: 200, msg: "success" });
}

async function kie(req: Seen, res: http.ServerResponse) {
  if (req.headers.authorization !== `Bearer ${KIE_KEY}`) return reply(res, 200, { code: 401, msg: "You do not have access" });
  if (req.path === "/api/v1/jobs/createTask") {
    const body = JSON.parse(req.body) as { callBackUrl: string; input: { prompt: string } };
    const prompt = body.input.prompt;
    const count = (createsByPrompt.get(prompt) ?? 0) + 1;
    createsByPrompt.set(prompt, count);
    if (prompt.includes("[455 once]") && count === 1) return reply(res, 200, { code: 455, msg: "maintenance" });
    const taskId = randomUUID().replaceAll("-", "");
    tasks.set(taskId, { prompt, callBackUrl: body.callBackUrl, fails: prompt.includes("[fails]") });
    reply(res, 200, { code: 200, msg: "success", data: { taskId } });
    if (!prompt.includes("[no callback]")) {
      setTimeout(() => {
        void fetch(body.callBackUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(taskReport(taskId)),
        }).catch(() => {});
      }, 50);
    }
    return;
  }
  if (req.path === "/api/v1/jobs/recordInfo") {
    const taskId = req.query.get("taskId") ?? "";
    if (!tasks.has(taskId)) return reply(res, 200, { code: 422, msg: "recordInfo is null", data: null });
    return reply(res, 200, taskReport(taskId));
  }
  if (req.path === "/api/v1/chat/credit") return reply(res, 200, { code: 200, msg: "success", data: 5000 });
  reply(res, 404, { code: 404, msg: "not found" });
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const entry: Seen = {
      method: req.method ?? "",
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    seen.push(entry);
    const handle = entry.path === "/functions/v1/kie-callback" ? callbackFunction : kie;
    handle(entry, res).catch((err: unknown) => reply(res, 500, { code: 500, msg: String(err) }));
  });
});

async function startJob(prompt: string): Promise<string> {
  const [job] = await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`;
    return tx<{ id: string }[]>`select id from public.start_generation(prompt => ${prompt})`;
  });
  return job.id;
}

/** Runs the ticks as the tick driver does until every job is terminal (or the deadline passes). */
async function runTicksUntilDone(jobIds: string[], timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await sql`select private.reconcile_tick(), private.dispatch_tick(), private.poll_tick()`;
    const [{ active }] = await sql<{ active: number }[]>`
      select count(*)::int as active from public.generation_jobs where id = any(${jobIds}::uuid[]) and status in ('pending', 'generating')`;
    if (active === 0) return;
    if (Date.now() > deadline) {
      const state = await sql`
        select j.request ->> 'prompt' as prompt, p.stage, p.attempt, p.retries, p.last_error from private.job_pipeline p
          join public.generation_jobs j on j.id = p.job_id where p.job_id = any(${jobIds}::uuid[])`;
      throw new Error(`jobs still active after ${timeoutMs} ms: ${JSON.stringify(state)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  savedSettings = await sql`select key, value from private.settings where key = any(${SETTINGS})`;
  await sql`update private.settings set value = ${sql.json(base)} where key = 'kie.base_url'`;
  await sql`update private.settings set value = '"kiln-test/1.0"' where key = 'kie.user_agent'`;
  await sql`update private.settings set value = '1' where key = 'poll.first_after_seconds'`;
  await sql`update private.settings set value = '18' where key = 'dispatch.create_per_window'`;
  await sql`update private.rate_slots set available_at = '-infinity'`;
  savedSecrets = await sql`select name, secret, description from vault.secrets where name = any(${SECRETS as unknown as string[]})`;
  await sql`delete from vault.secrets where name = any(${SECRETS})`;
  await sql`select vault.create_secret(${KIE_KEY}, 'kie_api_key'), vault.create_secret(${`${base}/functions/v1`}, 'functions_base_url'),
                   vault.create_secret(${FINALIZE}, 'finalize_credential')`;
  await sql`delete from private.alerts`;

  const [{ rank }] = await sql<{ rank: number }[]>`select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
  await sql`insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
            values (${planId}, 'Pipeline test', ${rank}, 100, 100, 0, true)`;
  userId = randomUUID();
  await sql`insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
            values (${userId}, 'authenticated', 'authenticated', ${`pipeline-${userId}@test.kiln.local`}, '{}', '{}', now(), now())`;
  await sql.begin(async (tx) => {
    await tx`set local role service_role`;
    await tx`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`;
    await tx`select public.set_plan(${userId}, ${planId})`;
    await tx`select public.grant_credits(${userId}, 100, 'pipeline test credits')`;
  });
  worker = await startNetWorker();
});

afterAll(async () => {
  try {
    await worker?.stop();
    await sql`delete from vault.secrets where name = any(${SECRETS})`;
    for (const { name, secret, description } of savedSecrets) await sql`select vault.create_secret(${secret}, ${name}, ${description})`;
    for (const { key, value } of savedSettings) await sql`update private.settings set value = ${sql.json(value as never)} where key = ${key}`;
    await sql`delete from private.alerts`;
    if (userId) await sql`delete from auth.users where id = ${userId}`;
    await sql`delete from public.plans where id = ${planId}`;
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await sql.end({ timeout: 5 });
  }
});

describe("the dispatch pipeline through the pg_net worker", () => {
  it("drives callback, polling, retry and failure to the right terminal states", async () => {
    const viaCallback = await startJob(`a lighthouse ${suffix}`);
    const viaPoll = await startJob(`a harbour [no callback] ${suffix}`);
    const afterRetry = await startJob(`a cliff [455 once] ${suffix}`);
    const failing = await startJob(`a storm [fails] ${suffix}`);
    const all = [viaCallback, viaPoll, afterRetry, failing];

    await runTicksUntilDone(all);

    const jobs = await sql<{ id: string; status: string; error_code: string | null; result_urls: string[]; refunds: number }[]>`
      select j.id, j.status, j.error_code, j.result_urls,
             (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund') as refunds
        from public.generation_jobs j where j.id = any(${all}::uuid[])`;
    const byId = new Map(jobs.map((j) => [j.id, j]));
    expect(byId.get(viaCallback)).toMatchObject({ status: "completed", result_urls: [`${viaCallback}/0.png`], refunds: 0 });
    expect(byId.get(viaPoll)).toMatchObject({ status: "completed", result_urls: [`${viaPoll}/0.png`], refunds: 0 });
    expect(byId.get(afterRetry)).toMatchObject({ status: "completed", refunds: 0 });
    expect(byId.get(failing)).toMatchObject({ status: "failed", error_code: "provider_failed", refunds: 1 });

    // What KIE saw: createTask with our headers and the key from Vault; the 455 was retried once.
    const creates = seen.filter((r) => r.path === "/api/v1/jobs/createTask");
    expect(creates).toHaveLength(5);
    for (const c of creates) {
      expect(c.method).toBe("POST");
      expect(c.headers.authorization).toBe(`Bearer ${KIE_KEY}`);
      expect(c.headers["content-type"]).toBe("application/json");
      expect(c.headers["user-agent"]).toContain("kiln-test/1.0");
    }
    expect(createsByPrompt.get(`a cliff [455 once] ${suffix}`)).toBe(2);

    // The polled job: recordInfo with the key, then the finalize request with the credential.
    const polls = seen.filter((r) => r.path === "/api/v1/jobs/recordInfo");
    expect(polls.length).toBeGreaterThan(0);
    expect(polls.every((p) => p.method === "GET" && p.headers.authorization === `Bearer ${KIE_KEY}`)).toBe(true);
    const finalizes = seen.filter((r) => r.path === "/functions/v1/kie-callback" && r.query.get("source") === "poll");
    expect(finalizes.map((f) => f.query.get("job"))).toContain(viaPoll);
    expect(finalizes.every((f) => f.headers.authorization === `Bearer ${FINALIZE}`)).toBe(true);

    // Our request log holds every request with its outcome.
    const log = await sql<{ kind: string; outcome: string; n: number }[]>`
      select kind, outcome, count(*)::int as n from private.requests
       where job_id = any(${all}::uuid[]) and resolved_at is not null group by 1, 2 order by 1, 2`;
    expect(log).toEqual(expect.arrayContaining([
      { kind: "create", outcome: "accepted", n: 4 },
      { kind: "create", outcome: "transient", n: 1 },
    ]));
  });

  it("reads the KIE balance with the credit check", async () => {
    await sql`delete from private.kie_account`;
    await sql`select private.account_tick()`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      await sql`select private.reconcile_tick()`;
      const rows = await sql<{ balance: string }[]>`select balance::text from private.kie_account`;
      if (rows.length > 0) {
        expect(rows[0].balance).toBe("5000");
        break;
      }
      if (Date.now() > deadline) throw new Error("no credit check answer");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const credit = seen.filter((r) => r.path === "/api/v1/chat/credit");
    expect(credit.at(-1)?.headers.authorization).toBe(`Bearer ${KIE_KEY}`);
  });
});
