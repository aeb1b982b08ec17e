/**
 * Comparing and hiding secrets: callback tokens, the service key, the webhook key.
 */

const encoder = new TextEncoder();

/** Lower-case hex SHA-256 of a UTF-8 string: how callback tokens are stored. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Equality without an early exit. Both sides are hashed first, so neither the position of the
 * first wrong character nor the secret's length shows in the time taken.
 */
export async function timingSafeEqualText(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all(
    [a, b].map(async (s) => new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)))),
  );
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** Replace every occurrence of any secret (ignoring very short ones) with `[redacted]`. */
export function redact(text: string, secrets: readonly (string | null | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 8) out = out.split(s).join("[redacted]");
  return out;
}

/**
 * `value` with every secret replaced in each string it holds, at any depth (arrays and plain
 * objects are walked; their keys are the caller's own names and stay), so a secret is matched as it
 * is, before JSON escapes it; numbers, booleans and null pass as they are, anything else becomes its
 * redacted String().
 */
export function redactDeep(value: unknown, secrets: readonly (string | null | undefined)[]): unknown {
  if (typeof value === "string") return redact(value, secrets);
  if (value === null || value === undefined || typeof value === "number" || typeof value === "boolean") {
    return value;
  }
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, secrets));
  if (Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([key, item]) => [key, redactDeep(item, secrets)]),
    );
  }
  return redact(String(value), secrets);
}
