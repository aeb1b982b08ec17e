/**
 * Which result URLs the callback function may download: the TypeScript twin of
 * `private.result_url_problem` (results.allowed_hosts). SQL applies it when it reads a report;
 * this applies the same rule again before every request, redirects included.
 */

const ALLOWED_CHARS = /^[A-Za-z0-9._~:/?#[\]@!$&()*+,;=%-]+$/;
const SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([/?#].*)?$/;
const AUTHORITY = /^([A-Za-z0-9.-]+)(?::([1-9][0-9]{0,4}))?$/;
const ORIGIN_ENTRY = /^https?:\/\/[a-z0-9.-]+(:[0-9]+)?$/;
const IP_LIKE = [/(^|\.)([0-9]+|0x[0-9a-f]*)$/, /(^|[.-])([0-9]{1,3}[.-]){3}[0-9]{1,3}([.-]|$)/];
const PRIVATE_NAME = /(^|\.)(localhost|local|internal|localdomain|arpa|lan|intranet|corp|home|private)$/;

/** Why `url` may not be downloaded, or null. `allowed`: results.allowed_hosts, lower-case. */
export function resultUrlProblem(url: string, allowed: readonly string[]): string | null {
  if (url.length > 2048) return "the URL is longer than 2048 characters";
  if (!ALLOWED_CHARS.test(url)) return "the URL has characters that must be percent-encoded";
  const shape = SHAPE.exec(url);
  if (!shape) return "not an absolute URL";
  const scheme = shape[1].toLowerCase();
  if (scheme !== "http" && scheme !== "https") return "not an http(s) URL";
  const authority = AUTHORITY.exec(shape[2]);
  if (!authority || Number(authority[2] ?? 0) > 65535) {
    return "the host or port is malformed (user info and IPv6 are not accepted)";
  }
  const host = authority[1].toLowerCase();
  const port = Number(authority[2] ?? (scheme === "https" ? 443 : 80));
  const origin = `${scheme}://${host}:${port}`;
  const exact = allowed.some((a) =>
    ORIGIN_ENTRY.test(a) &&
    `${a}${/:[0-9]+$/.test(a) ? "" : a.startsWith("https:") ? ":443" : ":80"}` === origin
  );
  if (exact) return null;
  if (scheme !== "https" || port !== 443) return "only https on port 443 is accepted";
  if (IP_LIKE.some((re) => re.test(host))) return "the host is an IP address";
  if (PRIVATE_NAME.test(host)) return "the host is a private network name";
  if (!allowed.includes(host)) return "the host is not an accepted result host";
  return null;
}
