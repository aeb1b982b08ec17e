/**
 * kie-callback: KIE's callback, and the finalize request Postgres sends when polling saw the
 * result first. It verifies the sender, copies the result images into Storage and hands the
 * outcome to the database. It holds no business rules: SQL reads the report and decides.
 *
 *   POST /kie-callback?job=<uuid>&attempt=<n>&token=<secret>   KIE's callback body
 *   POST /kie-callback?job=<uuid>&attempt=<n>&source=poll      the recordInfo reply
 *        Authorization: Bearer <finalize credential>           (Vault's finalize_credential)
 *
 * Answers: 200 done (or a duplicate, nothing redone; or the job failed at once on a result no
 * retry can take); 202 the task is still running; 4xx the request is refused and nothing changed;
 * 5xx something failed on the way, nothing completed, so the sender retries (and polling stays
 * the safety net).
 */
import { z } from "zod";
import type { CallbackTarget, DatabasePort, TaskReport } from "../_shared/database.ts";
import { createLanes, type FetchedImage, fetchImage, readCapped } from "../_shared/image-bytes.ts";
import { verifyKieSignature } from "../_shared/kie.ts";
import { RESULT_BUCKET, RESULT_BUCKET_MAX_BYTES } from "../_shared/result-bucket.ts";
import { resultUrlProblem } from "../_shared/result-hosts.ts";
import { redactDeep, sha256Hex, timingSafeEqualText } from "../_shared/secrets.ts";
import { ObjectRefused, type ObjectStore, STORAGE_TIMEOUT_MS } from "../_shared/storage.ts";

/** Callback bodies are a few KB; anything near this is not KIE. */
export const MAX_BODY_BYTES = 256 * 1024;
/** Containers nested in a body at most: KIE's nest three or four deep. */
export const MAX_BODY_DEPTH = 64;
/** Redirects followed per download. */
const MAX_REDIRECTS = 3;
/**
 * Bytes of images the process may hold at once, lanes × per-image cap: two at the 20 MB cap. An
 * image in flight costs about three times its size (read chunks, the joined copy, the upload
 * body), so this keeps them near 120 MB of the 256 MB a hosted Edge Function gets.
 */
const HELD_IMAGE_BYTES = 40_000_000;
/** Compared against when the job or attempt is unknown, so the answer takes as long as a bad token's. */
const DUMMY_TOKEN_HASH = "0".repeat(64);
const PARAMETER_TWICE = "the URL names a parameter more than once";

/**
 * The URL's parameters, or null when one is named twice: which value counts would be a guess
 * (Object.fromEntries keeps the last, URLSearchParams.get the first), and the token checked must
 * be the token redacted from the log.
 */
function singleParams(url: URL): Record<string, string> | null {
  const names = [...url.searchParams.keys()];
  if (new Set(names).size !== names.length) return null;
  return Object.fromEntries(url.searchParams);
}

/** One answer for an unknown job, an unknown attempt and a wrong token: ids do not leak. */
const BAD_TOKEN = "invalid callback token";

/** A number setting; blank (`NAME=` in an env file or a secret set to "") means unset, not 0. */
const numberSetting = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === "string" && v.trim() === "" ? undefined : v), schema);

const envSchema = z.object({
  // Not used here except to keep it out of every log line and answer.
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
  // The same value as Vault's `finalize_credential`: Postgres sends it with finalize requests.
  KILN_FINALIZE_CREDENTIAL: z.string().optional().transform((v) => v || undefined),
  // Set when webhook signing is enabled on the KIE account ("Webhook Security Verification").
  KIE_WEBHOOK_HMAC_KEY: z.string().optional().transform((v) => v || undefined),
  KIE_WEBHOOK_MAX_SKEW_SECONDS: numberSetting(z.coerce.number().int().nonnegative().default(300)),
  // Per image; never above the bucket's limit, or an image could download and then not store.
  KIE_RESULT_MAX_BYTES: numberSetting(
    z.coerce.number().int().positive().max(
      RESULT_BUCKET_MAX_BYTES,
      `must not exceed ${RESULT_BUCKET_MAX_BYTES}, the file_size_limit of the ${RESULT_BUCKET} bucket`,
    ).default(RESULT_BUCKET_MAX_BYTES),
  ),
  KIE_RESULT_TIMEOUT_MS: numberSetting(z.coerce.number().int().positive().default(30_000)),
  // Images downloaded, and held until stored, at once by all requests of the process together.
  KIE_RESULT_LANES: numberSetting(z.coerce.number().int().min(1).max(8).default(2)),
  // How long a delivery may wait for its first lane before it gives up (503, Retry-After):
  // below KIE's 15 s callback timeout, so it answers while the sender still listens. At most
  // 120 s, the longest kie.finalize_timeout_ms lets the finalize request wait.
  KIE_RESULT_LANE_WAIT_MS: numberSetting(z.coerce.number().int().min(1).max(120_000).default(10_000)),
}).refine((env) => env.KIE_RESULT_LANES * env.KIE_RESULT_MAX_BYTES <= HELD_IMAGE_BYTES, {
  message: `KIE_RESULT_LANES × KIE_RESULT_MAX_BYTES must not exceed ${HELD_IMAGE_BYTES} (the images the ` +
    "process may hold at once): lower the cap to raise the lanes",
  path: ["KIE_RESULT_LANES"],
});

export interface Dependencies {
  db: DatabasePort;
  storage: ObjectStore;
  fetch: typeof fetch;
  /** Current time in milliseconds since the epoch. */
  now: () => number;
  env: Record<string, string | undefined>;
  log?: (line: string) => void;
  /** A fresh name for one delivery's folder (default: a random UUID). */
  newId?: () => string;
  /** Call `fire` once after `ms` milliseconds unless cancelled (default: setTimeout). */
  timer?: (ms: number, fire: () => void) => () => void;
}

/** Why a delivery stopped waiting for a lane before it started: nothing of it ran. */
class LaneWaitEnded extends Error {}

const jobId = z.guid();
const attempt = z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d{0,8}$/).transform(Number)]);
const callbackQuery = z.object({ job: jobId, attempt, token: z.string().min(1).max(512) });
const finalizeQuery = z.object({ job: jobId, attempt, source: z.literal("poll") });

// Only what the function itself needs: the task id. Reading the rest is the database's job.
const taskIdText = z.union([z.string(), z.number()]).transform(String).pipe(
  z.string().regex(/\S/, "is blank").max(64),
);
const envelope = z.object({
  data: z.object({ taskId: taskIdText.nullish(), task_id: taskIdText.nullish() }).refine(
    (d) => d.taskId || d.task_id,
    "data.taskId (or data.task_id) is required",
  ),
});

interface Outcome {
  status: number;
  msg: string;
  result?: "completed" | "failure_recorded" | "duplicate" | "running" | "ignored";
  job?: string;
  attempt?: number;
  /** Logged (redacted), never returned. */
  detail?: string;
  /** Seconds, sent as Retry-After. */
  retryAfter?: number;
}

/** One log line of the request being handled: redacted like every line the function writes. */
type Note = (fields: Record<string, unknown>) => void;

const refuse = (status: number, msg: string): Outcome => ({ status, msg });
const issues = (e: z.ZodError) =>
  e.issues.map((i) => `${i.path.length ? i.path.join(".") : "(body)"}: ${i.message}`).join("; ");

/** The platform passes the path from the function's name on: `/kie-callback`. */
function routeOf(url: URL): "callback" | "finalize" | null {
  const last = url.pathname.replace(/\/+$/, "").split("/").pop();
  if (last !== "kie-callback" && last !== "") return null;
  return url.searchParams.get("source") === "poll" ? "finalize" : "callback";
}

export function createHandler(deps: Dependencies): (req: Request) => Promise<Response> {
  const config = envSchema.parse(deps.env);
  const { db, storage } = deps;
  const log = deps.log ?? ((line: string) => console.log(line));
  const newId = deps.newId ?? (() => crypto.randomUUID());
  const timer = deps.timer ?? ((ms: number, fire: () => void) => {
    const id = setTimeout(fire, ms);
    return () => clearTimeout(id);
  });
  // Every lane busy now has been freed at least once by then: a download holds one for at most
  // KIE_RESULT_TIMEOUT_MS, the upload after it for at most the Storage timeout.
  const laneRetryAfter = Math.ceil((config.KIE_RESULT_TIMEOUT_MS + STORAGE_TIMEOUT_MS) / 1000);
  // Shared by every delivery this process serves: two deliveries at once (two jobs, or KIE's
  // retry beside the finalize request) still hold at most KIE_RESULT_LANES images in memory.
  const lanes = createLanes(config.KIE_RESULT_LANES);

  async function readJson(req: Request): Promise<{ value: unknown } | Outcome> {
    if (Number(req.headers.get("content-length")) > MAX_BODY_BYTES) {
      return refuse(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    }
    const bytes = await readCapped(req.body, MAX_BODY_BYTES);
    if (bytes === "too-large") return refuse(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch {
      return refuse(400, "body is not valid JSON");
    }
    // Refused here, not as an error the sender retries: text Postgres cannot hold (NUL, a lone
    // surrogate) and nesting no report has (deep enough, it overflows a parser's stack).
    const problem = bodyProblem(value);
    if (problem !== null) return refuse(400, problem);
    return { value };
  }

  async function onCallback(req: Request, url: URL, note: Note): Promise<Outcome> {
    const params = singleParams(url);
    if (params === null) return refuse(400, PARAMETER_TWICE);
    const query = callbackQuery.safeParse(params);
    if (!query.success) return refuse(400, "the callback URL needs job (uuid), attempt (1, 2, …) and token");
    const { job, attempt, token } = query.data;
    const body = await readJson(req);
    if (!("value" in body)) return body;
    const parsed = envelope.safeParse(body.value);
    if (!parsed.success) return refuse(400, `not a KIE callback body: ${issues(parsed.error)}`);
    const taskId = (parsed.data.data.taskId || parsed.data.data.task_id)!;

    if (config.KIE_WEBHOOK_HMAC_KEY) {
      const check = await verifyKieSignature({
        key: config.KIE_WEBHOOK_HMAC_KEY,
        taskId,
        // The headers KIE sends when webhook signing is on.
        timestamp: req.headers.get("X-Webhook-Timestamp"),
        signature: req.headers.get("X-Webhook-Signature"),
        nowSeconds: Math.floor(deps.now() / 1000),
        maxSkewSeconds: config.KIE_WEBHOOK_MAX_SKEW_SECONDS,
      });
      if (!check.ok) return refuse(401, `webhook signature refused: ${check.reason}`);
    }
    const target = await db.callbackTarget(job, attempt, taskId);
    const tokenMatches = await timingSafeEqualText(
      await sha256Hex(token),
      target?.callbackTokenHash ?? DUMMY_TOKEN_HASH,
    );
    if (target === null || !tokenMatches) return refuse(401, BAD_TOKEN);
    return settle(job, attempt, taskId, target, body.value, note, req.signal);
  }

  async function onFinalize(req: Request, url: URL, note: Note): Promise<Outcome> {
    const credential = config.KILN_FINALIZE_CREDENTIAL;
    // Unset: a deployment fault, not the sender's. 503 keeps the poll path retrying meanwhile.
    if (!credential) return refuse(503, "finalize is not configured: KILN_FINALIZE_CREDENTIAL is not set");
    const bearer = /^Bearer (.+)$/i.exec(req.headers.get("authorization") ?? "")?.[1] ?? "";
    if (!(await timingSafeEqualText(bearer, credential))) {
      return refuse(401, "finalize needs the finalize credential");
    }
    const params = singleParams(url);
    if (params === null) return refuse(400, PARAMETER_TWICE);
    const query = finalizeQuery.safeParse(params);
    if (!query.success) {
      return refuse(400, "the finalize URL needs job (uuid), attempt (1, 2, …) and source=poll");
    }
    const { job, attempt } = query.data;
    const body = await readJson(req);
    if (!("value" in body)) return body;
    const parsed = envelope.safeParse(body.value);
    if (!parsed.success) return refuse(400, `not a recordInfo reply: ${issues(parsed.error)}`);
    const taskId = (parsed.data.data.taskId || parsed.data.data.task_id)!;
    const target = await db.callbackTarget(job, attempt, taskId);
    if (target === null) return refuse(404, "unknown job or attempt");
    return settle(job, attempt, taskId, target, body.value, note, req.signal);
  }

  async function settle(
    job: string,
    attempt: number,
    taskId: string,
    target: CallbackTarget,
    report: unknown,
    note: Note,
    /** Aborts when the sender hangs up (the request's signal). */
    sender: AbortSignal,
  ): Promise<Outcome> {
    const answer = (result: Outcome["result"], status = 200, msg = "success"): Outcome => ({
      status,
      msg,
      result,
      job,
      attempt,
    });
    // Checked before any download: a repeated delivery costs one query.
    if (!target.accepting) return answer("duplicate");

    const reading: TaskReport = await db.interpretTaskReport(report);
    switch (reading.outcome) {
      case "running":
        return answer("running", 202, "the task is still running; nothing recorded");
      case "unreadable":
        return refuse(422, `unreadable report: ${reading.reason}`);
      case "failure": {
        const applied = await db.recordProviderFailure(
          job,
          attempt,
          taskId,
          reading.failCode,
          reading.failMessage,
        );
        return answer(applied === "applied" ? "failure_recorded" : "duplicate");
      }
      case "success": {
        const n = reading.resultUrls.length;
        // Checked before any download; callback_complete checks again under the job's lock.
        if (!target.taskKnown) {
          await db.completeJob(job, attempt, taskId, []);
          return answer("ignored", 200, "the task is not this job's; nothing changed");
        }
        // A result no retry can take fails the job now, with its refund, instead of at its
        // deadline: recorded as the provider's "unusable" outcome. The reason stays private
        // (last_error and the log).
        const unusableResult = async (reason: string): Promise<Outcome> => {
          const applied = await db.recordProviderFailure(job, attempt, taskId, "unusable", reason);
          return { ...answer(applied === "applied" ? "failure_recorded" : "duplicate"), detail: reason };
        };
        // recordInfo answers the same resultUrls for a finished task every time, so a repeated
        // delivery (KIE's retry, or the next poll's finalize) would only be refused again.
        if (n > target.maxResults) {
          return unusableResult(
            `the report lists ${n} result images, more than the ${target.maxResults} the job asked for`,
          );
        }
        const limits = {
          timeoutMs: config.KIE_RESULT_TIMEOUT_MS,
          maxBytes: config.KIE_RESULT_MAX_BYTES,
          maxRedirects: MAX_REDIRECTS,
          allowed: (url: string) => resultUrlProblem(url, target.resultHosts),
        };
        // An image no retry can store: over the bucket's size limit, of a type it does not take,
        // or refused by Storage for what it is.
        const unusable = (i: number, reason: string) =>
          unusableResult(`result image ${i + 1} of ${n} cannot be stored: ${reason}`);
        // A folder of its own per delivery: a concurrent or losing delivery never replaces the
        // images a completed job lists, and users can read only what result_urls lists.
        const folder = `${target.userId}/${job}/${newId()}`;
        // Where each image was stored, by its number; a hole for one not stored (yet).
        const paths: string[] = new Array(n);
        // `midway`: the delivery failed before the database heard of it (a download or upload
        // failed, or it gave up waiting for a lane).
        const discard = async (why: string, midway = false) => {
          const stored = paths.filter((path) => path !== undefined);
          if (stored.length === 0) return;
          try {
            await storage.remove(RESULT_BUCKET, stored);
          } catch (error) {
            // Unreadable by users anyway. For a delivery the database did not take, it recorded a
            // purge of this folder with its answer. One that failed midway is handed to it now, so
            // that its images go even if the job's folder purge is already done; should that fail
            // too, the job's purge removes its folder.
            note({ job, attempt, cleanup: why, error: String(error) });
            if (!midway) return;
            try {
              const purging = await db.discardDelivery(job, stored.map((p) => `${RESULT_BUCKET}/${p}`));
              note({ job, attempt, cleanup: why, purge: purging });
            } catch (failure) {
              note({ job, attempt, cleanup: why, purge: null, error: String(failure) });
            }
          }
        };
        // Each image goes to Storage as soon as it is downloaded, in one of the lanes every
        // delivery shares, so the process holds at most KIE_RESULT_LANES images at once (four at
        // the size cap would take most of the function's memory, twice that with a second
        // delivery beside it). After a failure nothing more of this delivery is fetched or stored;
        // what was stored is deleted below, and the job completes only once every image is stored.
        //
        // The wait for a lane is bounded: a delivery none of whose images got a lane within
        // KIE_RESULT_LANE_WAIT_MS, or whose sender hung up first, leaves the queue having run and
        // stored nothing. Once one of its images runs, the delivery keeps its place to the end:
        // its other images wait right behind it, and giving up then would throw away its work.
        type Failure =
          | { i: number; fetch: Extract<FetchedImage, { ok: false }> }
          | { i: number; store: unknown }
          | { i: number; waited: LaneWaitEnded };
        let failing = false;
        const wait = firstLaneWait(config.KIE_RESULT_LANE_WAIT_MS, config.KIE_RESULT_LANES, sender, timer);
        const steps = await Promise.all(
          reading.resultUrls.map((url, i) =>
            lanes(async (): Promise<Failure | null> => {
              wait.stop();
              if (failing) return null;
              const image = await fetchImage(deps.fetch, url, limits);
              if (!image.ok) {
                failing = true;
                return { i, fetch: image };
              }
              if (failing) return null;
              const path = `${folder}/${i}.${image.kind.ext}`;
              try {
                await storage.upload(RESULT_BUCKET, path, image.bytes, image.kind.mime);
              } catch (error) {
                failing = true;
                return { i, store: error };
              }
              paths[i] = path;
              return null;
            }, { signal: wait.signal }).catch((error: unknown): Failure => {
              // Only the wait ends this way; every step above catches its own failures.
              if (!(error instanceof LaneWaitEnded)) throw error;
              failing = true;
              return { i, waited: error };
            })
          ),
        ).finally(wait.stop);
        // The first image (by number) that went wrong decides the answer.
        const bad = steps.find((step) => step !== null);
        if (bad) {
          if ("waited" in bad) {
            await discard("gave up waiting for a lane", true);
            // Busy, not broken: nothing completed, so KIE retries (polling stays the safety net).
            return {
              ...refuse(503, "too busy to fetch the results now; retry later"),
              job,
              attempt,
              detail: bad.waited.message,
              retryAfter: laneRetryAfter,
            };
          }
          if ("fetch" in bad) {
            await discard("download failed", true);
            if (bad.fetch.unusable) return unusable(bad.i, bad.fetch.reason);
            if (bad.fetch.notImage) {
              // Most likely the host's error page: retried, but not for ever. The database counts
              // such deliveries and fails the job as unusable once they outlast its grace
              // (results.non_image_grace_seconds, from the first).
              const reason = `result image ${bad.i + 1} of ${n} cannot be stored: ${bad.fetch.reason}`;
              const verdict = await db.recordNonImage(job, attempt, taskId, reason);
              if (verdict === "failed") return { ...answer("failure_recorded"), detail: reason };
              if (verdict === "duplicate") return answer("duplicate");
            }
            // The reason stays in the log: telling the sender would make this a probe of the network.
            return {
              ...refuse(502, `result image ${bad.i + 1} of ${n} could not be fetched`),
              job,
              attempt,
              detail: bad.fetch.reason,
            };
          }
          await discard("upload failed", true);
          // Storage refusing the image itself (too large, a type not allowed) is the result's
          // fault, like an image over the download cap. Anything else is Storage failing: 503.
          if (bad.store instanceof ObjectRefused) return unusable(bad.i, String(bad.store));
          return {
            ...refuse(503, `storing result image ${bad.i + 1} of ${n} failed`),
            job,
            attempt,
            detail: String(bad.store),
          };
        }
        // If this throws, the images stay: the completion may have committed before the
        // connection broke, and then they are the job's (or, had the database not taken them, it
        // recorded a purge of their folder). Otherwise the job's purge removes them. An answer
        // other than applied came with a purge of this folder, recorded by the database: the
        // delete below is only the fast path.
        const applied = await db.completeJob(
          job,
          attempt,
          taskId,
          paths.map((p) => `${RESULT_BUCKET}/${p}`),
        );
        if (applied === "applied") return answer("completed");
        await discard(applied);
        return applied === "unknown_task"
          ? answer("ignored", 200, "the task is not this job's; nothing changed")
          : answer("duplicate");
      }
    }
  }

  return async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const secrets = [
      config.SUPABASE_SERVICE_ROLE_KEY,
      config.KILN_FINALIZE_CREDENTIAL,
      config.KIE_WEBHOOK_HMAC_KEY,
      ...url.searchParams.getAll("token"),
    ];
    const route = routeOf(url);
    // Redacted value by value, before the line is written: a secret is found as it is, not as JSON
    // escapes it, and a token anyone may put in the URL can hide only what it matches inside a
    // value, never the line's structure or the fields the function sets itself.
    const redactedLog = (fields: Record<string, unknown>) =>
      log(
        JSON.stringify({
          fn: "kie-callback",
          route,
          ...(redactDeep(fields, secrets) as Record<string, unknown>),
        }),
      );

    let outcome: Outcome;
    if (route === null) outcome = refuse(404, "no such route");
    else if (req.method !== "POST") outcome = refuse(405, "use POST");
    else {
      try {
        outcome = route === "finalize"
          ? await onFinalize(req, url, redactedLog)
          : await onCallback(req, url, redactedLog);
      } catch (error) {
        // The database or Storage failed, or was unreachable: nothing completed, retry later.
        redactedLog({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
        outcome = refuse(503, "temporarily unable to process the report; retry later");
      }
    }
    const { status, msg, result, job, attempt, detail } = outcome;
    redactedLog({ status, msg, result, job, attempt, detail });
    const body = {
      code: outcome.status,
      msg: outcome.msg,
      ...(outcome.result ? { result: outcome.result } : {}),
    };
    return new Response(JSON.stringify(redactDeep(body, secrets)), {
      status: outcome.status,
      headers: {
        "content-type": "application/json",
        ...(outcome.status === 405 ? { allow: "POST" } : {}),
        ...(outcome.retryAfter ? { "retry-after": String(outcome.retryAfter) } : {}),
      },
    });
  };
}

/**
 * One delivery's wait for its first lane. `signal` aborts with a LaneWaitEnded when `ms` pass, or
 * when the sender hangs up, before `stop` is called; `stop` (when one of the delivery's images
 * starts, and when it is done) ends the wait for good.
 *
 * A hang-up is the request's signal aborting. Deno.serve aborts it when it notices the client
 * gone, which it does not always do while the handler waits (not for a request of a few hundred
 * bytes or more, in Deno 2.9): the time bound is what keeps the queue short, the hang-up only
 * frees a place sooner when the runtime reports it.
 */
function firstLaneWait(
  ms: number,
  lanes: number,
  sender: AbortSignal,
  timer: (ms: number, fire: () => void) => () => void,
): { signal: AbortSignal; stop: () => void } {
  const waiting = new AbortController();
  const end = (why: string) => waiting.abort(new LaneWaitEnded(why));
  const hangUp = () => end("the sender hung up before a lane came free");
  const cancel = timer(ms, () => end(`no lane of ${lanes} came free within ${ms} ms`));
  sender.addEventListener("abort", hangUp, { once: true });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    cancel();
    sender.removeEventListener("abort", hangUp);
  };
  // Only a hang-up while waiting counts (a signal aborted already fires no event): a runtime that
  // aborted request signals early would then cost nothing but the bound wait.
  return { signal: waiting.signal, stop };
}

/**
 * Why a parsed JSON body cannot go on to Postgres, or null. Walked with a stack of its own, not
 * by recursion: a deeply nested body must be refused, not overflow the call stack.
 */
function bodyProblem(value: unknown): string | null {
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [v, depth] = next;
    if (typeof v === "string") {
      const problem = textProblem(v);
      if (problem !== null) return problem;
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    if (depth >= MAX_BODY_DEPTH) return `body nested deeper than ${MAX_BODY_DEPTH} levels`;
    if (Array.isArray(v)) {
      for (const item of v) pending.push([item, depth + 1]);
      continue;
    }
    for (const [k, item] of Object.entries(v)) {
      const problem = textProblem(k);
      if (problem !== null) return problem;
      pending.push([item, depth + 1]);
    }
  }
  return null;
}

/** Text Postgres cannot take: NUL, or a lone surrogate (`"\ud83d"` parses, `::jsonb` refuses it). */
function textProblem(text: string): string | null {
  if (text.includes("\0")) return "body contains a NUL character";
  if (!text.isWellFormed()) return "body contains an unpaired UTF-16 surrogate";
  return null;
}
