/**
 * Bytes from the network, read under a cap, and images recognised by their content.
 */

/** Read a stream to the end, giving up (and cancelling it) as soon as it exceeds `maxBytes`. */
export async function readCapped(
  stream: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<Uint8Array | "too-large"> {
  if (stream === null) return new Uint8Array();
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      return "too-large";
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

export interface ImageKind {
  mime: "image/png" | "image/jpeg" | "image/webp";
  ext: "png" | "jpg" | "webp";
}

const startsWith = (bytes: Uint8Array, at: number, sig: number[]) => sig.every((b, i) => bytes[at + i] === b);
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));

/** PNG, JPEG or WebP by magic bytes; null for anything else, whatever its Content-Type said. */
export function sniffImage(bytes: Uint8Array): ImageKind | null {
  if (startsWith(bytes, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) {
    return { mime: "image/png", ext: "png" };
  }
  if (startsWith(bytes, 0, [0xff, 0xd8, 0xff])) return { mime: "image/jpeg", ext: "jpg" };
  if (startsWith(bytes, 0, ascii("RIFF")) && startsWith(bytes, 8, ascii("WEBP"))) {
    return { mime: "image/webp", ext: "webp" };
  }
  return null;
}

/** Brands of an ISO media file (ftyp box) that name a still image format. */
const IMAGE_BRANDS: Record<string, string> = {
  avif: "AVIF",
  avis: "AVIF",
  heic: "HEIC",
  heix: "HEIC",
  heim: "HEIC",
  heis: "HEIC",
  mif1: "HEIF",
  msf1: "HEIF",
};

/**
 * The name of an image format other than PNG, JPEG and WebP that the bytes are, by their magic
 * bytes, or null. Such a result is an image of a type the bucket does not take, the same on every
 * delivery; bytes that are no image at all (a host's error page served with 200) may not be.
 */
export function otherImageFormat(bytes: Uint8Array): string | null {
  if (startsWith(bytes, 0, ascii("GIF87a")) || startsWith(bytes, 0, ascii("GIF89a"))) return "GIF";
  if (startsWith(bytes, 0, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, 0, [0x4d, 0x4d, 0x00, 0x2a])) {
    return "TIFF";
  }
  if (startsWith(bytes, 4, ascii("ftyp"))) {
    const brand = String.fromCharCode(...bytes.slice(8, 12));
    return IMAGE_BRANDS[brand] ?? null;
  }
  return null;
}

/**
 * A download's outcome. `unusable` marks a failure no retry can mend (the URL itself is off the
 * accepted hosts, the image is larger than the cap, which is the bucket's own limit, or of a type
 * other than PNG, JPEG and WebP); every other failure may pass on a later delivery. `notImage` marks
 * bytes that are no image at all: most likely the host's error page, which may pass, or not.
 */
export type FetchedImage =
  | { ok: true; bytes: Uint8Array; kind: ImageKind }
  | { ok: false; reason: string; unusable?: true; notImage?: true };

export interface FetchLimits {
  timeoutMs: number;
  maxBytes: number;
  /** Redirects followed at most; each target must pass `allowed` too. */
  maxRedirects: number;
  /** Why a URL may not be requested, or null (see result-hosts.ts). */
  allowed: (url: string) => string | null;
}

/**
 * Download one image: the timeout covers the whole transfer, redirects are followed by hand
 * (each hop checked against `allowed`, at most `maxRedirects`), the size cap is enforced while
 * reading (a Content-Length header is only used to refuse early), and the bytes must be an image.
 * Reasons never include the URL: result URLs can carry signed query strings.
 */
export async function fetchImage(
  fetchFn: typeof fetch,
  url: string,
  limits: FetchLimits,
): Promise<FetchedImage> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), limits.timeoutMs);
  try {
    let target = url;
    for (let hop = 0;; hop++) {
      const problem = limits.allowed(target);
      // The result URL itself is the same on every delivery: no retry mends it. A redirect is the
      // host's answer of the moment, and may change.
      if (problem !== null && hop === 0) return { ok: false, reason: `refused: ${problem}`, unusable: true };
      if (problem !== null) return { ok: false, reason: `redirect refused: ${problem}` };
      const res = await fetchFn(target, { signal: controller.signal, redirect: "manual" });
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location !== null) {
        await res.body?.cancel().catch(() => {});
        if (hop >= limits.maxRedirects) {
          return { ok: false, reason: `more than ${limits.maxRedirects} redirects` };
        }
        try {
          target = new URL(location, target).href;
        } catch {
          return { ok: false, reason: "a redirect to an invalid URL" };
        }
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        return { ok: false, reason: `HTTP ${res.status}` };
      }
      const declared = Number(res.headers.get("content-length"));
      if (declared > limits.maxBytes) {
        await res.body?.cancel().catch(() => {});
        return { ok: false, reason: `larger than ${limits.maxBytes} bytes`, unusable: true };
      }
      const bytes = await readCapped(res.body, limits.maxBytes);
      if (bytes === "too-large") {
        return { ok: false, reason: `larger than ${limits.maxBytes} bytes`, unusable: true };
      }
      const kind = sniffImage(bytes);
      if (kind === null) {
        const other = otherImageFormat(bytes);
        if (other !== null) {
          return { ok: false, reason: `a ${other} image, not PNG, JPEG or WebP`, unusable: true };
        }
        // Most likely the host's error page served with 200: the next delivery may get the image.
        return { ok: false, reason: "not a PNG, JPEG or WebP image", notImage: true };
      }
      return { ok: true, bytes, kind };
    }
  } catch (error) {
    if (controller.signal.aborted) return { ok: false, reason: `timed out after ${limits.timeoutMs} ms` };
    return { ok: false, reason: `unreachable (${error instanceof Error ? error.name : "error"})` };
  } finally {
    clearTimeout(timer);
  }
}

/** A task's place in the lanes: `signal` ends its wait (never a task that already runs). */
export interface LaneOptions {
  signal?: AbortSignal;
}

export type Lanes = <T>(task: () => Promise<T>, options?: LaneOptions) => Promise<T>;

/**
 * At most `limit` tasks at a time, started in the order they were asked for (first come, first
 * served). One set of lanes is shared by every request a process serves, so what they hold at
 * once is bounded per process, not per request.
 *
 * A task waiting for a lane whose `signal` aborts leaves the queue at once and is never started:
 * its caller gets the signal's reason, and the next lane freed goes to the next task still
 * waiting. A signal aborted before the call takes no lane, even a free one. Once a task runs, its
 * signal no longer matters to the lanes.
 */
export function createLanes(limit: number): Lanes {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>, { signal }: LaneOptions = {}): Promise<T> => {
    signal?.throwIfAborted();
    if (running >= limit) {
      await new Promise<void>((resolve, reject) => {
        const grant = () => {
          signal?.removeEventListener("abort", leave);
          resolve();
        };
        const leave = () => {
          const at = waiting.indexOf(grant);
          if (at !== -1) waiting.splice(at, 1);
          reject(signal!.reason);
        };
        signal?.addEventListener("abort", leave, { once: true });
        waiting.push(grant);
      });
    } else running++;
    try {
      return await task();
    } finally {
      // The lane passes straight to the next waiting task, or is freed.
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
