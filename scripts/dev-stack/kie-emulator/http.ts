/** HTTP plumbing: replies as values, body reading with a cap, fault-shaped answers. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string | Buffer;
}

/** What a handler decided: a reply (maybe held back or cut off) or a reset connection. */
export type Outcome = { reply: Reply; delay?: number; resetAfter?: boolean } | { resetBefore: true };

export function json(status: number, value: unknown): Reply {
  return { status, headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) };
}

/** KIE's envelope: HTTP 200, the outcome in body `code` (§1). */
export function envelope(code: number, msg: string, data: unknown = null): Reply {
  return json(200, { code, msg, data });
}

export function text(status: number, body: string, type = "text/plain; charset=utf-8"): Reply {
  return { status, headers: { "Content-Type": type }, body };
}

/** What Cloudflare in front of KIE answers: never JSON (§1, §6). */
export function edgeError(status: number): Reply {
  if (status === 403) return text(403, "error code: 1010");
  if (status === 522) {
    return text(
      522,
      "<!DOCTYPE html>\n<html><head><title>api.kie.ai | 522: Connection timed out</title></head>" +
        "<body><h1>Error 522</h1><p>Connection timed out</p><p>Cloudflare Ray ID: emulator</p></body></html>",
      "text/html; charset=UTF-8",
    );
  }
  const reason = STATUS_CODES[status] ?? "Error";
  return text(status, `<html><body><h1>${status} ${reason}</h1></body></html>`, "text/html; charset=UTF-8");
}

export class BodyTooLarge extends Error {}

export async function readBody(req: IncomingMessage, maxBytes = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) throw new BodyTooLarge(`request body is larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON body; undefined when it is not JSON. */
export function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
}

export function send(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(Buffer.byteLength(reply.body)) });
  res.end(reply.body);
}

/** undici says "fetch failed"; the useful part (ECONNREFUSED, ...) is in the cause. */
export function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
