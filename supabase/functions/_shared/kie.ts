/**
 * KIE.ai contract helpers shared by the Edge Functions (the `kie-callback` receiver first).
 *
 * Pure module: no I/O, no environment, no clock. Callers pass the current time in, so every
 * decision here is reproducible in tests. The contract it encodes is `kie-api.md`
 * (§1 envelope, §3 recordInfo data, §4 callbacks and signing, §6 error codes).
 */
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// Task results: callback bodies and recordInfo replies
// ---------------------------------------------------------------------------------------------

/** Task ids are opaque strings; we store them as text of at most this many characters (§2). */
const KIE_TASK_ID_MAX_LENGTH = 64;

/** Callback body codes (§4): 200 = task succeeded, 501 = generation failed. */
const KIE_CALLBACK_SUCCESS_CODE = 200;
const KIE_CALLBACK_FAILURE_CODE = 501;

/** A number that KIE may send as a JSON number or as a numeric string; anything else is null. */
function toFiniteNumber(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && value.trim() !== "") {
    const n = Number(value.trim());
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/**
 * Metadata fields never decide the outcome, so a field of an unexpected type degrades to null
 * instead of rejecting a callback that is otherwise perfectly usable.
 */
const lenientNumber = z.unknown().optional().transform(toFiniteNumber);
const lenientString = z.unknown().optional().transform((v) => (typeof v === "string" ? v : null));

/** Body `code`: an integer, possibly sent as a numeric string. */
const codeSchema = z.union([
  z.number().int(),
  z.string().trim().regex(/^-?\d+$/, "code must be an integer").transform(Number),
]);

/** `failCode` is documented as a string, `""` or null on success; numbers are tolerated. */
const failCodeSchema = z
  .union([z.string(), z.number()])
  .nullish()
  .transform((v) => {
    if (v === null || v === undefined) return null;
    const s = String(v).trim();
    return s === "" ? null : s;
  });

/** recordInfo `data` (§3); callbacks carry "the same fields" (§4). Unknown keys are ignored. */
const kieTaskDataSchema = z.object({
  // Market endpoints say `taskId`, other KIE APIs `task_id` (§4): accept either.
  taskId: z.string().nullish(),
  task_id: z.string().nullish(),
  model: lenientString,
  state: z.string().nullish(),
  // JSON string of the whole createTask body (§3); kept raw, the caller decides whether to parse.
  param: lenientString,
  // JSON string `{"resultUrls":[...]}` on success; may be "", null, or (tolerated) an object.
  resultJson: z.unknown(),
  failCode: failCodeSchema,
  failMsg: lenientString,
  // Unit is ambiguous (documented ms, examples look like s): passed through unconverted.
  costTime: lenientNumber,
  createTime: lenientNumber,
  updateTime: lenientNumber,
  completeTime: lenientNumber,
  // Newer docs say creditsConsumed, older payloads consumeCredits (§3).
  creditsConsumed: lenientNumber,
  consumeCredits: lenientNumber,
  remainedCredits: lenientNumber,
});

/** The reply envelope `{ code, msg, data }` (§1); some docs say `message` instead of `msg`. */
const kieEnvelopeSchema = z.object({
  code: codeSchema,
  msg: lenientString,
  message: lenientString,
  data: kieTaskDataSchema.nullish(),
});

/** Everything besides the outcome that is worth recording; null when KIE did not send it. */
export interface KieTaskMeta {
  /** Body code as received (200 or 501). */
  code: number;
  /** `msg`, falling back to `message`. */
  message: string | null;
  model: string | null;
  /** Normalised (trimmed, lower-case) state, null when absent (callbacks may omit it). */
  state: string | null;
  param: string | null;
  costTime: number | null;
  createTime: number | null;
  updateTime: number | null;
  completeTime: number | null;
  /** `creditsConsumed`, falling back to the older `consumeCredits`. */
  creditsConsumed: number | null;
  remainedCredits: number | null;
}

export type KieTaskResult =
  | { ok: true; taskId: string; outcome: "success"; resultUrls: string[]; meta: KieTaskMeta }
  | {
    ok: true;
    taskId: string;
    outcome: "failed";
    /** KIE's failCode; null when KIE sent none or the failure was detected by us. */
    failCode: string | null;
    failMessage: string;
    /**
     * true: KIE said the task failed (code 501 / state fail).
     * false: KIE said success but the result was unusable (no http(s) URL, malformed resultJson).
     */
    reportedByKie: boolean;
    meta: KieTaskMeta;
  }
  | { ok: true; taskId: string; outcome: "pending"; state: string; meta: KieTaskMeta }
  | { ok: false; error: string; code?: number };

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "(body)"}: ${i.message}`)
    .join("; ");
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}

/**
 * Pull the result URLs out of `resultJson`. Returns the http(s) URLs (deduplicated, in order),
 * or an error string when resultJson is present but not parseable.
 */
function extractResultUrls(resultJson: unknown): { urls: string[] } | { error: string } {
  let parsed: unknown = resultJson;
  if (typeof resultJson === "string") {
    const text = resultJson.trim();
    if (text === "") return { urls: [] };
    try {
      parsed = JSON.parse(text);
    } catch {
      return { error: "resultJson is not valid JSON" };
    }
  }
  if (parsed === null || parsed === undefined) return { urls: [] };
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    return { error: "resultJson is not a JSON object" };
  }
  const raw = (parsed as Record<string, unknown>).resultUrls;
  const candidates = Array.isArray(raw) ? raw : typeof raw === "string" ? [raw] : [];
  const urls: string[] = [];
  for (const c of candidates) {
    if (typeof c !== "string") continue;
    const u = c.trim();
    if (isHttpUrl(u) && !urls.includes(u)) urls.push(u);
  }
  return { urls };
}

/**
 * Interpret a KIE callback body (§4) or a recordInfo reply (§3) — they share one shape.
 *
 * - Envelope code other than 200/501 (e.g. recordInfo's 422 "recordInfo is null") → `ok: false`
 *   with the code, so the caller can look it up in {@link kieErrorDisposition}.
 * - Code 501 or state `fail` → `failed`.
 * - Any state other than `success`/`fail` → `pending`: only those two are terminal (§3), so an
 *   unknown future state is treated as "not finished yet" rather than as an error.
 * - Code 200 with state `success`, or with no state at all (callbacks fire only on terminal
 *   states) → `success`, but only with at least one http(s) result URL; otherwise `failed`
 *   with `reportedByKie: false`, because there is nothing to deliver to the user.
 *
 * Accepts the parsed JSON value, or the raw JSON text.
 */
export function parseKieTaskResult(body: unknown): KieTaskResult {
  let value = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      return { ok: false, error: "body is not valid JSON" };
    }
  }

  const parsed = kieEnvelopeSchema.safeParse(value);
  if (!parsed.success) {
    return { ok: false, error: `invalid KIE body: ${formatIssues(parsed.error)}` };
  }
  const { code, data } = parsed.data;
  const message = parsed.data.msg || parsed.data.message || null;

  if (code !== KIE_CALLBACK_SUCCESS_CODE && code !== KIE_CALLBACK_FAILURE_CODE) {
    return { ok: false, code, error: `KIE code ${code}${message ? `: ${message}` : ""}` };
  }
  if (data === null || data === undefined) {
    return { ok: false, code, error: "KIE body has no data" };
  }

  // Kept verbatim (not trimmed): it is what the signature covers and what we store.
  const camel = data.taskId?.trim() ? data.taskId : null;
  const snake = data.task_id?.trim() ? data.task_id : null;
  if (camel !== null && snake !== null && camel !== snake) {
    return { ok: false, code, error: "data.taskId and data.task_id disagree" };
  }
  const taskId = camel ?? snake;
  if (taskId === null) {
    return { ok: false, code, error: "data.taskId is missing" };
  }
  if (taskId.length > KIE_TASK_ID_MAX_LENGTH) {
    return { ok: false, code, error: `data.taskId is longer than ${KIE_TASK_ID_MAX_LENGTH} characters` };
  }

  const state = data.state?.trim().toLowerCase() || null;
  const meta: KieTaskMeta = {
    code,
    message,
    model: data.model,
    state,
    param: data.param,
    costTime: data.costTime,
    createTime: data.createTime,
    updateTime: data.updateTime,
    completeTime: data.completeTime,
    creditsConsumed: data.creditsConsumed ?? data.consumeCredits,
    remainedCredits: data.remainedCredits,
  };

  if (code === KIE_CALLBACK_FAILURE_CODE || state === "fail") {
    const failMessage = data.failMsg?.trim() || message?.trim() || "KIE reported the task as failed";
    return {
      ok: true,
      taskId,
      outcome: "failed",
      failCode: data.failCode,
      failMessage,
      reportedByKie: true,
      meta,
    };
  }

  if (state !== null && state !== "success") {
    return { ok: true, taskId, outcome: "pending", state, meta };
  }

  const extracted = extractResultUrls(data.resultJson);
  if ("error" in extracted) {
    return {
      ok: true,
      taskId,
      outcome: "failed",
      failCode: null,
      failMessage: `KIE reported success but ${extracted.error}`,
      reportedByKie: false,
      meta,
    };
  }
  if (extracted.urls.length === 0) {
    return {
      ok: true,
      taskId,
      outcome: "failed",
      failCode: null,
      failMessage: "KIE reported success but resultJson has no http(s) result URL",
      reportedByKie: false,
      meta,
    };
  }
  return { ok: true, taskId, outcome: "success", resultUrls: extracted.urls, meta };
}

// ---------------------------------------------------------------------------------------------
// Webhook signature (§4)
// ---------------------------------------------------------------------------------------------

/** Header names KIE uses when webhook signing is enabled on the account. */
const KIE_TIMESTAMP_HEADER = "X-Webhook-Timestamp";
const KIE_SIGNATURE_HEADER = "X-Webhook-Signature";

/** KIE documents no replay window; 300 s is our assumption (§4). */
const KIE_DEFAULT_MAX_SKEW_SECONDS = 300;

export interface VerifyKieSignatureInput {
  /** The webhook HMAC key configured in the KIE account. */
  key: string;
  /** `data.taskId` from the body: the signature vouches for it, and nothing else in the body. */
  taskId: string | null | undefined;
  /** `X-Webhook-Timestamp` header, Unix seconds, exactly as received. */
  timestamp: string | null | undefined;
  /** `X-Webhook-Signature` header: base64 of the HMAC-SHA256. */
  signature: string | null | undefined;
  /** Current time in Unix seconds (passed in so the check is deterministic). */
  nowSeconds: number;
  /** Accept timestamps at most this far in the past or the future. */
  maxSkewSeconds?: number;
}

export type KieSignatureCheck = { ok: true } | { ok: false; reason: string };

const encoder = new TextEncoder();

/** Strict standard base64 (RFC 4648 §4, padded), as KIE documents; anything else is refused. */
function decodeBase64(text: string): Uint8Array | null {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return null;
  try {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/**
 * Compare two byte strings without an early exit, so the time taken does not reveal how many
 * leading bytes of a forged signature were right. The length is not secret (always 32 bytes).
 */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * Verify a signed KIE callback:
 * `signature == base64(HMAC-SHA256(key, taskId + "." + timestamp))`.
 *
 * Only the task id and the timestamp are signed — not the body. A valid signature therefore
 * proves "KIE sent something about this task recently", never that the body is authentic: treat
 * the body as a hint and re-read recordInfo before trusting its outcome or URLs (§4).
 *
 * The timestamp is signed as the exact header text (no re-serialisation), and must lie within
 * `maxSkewSeconds` of `nowSeconds` in either direction, which bounds replays.
 */
export async function verifyKieSignature(input: VerifyKieSignatureInput): Promise<KieSignatureCheck> {
  const { key, taskId, timestamp, signature, nowSeconds } = input;
  const maxSkewSeconds = input.maxSkewSeconds ?? KIE_DEFAULT_MAX_SKEW_SECONDS;

  if (typeof key !== "string" || key === "") return { ok: false, reason: "no webhook key configured" };
  if (typeof taskId !== "string" || taskId === "") return { ok: false, reason: "missing task id" };
  if (typeof timestamp !== "string" || timestamp === "") {
    return { ok: false, reason: `missing ${KIE_TIMESTAMP_HEADER}` };
  }
  if (typeof signature !== "string" || signature === "") {
    return { ok: false, reason: `missing ${KIE_SIGNATURE_HEADER}` };
  }
  if (!Number.isFinite(nowSeconds) || !Number.isFinite(maxSkewSeconds) || maxSkewSeconds < 0) {
    return { ok: false, reason: "invalid clock or skew window" };
  }

  // Digits only: no sign, decimals, exponent or whitespace, so "1e9" or " 123" cannot alias.
  if (!/^\d{1,15}$/.test(timestamp)) return { ok: false, reason: "timestamp is not Unix seconds" };
  const ts = Number(timestamp);
  if (ts < nowSeconds - maxSkewSeconds) {
    const hint = ts > nowSeconds * 100 ? " (looks like milliseconds)" : "";
    return { ok: false, reason: `timestamp is too old${hint}` };
  }
  if (ts > nowSeconds + maxSkewSeconds) {
    const hint = ts > nowSeconds * 100 ? " (looks like milliseconds)" : "";
    return { ok: false, reason: `timestamp is in the future${hint}` };
  }

  const provided = decodeBase64(signature.trim());
  if (provided === null) return { ok: false, reason: "signature is not valid base64" };

  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const expected = new Uint8Array(
    await crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(`${taskId}.${timestamp}`)),
  );
  return timingSafeEqual(provided, expected) ? { ok: true } : { ok: false, reason: "signature mismatch" };
}

// ---------------------------------------------------------------------------------------------
// Body codes (§6)
// ---------------------------------------------------------------------------------------------

/**
 * - `ok`: success.
 * - `permanent`: retrying the same request cannot help; fail the job.
 * - `transient`: retry with backoff (bounded); for createTask these codes prove KIE did not
 *   accept the task, so resubmitting cannot create a second billed task (§1).
 * - `hold`: the account, not the job, is at fault: pause dispatch, keep the job, alert.
 * - `terminal`: the attempt is over (generation failed); a new attempt is a new task.
 */
export type KieDispositionKind = "ok" | "permanent" | "transient" | "hold" | "terminal";

export interface KieDisposition {
  kind: KieDispositionKind;
  /** An operator must act (configuration, credits, quota). */
  operatorAlert: boolean;
  reason: string;
}

/** Which call produced the code: 422 means different things for createTask and recordInfo. */
export type KieOperation = "createTask" | "recordInfo";

/** The §6 table as data. 422 is listed for createTask; see {@link kieErrorDisposition}. */
export const KIE_ERROR_CODES: Readonly<Record<number, KieDisposition>> = Object.freeze({
  200: { kind: "ok", operatorAlert: false, reason: "ok" },
  400: { kind: "permanent", operatorAlert: false, reason: "missing or bad parameter" },
  401: { kind: "permanent", operatorAlert: true, reason: "bad or missing API key (configuration)" },
  402: {
    kind: "hold",
    operatorAlert: true,
    reason: "KIE account out of credits; hold dispatch, the user is not at fault",
  },
  404: { kind: "permanent", operatorAlert: false, reason: "not found" },
  422: { kind: "permanent", operatorAlert: false, reason: "validation failed or content rejected" },
  429: {
    kind: "transient",
    operatorAlert: false,
    reason: "rate limited, request not queued; back off a full window and resubmit",
  },
  433: { kind: "hold", operatorAlert: true, reason: "sub-key over its usage cap; hold dispatch" },
  455: { kind: "transient", operatorAlert: false, reason: "maintenance or unavailable" },
  500: {
    kind: "transient",
    operatorAlert: false,
    reason: "server error (sometimes a disguised validation error); bounded attempts",
  },
  501: { kind: "terminal", operatorAlert: false, reason: "generation failed; terminal for this attempt" },
  505: { kind: "permanent", operatorAlert: false, reason: "feature disabled" },
});

const RECORD_INFO_422: KieDisposition = Object.freeze({
  kind: "transient",
  operatorAlert: false,
  reason: '"recordInfo is null": unknown id, or a new task not visible yet; transient within a grace period',
});

/**
 * How to treat a KIE body `code` (§6). Codes outside the table: other 5xx are transient
 * (bounded, like 500), anything else permanent. Transport failures (timeouts, Cloudflare
 * HTTP 403/522) have no body code and are the caller's to classify.
 */
export function kieErrorDisposition(code: number, operation: KieOperation = "createTask"): KieDisposition {
  if (code === 422 && operation === "recordInfo") return RECORD_INFO_422;
  const known = KIE_ERROR_CODES[code];
  if (known) return known;
  if (Number.isInteger(code) && code >= 500 && code <= 599) {
    return {
      kind: "transient",
      operatorAlert: false,
      reason: `undocumented server code ${code}; bounded attempts`,
    };
  }
  return { kind: "permanent", operatorAlert: false, reason: `undocumented code ${code}` };
}
