/**
 * KIE's webhook signature (kie-api.md §4), checked by the `kie-callback` receiver. Reading a
 * task report and classifying KIE's codes are the database's job (`private.interpret_task_report`,
 * `private.kie_outcomes`); only what must happen outside the database lives here.
 *
 * Pure module: no I/O, no environment, no clock. Callers pass the current time in.
 */

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
