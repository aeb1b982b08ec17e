/**
 * The local stack's JWT secret and API keys: the well-known values `supabase start` prints for
 * every local project. They are public, local-only and never valid on a hosted project (each
 * hosted project has its own secret). Anything on this machine that needs the anon key, the
 * service key or to mint a user's JWT imports them from here.
 *
 * Tokens are HS256 JWTs, as the platform's API gateway and Storage verify them.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** The JWT secret of every local Supabase project (`supabase status` shows it). */
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

/** Claims of the two API keys `supabase start` prints (issuer `supabase-demo`, expiring in 2032). */
const KEY_EXPIRY = 1983812996;

export type JwtClaims = Record<string, unknown> & { exp?: number; iat?: number; role?: string; sub?: string };

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT over `claims`, header `{"alg":"HS256","typ":"JWT"}` (or another header). */
export function signJwt(
  claims: JwtClaims,
  secret: string = LOCAL_JWT_SECRET,
  header: Record<string, string> = { alg: "HS256", typ: "JWT" },
): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

export class JwtError extends Error {}

/**
 * The claims of a valid HS256 token, or a JwtError saying why not ("jwt malformed",
 * "invalid algorithm", "invalid signature", "jwt expired"), in the wording of the jsonwebtoken
 * library the platform's servers use.
 */
export function verifyJwt(token: string, secret: string = LOCAL_JWT_SECRET, nowSeconds = Date.now() / 1000): JwtClaims {
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw new JwtError("jwt malformed");
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    throw new JwtError("jwt malformed");
  }
  if (typeof header !== "object" || header === null || typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    throw new JwtError("jwt malformed");
  }
  if ((header as { alg?: unknown }).alg !== "HS256") throw new JwtError("invalid algorithm");
  const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new JwtError("invalid signature");
  const { exp } = claims as JwtClaims;
  if (exp !== undefined && (typeof exp !== "number" || exp <= nowSeconds)) throw new JwtError("jwt expired");
  return claims as JwtClaims;
}

/** The local anon key (role anon): what the app ships as its public key. */
export const LOCAL_ANON_KEY = signJwt({ iss: "supabase-demo", role: "anon", exp: KEY_EXPIRY });

/** The local service key (role service_role): servers only, bypasses RLS. */
export const LOCAL_SERVICE_ROLE_KEY = signJwt({ iss: "supabase-demo", role: "service_role", exp: KEY_EXPIRY });

/** A signed-in user's access token, shaped like the ones Supabase Auth issues. */
export function userJwt(userId: string, options: { expiresIn?: number; secret?: string; email?: string } = {}): string {
  const iat = Math.floor(Date.now() / 1000);
  return signJwt(
    {
      sub: userId,
      role: "authenticated",
      aud: "authenticated",
      iat,
      exp: iat + (options.expiresIn ?? 3600),
      ...(options.email ? { email: options.email } : {}),
    },
    options.secret ?? LOCAL_JWT_SECRET,
  );
}
