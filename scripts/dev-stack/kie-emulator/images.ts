/**
 * Result images: real PNGs (pngjs), sized from the aspect ratio, patterned from a hash of the
 * prompt; image-to-image results are the downloaded input, resampled and tinted by the prompt.
 * The fault `format=gif` serves the prompt's pattern as a real GIF instead; `format=html` serves
 * a file host's error page (HTML, with 200) where the image should be.
 */
import { createHash } from "node:crypto";
import { PNG } from "pngjs";
import { describeFetchError } from "./http.ts";

export interface Size {
  width: number;
  height: number;
}

/** `W:H` with the long edge `longEdge`; "auto" follows `auto` (the input image) or is square. */
export function sizeFor(aspectRatio: string, longEdge: number, auto: Size | null = null): Size {
  let w = 1;
  let h = 1;
  const m = /^(\d+):(\d+)$/.exec(aspectRatio);
  if (m) [w, h] = [Number(m[1]), Number(m[2])];
  else if (aspectRatio === "auto" && auto) [w, h] = [auto.width, auto.height];
  if (w >= h) return { width: longEdge, height: Math.max(1, Math.round((longEdge * h) / w)) };
  return { width: Math.max(1, Math.round((longEdge * w) / h)), height: longEdge };
}

type Rgb = [number, number, number];

function hashBytes(data: string | Buffer): Buffer {
  return createHash("sha256").update(data).digest();
}

/** Two colours and a pattern, all from the prompt: different prompts look different. */
function promptStyle(prompt: string) {
  const h = hashBytes(prompt);
  return {
    a: [h[0], h[1], h[2]] as Rgb,
    b: [255 - h[0], 255 - h[1], 255 - h[2]] as Rgb,
    period: 8 + (h[6] % 24),
    pattern: h[7] % 4,
  };
}

function patternAt(style: ReturnType<typeof promptStyle>, x: number, y: number): Rgb {
  const p = style.period;
  const cells = [Math.floor(y / p), Math.floor(x / p), Math.floor((x + y) / p), Math.floor(x / p) + Math.floor(y / p)];
  return cells[style.pattern] % 2 === 0 ? style.a : style.b;
}

function encode(size: Size, pixel: (x: number, y: number) => Rgb): Buffer {
  const png = new PNG({ width: size.width, height: size.height });
  for (let y = 0; y < size.height; y++) {
    for (let x = 0; x < size.width; x++) {
      const [r, g, b] = pixel(x, y);
      const i = (y * size.width + x) * 4;
      png.data[i] = r;
      png.data[i + 1] = g;
      png.data[i + 2] = b;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

export function renderTextToImage(prompt: string, size: Size): Buffer {
  const style = promptStyle(prompt);
  return encode(size, (x, y) => patternAt(style, x, y));
}

/**
 * The prompt's two-colour pattern as a GIF89a (one frame, a four-entry palette). The LZW stream
 * sends a clear code before every second pixel, so every code stays 3 bits wide: large, but a
 * valid GIF any decoder reads.
 */
export function renderGif(prompt: string, size: Size): Buffer {
  const style = promptStyle(prompt);
  const le16 = (n: number) => [n & 0xff, n >> 8];
  const CLEAR = 4;
  const END = 5;
  const packed: number[] = [];
  let acc = 0;
  let bits = 0;
  const put = (code: number) => {
    acc |= code << bits;
    bits += 3;
    while (bits >= 8) {
      packed.push(acc & 0xff);
      acc >>= 8;
      bits -= 8;
    }
  };
  let i = 0;
  for (let y = 0; y < size.height; y++) {
    for (let x = 0; x < size.width; x++) {
      if (i++ % 2 === 0) put(CLEAR);
      put(patternAt(style, x, y) === style.a ? 0 : 1);
    }
  }
  put(END);
  if (bits > 0) packed.push(acc & 0xff);
  const blocks: number[] = [];
  for (let at = 0; at < packed.length; at += 255) {
    const chunk = packed.slice(at, at + 255);
    blocks.push(chunk.length, ...chunk);
  }
  return Buffer.from([
    ...Buffer.from("GIF89a", "latin1"),
    ...le16(size.width),
    ...le16(size.height),
    0xf1, // global colour table of 4 entries, 8 bits per primary
    0,
    0,
    ...style.a,
    ...style.b,
    0, 0, 0,
    0, 0, 0,
    0x2c, // image descriptor: the whole screen, no local table, not interlaced
    ...le16(0),
    ...le16(0),
    ...le16(size.width),
    ...le16(size.height),
    0,
    2, // LZW minimum code size
    ...blocks,
    0,
    0x3b,
  ]);
}

/** A file host's error page, served with 200 where a result image should be (`format=html`). */
export function renderErrorPage(): Buffer {
  return Buffer.from(
    "<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\n" +
      "<body><h1>503 Service Temporarily Unavailable</h1></body></html>\n",
    "latin1",
  );
}

/** The Content-Type of a result file from its first bytes: image/gif, text/html or image/png. */
export function resultContentType(bytes: Buffer): string {
  if (bytes.subarray(0, 3).toString("latin1") === "GIF") return "image/gif";
  if (bytes.subarray(0, 1).toString("latin1") === "<") return "text/html";
  return "image/png";
}

/** The extension a result file's URL ends with, from its Content-Type. */
export function resultExtension(bytes: Buffer): "gif" | "html" | "png" {
  const type = resultContentType(bytes);
  return type === "image/gif" ? "gif" : type === "text/html" ? "html" : "png";
}

/** A decoded PNG, or null when the bytes are another format (jpeg, webp) or broken. */
export function decodePng(bytes: Buffer): PNG | null {
  try {
    return PNG.sync.read(bytes);
  } catch {
    return null;
  }
}

/** The share of the result that comes from the input image; the rest is the prompt's pattern. */
export const INPUT_WEIGHT = 0.7;

/**
 * Image-to-image: the first input that decodes as PNG, resampled to the result size; inputs we
 * cannot decode contribute a flat colour from their bytes' hash. Then tinted by the prompt.
 */
export function renderFromInputs(prompt: string, inputs: Buffer[], size: Size): Buffer {
  const style = promptStyle(prompt);
  const source = inputs.map(decodePng).find((png) => png !== null) ?? null;
  const flat = hashBytes(Buffer.concat(inputs));
  const inputAt = (x: number, y: number): Rgb => {
    if (!source) return [flat[0], flat[1], flat[2]];
    const sx = Math.min(source.width - 1, Math.floor((x * source.width) / size.width));
    const sy = Math.min(source.height - 1, Math.floor((y * source.height) / size.height));
    const i = (sy * source.width + sx) * 4;
    return [source.data[i], source.data[i + 1], source.data[i + 2]];
  };
  return encode(size, (x, y) => {
    const input = inputAt(x, y);
    const tint = patternAt(style, x, y);
    return input.map((c, k) => Math.round(INPUT_WEIGHT * c + (1 - INPUT_WEIGHT) * tint[k])) as Rgb;
  });
}

/** Width and height of the first input that decodes as PNG, for aspect ratio "auto". */
export function firstPngSize(inputs: Buffer[]): Size | null {
  for (const bytes of inputs) {
    const png = decodePng(bytes);
    if (png) return { width: png.width, height: png.height };
  }
  return null;
}

/** jpeg, png or webp by magic bytes: the formats KIE accepts as input (§5). */
export function imageFormat(bytes: Buffer): "png" | "jpeg" | "webp" | null {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return "png";
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (bytes.subarray(0, 4).toString("latin1") === "RIFF" && bytes.subarray(8, 12).toString("latin1") === "WEBP") {
    return "webp";
  }
  return null;
}

export class InputFetchError extends Error {}

/** Downloads one input image with a timeout and a size cap; InputFetchError says why it failed. */
export async function fetchInput(url: string, timeoutMs: number, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([timeout, signal]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, { signal: combined, redirect: "follow" });
  } catch (error) {
    const reason = timeout.aborted ? `timed out after ${timeoutMs} ms` : describeFetchError(error);
    throw new InputFetchError(`could not download image ${url}: ${reason}`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new InputFetchError(`could not download image ${url}: HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body.cancel();
    throw new InputFetchError(`image ${url} is larger than ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      total += chunk.length;
      if (total > maxBytes) throw new InputFetchError(`image ${url} is larger than ${maxBytes} bytes`);
      chunks.push(Buffer.from(chunk));
    }
  } catch (error) {
    if (error instanceof InputFetchError) throw error;
    const reason = timeout.aborted ? `timed out after ${timeoutMs} ms` : describeFetchError(error);
    throw new InputFetchError(`could not download image ${url}: ${reason}`);
  }
  const bytes = Buffer.concat(chunks);
  if (!imageFormat(bytes)) throw new InputFetchError(`image ${url} is not a jpeg, png or webp file`);
  return bytes;
}
