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
