/**
 * Test doubles for the handler's dependencies. The database fake keeps the contract of the
 * real SQL where the handler depends on it: an attempt finishes once, later deliveries are
 * duplicates. Its reading of reports is a rough sketch of `private.interpret_task_report`
 * (which pgTAP tests in every variant); the pipeline suite runs the handler against the real one.
 */
import {
  type Applied,
  type CallbackTarget,
  type Completed,
  type DatabasePort,
  type NonImageVerdict,
  type TaskReport,
  unreadableReason,
} from "../_shared/database.ts";
import { resultUrlProblem } from "../_shared/result-hosts.ts";
import { sha256Hex } from "../_shared/secrets.ts";
import type { ObjectStore } from "../_shared/storage.ts";
import { createHandler } from "./handler.ts";

export const SERVICE_KEY = "service-role-key-0123456789abcdef";
export const FINALIZE_CREDENTIAL = "finalize-credential-0123456789abcdef";
export const HMAC_KEY = "kie-webhook-hmac-key-0123456789";
export const TOKEN = "cb-token-3c1f0a9e8d7b6a5f4e3d2c1b";
export const USER = "0b5f3d2e-8c1a-4e6f-9a7b-1c2d3e4f5a6b";
export const JOB = "7d4c2b1a-9e8f-4a6b-8c5d-3e2f1a0b9c8d";
export const TASK = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8";
export const NOW_MS = 1_767_000_000_000;
export const URL_A = "https://tempfile.aiquickdraw.com/f/a.png";
export const URL_B = "https://tempfile.aiquickdraw.com/f/b.jpg";
/** The folder the harness names the first delivery's images under; later ones count up. */
export const DELIVERY = "delivery-1";
export const RESULT_HOSTS = ["tempfile.aiquickdraw.com"];

/** A real 1×1 PNG, a JPEG header, and a WebP header: enough for magic-byte sniffing. */
export const PNG = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);
export const JPEG = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01]);
export const WEBP = new TextEncoder().encode("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00");

interface Attempt {
  tokenHash: string;
  accepting: boolean;
  /** Task ids that may complete the job; null: any (the createTask has no known answer). */
  tasks: Set<string> | null;
  maxResults: number;
}

export class FakeDatabase implements DatabasePort {
  readonly attempts = new Map<string, Attempt & { userId: string }>();
  readonly completed: { jobId: string; attempt: number; taskId: string; paths: string[] }[] = [];
  readonly failures: {
    jobId: string;
    attempt: number;
    taskId: string;
    code: string | null;
    message: string;
  }[] = [];
  readonly reports: unknown[] = [];
  /** Failed deliveries handed over for a purge of their folder, as callback_discard gets them. */
  readonly discarded: { jobId: string; paths: string[] }[] = [];
  /** Successes of tasks that are not the job's, as callback_complete records them. */
  readonly foreign: { jobId: string; attempt: number; taskId: string }[] = [];
  /** results.allowed_hosts as callback_target returns it. */
  resultHosts: string[] = [...RESULT_HOSTS];
  /** Deliveries that found no image, as callback_non_image gets them, with the database's time. */
  readonly nonImage: { jobId: string; attempt: number; taskId: string; reason: string; atMs: number }[] = [];
  /** The database's clock: callback_non_image reads its own now(), so tests move this, never wait. */
  clockMs = NOW_MS;
  /** results.non_image_grace_seconds, in ms. */
  nonImageGraceMs = 180_000;
  /** Per job: the task whose deliveries found no image, when the first did, and how many did. */
  private readonly nonImageClock = new Map<string, { taskId: string; sinceMs: number; deliveries: number }>();
  /** Make every call throw this (an unreachable database). */
  broken: Error | null = null;

  async addAttempt(
    o: {
      jobId?: string;
      userId?: string;
      attempt?: number;
      token?: string;
      tasks?: string[] | null;
      maxResults?: number;
    },
  ) {
    this.attempts.set(`${o.jobId ?? JOB}/${o.attempt ?? 1}`, {
      userId: o.userId ?? USER,
      tokenHash: await sha256Hex(o.token ?? TOKEN),
      accepting: true,
      tasks: o.tasks === null ? null : new Set(o.tasks ?? [TASK]),
      maxResults: o.maxResults ?? 4,
    });
  }

  private check() {
    if (this.broken) throw this.broken;
  }

  callbackTarget(jobId: string, attempt: number, taskId: string): Promise<CallbackTarget | null> {
    this.check();
    const a = this.attempts.get(`${jobId}/${attempt}`);
    return Promise.resolve(
      a
        ? {
          userId: a.userId,
          callbackTokenHash: a.tokenHash,
          accepting: a.accepting,
          taskKnown: a.tasks === null || a.tasks.has(taskId),
          maxResults: a.maxResults,
          resultHosts: this.resultHosts,
        }
        : null,
    );
  }

  interpretTaskReport(report: unknown): Promise<TaskReport> {
    this.check();
    this.reports.push(structuredClone(report));
    return Promise.resolve(readReport(report, this.resultHosts));
  }

  private finish(jobId: string, attempt: number): Applied {
    const a = this.attempts.get(`${jobId}/${attempt}`);
    if (!a || !a.accepting) return "duplicate";
    a.accepting = false;
    return "applied";
  }

  completeJob(jobId: string, attempt: number, taskId: string, paths: string[]): Promise<Completed> {
    this.check();
    const tasks = this.attempts.get(`${jobId}/${attempt}`)?.tasks;
    if (tasks && !tasks.has(taskId)) {
      this.foreign.push({ jobId, attempt, taskId });
      return Promise.resolve("unknown_task");
    }
    const applied = this.finish(jobId, attempt);
    if (applied === "applied") this.completed.push({ jobId, attempt, taskId, paths });
    return Promise.resolve(applied);
  }

  discardDelivery(jobId: string, paths: string[]): Promise<string | null> {
    this.check();
    this.discarded.push({ jobId, paths });
    // The folder all of them share, as private.delivery_folder reads it; null otherwise.
    const folders = new Set(
      paths.map((p) => p.match(/^generated-images\/([^/]+\/[^/]+\/[^/]+\/)[^/]+$/)?.[1] ?? null),
    );
    const [folder] = [...folders];
    return Promise.resolve(folders.size === 1 && folder ? folder : null);
  }

  /** As private.callback_non_image: the first delivery starts the clock, one past the grace fails the job. */
  recordNonImage(jobId: string, attempt: number, taskId: string, reason: string): Promise<NonImageVerdict> {
    this.check();
    const a = this.attempts.get(`${jobId}/${attempt}`);
    if (!a || !a.accepting) return Promise.resolve("duplicate");
    if (a.tasks && !a.tasks.has(taskId)) return Promise.resolve("retry");
    this.nonImage.push({ jobId, attempt, taskId, reason, atMs: this.clockMs });
    const seen = this.nonImageClock.get(jobId);
    const clock = seen && seen.taskId === taskId
      ? { ...seen, deliveries: seen.deliveries + 1 }
      : { taskId, sinceMs: this.clockMs, deliveries: 1 };
    this.nonImageClock.set(jobId, clock);
    if (clock.deliveries > 1 && this.clockMs - clock.sinceMs >= this.nonImageGraceMs) {
      this.finish(jobId, attempt);
      this.failures.push({ jobId, attempt, taskId, code: "unusable", message: reason });
      return Promise.resolve("failed");
    }
    return Promise.resolve("retry");
  }

  recordProviderFailure(
    jobId: string,
    attempt: number,
    taskId: string,
    code: string | null,
    message: string,
  ): Promise<Applied> {
    this.check();
    const applied = this.finish(jobId, attempt);
    if (applied === "applied") this.failures.push({ jobId, attempt, taskId, code, message });
    return Promise.resolve(applied);
  }
}

function readReport(report: unknown, resultHosts: readonly string[]): TaskReport {
  const r = (report ?? {}) as { code?: unknown; msg?: unknown; message?: unknown; data?: unknown };
  const code = Number(r.code);
  const msg = typeof r.msg === "string" ? r.msg : typeof r.message === "string" ? r.message : null;
  if (!Number.isInteger(code) || (code !== 200 && code !== 501) || typeof r.data !== "object" || !r.data) {
    return { outcome: "unreadable", reason: unreadableReason(Number.isInteger(code) ? code : null, msg) };
  }
  const d = r.data as Record<string, unknown>;
  if (code === 501 || d.state === "fail") {
    const failCode = d.failCode === null || d.failCode === undefined || d.failCode === ""
      ? null
      : String(d.failCode);
    return { outcome: "failure", failCode, failMessage: String(d.failMsg || msg || "failed") };
  }
  if (d.state && d.state !== "success") return { outcome: "running" };
  let result = d.resultJson;
  try {
    if (typeof result === "string") result = JSON.parse(result);
  } catch {
    result = null;
  }
  const urls = (result as { resultUrls?: unknown } | null)?.resultUrls;
  if (!Array.isArray(urls) || urls.length === 0) return { outcome: "unreadable", reason: "no result URL" };
  // As SQL reads it: a result URL off results.allowed_hosts is an unusable result.
  const off = urls.map(String).findIndex((u) => resultUrlProblem(u, resultHosts) !== null);
  if (off !== -1) {
    const why = resultUrlProblem(String(urls[off]), resultHosts);
    const where = `result URL ${off + 1} of ${urls.length}`;
    const failMessage = `${where} is not on an accepted result host (results.allowed_hosts): ${why}`;
    return { outcome: "failure", failCode: "unusable", failMessage };
  }
  return { outcome: "success", resultUrls: urls.map(String) };
}

export class FakeStorage implements ObjectStore {
  readonly objects = new Map<string, { bytes: Uint8Array; contentType: string }>();
  uploads = 0;
  /** Refuse the upload with this 1-based number (counted over the fake's life) with `uploadError`. */
  failOnUpload: number | null = null;
  uploadError: Error = new Error("storage: 500 internal error");

  upload(bucket: string, path: string, bytes: Uint8Array, contentType: string): Promise<void> {
    this.uploads++;
    if (this.uploads === this.failOnUpload) return Promise.reject(this.uploadError);
    // As Storage without upsert: an existing object is never replaced.
    if (this.objects.has(`${bucket}/${path}`)) {
      return Promise.reject(new Error("storage: 409 already exists"));
    }
    this.objects.set(`${bucket}/${path}`, { bytes, contentType });
    return Promise.resolve();
  }

  remove(bucket: string, paths: string[]): Promise<void> {
    for (const p of paths) this.objects.delete(`${bucket}/${p}`);
    return Promise.resolve();
  }
}

type Route = (init: RequestInit | undefined) => Response | Promise<Response>;

/** The result-file host: URL → response; unknown URLs refuse the connection like a dead host. */
export class FakeWeb {
  readonly routes = new Map<string, Route>();
  readonly requested: string[] = [];

  serve(url: string, bytes: Uint8Array, headers: Record<string, string> = { "content-type": "image/png" }) {
    this.routes.set(url, () => new Response(bytes.slice(), { headers }));
  }

  fetch: typeof fetch = (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    this.requested.push(url);
    const route = this.routes.get(url);
    if (!route) return Promise.reject(new TypeError("error sending request: connection refused"));
    return Promise.resolve(route(init));
  };
}

/**
 * The handler's timers on a clock that moves only when a test says so: `advance(ms)` fires, in
 * order, the timers due by then.
 */
export class ManualTimers {
  private clock = 0;
  private readonly pending: { at: number; fire: () => void }[] = [];
  private readonly watchers: { count: number; resolve: () => void }[] = [];

  set = (ms: number, fire: () => void): () => void => {
    const timer = { at: this.clock + ms, fire };
    this.pending.push(timer);
    for (const w of this.watchers.filter((w) => this.pending.length >= w.count)) {
      this.watchers.splice(this.watchers.indexOf(w), 1);
      w.resolve();
    }
    return () => {
      const at = this.pending.indexOf(timer);
      if (at !== -1) this.pending.splice(at, 1);
    };
  };

  /** Timers set and neither fired nor cancelled. */
  get count(): number {
    return this.pending.length;
  }

  /** Resolves once at least `count` timers are pending (a delivery waiting for a lane sets one). */
  pendingAtLeast(count: number): Promise<void> {
    if (this.pending.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.watchers.push({ count, resolve }));
  }

  advance(ms: number) {
    this.clock += ms;
    const due = this.pending.filter((t) => t.at <= this.clock).sort((a, b) => a.at - b.at);
    for (const t of due) {
      this.pending.splice(this.pending.indexOf(t), 1);
      t.fire();
    }
  }
}

export function harness(env: Record<string, string> = {}) {
  const db = new FakeDatabase();
  const timers = new ManualTimers();
  const storage = new FakeStorage();
  const web = new FakeWeb();
  const logs: string[] = [];
  let deliveries = 0;
  const handler = createHandler({
    newId: () => `delivery-${++deliveries}`,
    db,
    storage,
    fetch: web.fetch,
    now: () => NOW_MS,
    env: { SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY, KILN_FINALIZE_CREDENTIAL: FINALIZE_CREDENTIAL, ...env },
    log: (line) => logs.push(line),
    timer: timers.set,
  });
  const responses: string[] = [];
  async function send(
    path: string,
    init: RequestInit,
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    const res = await handler(new Request(`http://functions.local${path}`, init));
    const text = await res.text();
    responses.push(text);
    return { status: res.status, body: JSON.parse(text), headers: res.headers };
  }
  return {
    db,
    storage,
    web,
    timers,
    logs,
    responses,
    send,
    /** KIE's callback for the default job, attempt 1, with the right token unless told. */
    callback(
      body: unknown,
      o: {
        token?: string;
        attempt?: string;
        job?: string;
        headers?: Record<string, string>;
        /** The sender hangs up when this aborts. */
        signal?: AbortSignal;
      } = {},
    ) {
      const q = new URLSearchParams({
        job: o.job ?? JOB,
        attempt: o.attempt ?? "1",
        token: o.token ?? TOKEN,
      });
      const raw = typeof body === "string" ? body : JSON.stringify(body);
      return send(`/kie-callback?${q}`, { method: "POST", body: raw, headers: o.headers, signal: o.signal });
    },
    /** The finalize request Postgres sends: the recordInfo reply, the credential, source=poll. */
    finalize(reply: unknown, o: { key?: string; job?: string; attempt?: string } = {}) {
      const q = new URLSearchParams({ job: o.job ?? JOB, attempt: o.attempt ?? "1", source: "poll" });
      return send(`/kie-callback?${q}`, {
        method: "POST",
        body: typeof reply === "string" ? reply : JSON.stringify(reply),
        headers: {
          authorization: `Bearer ${o.key ?? FINALIZE_CREDENTIAL}`,
          "content-type": "application/json",
        },
      });
    },
  };
}

/** A success callback body as KIE documents it (task details, callbacks). */
export function successBody(data: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  return {
    code: 200,
    msg: "Playground task completed successfully.",
    data: {
      taskId: TASK,
      model: "google/imagen4-fast",
      state: "success",
      param: JSON.stringify({ model: "google/imagen4-fast", input: { prompt: "a cat" } }),
      resultJson: JSON.stringify({ resultUrls: [URL_A] }),
      failCode: "",
      failMsg: "",
      costTime: 15,
      createTime: NOW_MS - 20_000,
      completeTime: NOW_MS - 5_000,
      creditsConsumed: 4,
      ...data,
    },
    ...top,
  };
}

export function failureBody(data: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  return {
    code: 501,
    msg: "Playground task failed.",
    data: {
      taskId: TASK,
      model: "google/imagen4-fast",
      state: "fail",
      resultJson: "",
      failCode: "500",
      failMsg: "Content policy violation",
      ...data,
    },
    ...top,
  };
}

/** `base64(HMAC-SHA256(key, taskId + "." + timestamp))` as KIE signs callbacks. */
export async function sign(key: string, taskId: string, timestamp: string): Promise<string> {
  const k = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(`${taskId}.${timestamp}`)),
  );
  return btoa(String.fromCharCode(...mac));
}
