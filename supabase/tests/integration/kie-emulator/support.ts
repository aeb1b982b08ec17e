/** Shared helpers for the KIE emulator's contract tests. */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { PNG } from "pngjs";
import { afterEach } from "vitest";
import type { KieEmulatorOptions } from "../../../../scripts/dev-stack/kie-emulator/options.ts";
import { type KieEmulator, startKieEmulator } from "../../../../scripts/dev-stack/kie-emulator/server.ts";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
});

/**
 * An emulator on a free port, closed after the test. Defaults keep tests fast: instant tasks and
 * a poll limit that polling with a deadline never reaches (the limit tests set their own).
 */
export async function startEmulator(options: KieEmulatorOptions = {}): Promise<Kie> {
  const emulator = await startKieEmulator({ taskMs: 0, pollRate: { limit: 10_000, windowMs: 1000 }, ...options });
  open.push(emulator);
  return new Kie(emulator);
}

export interface Envelope<T = unknown> {
  code: number;
  msg: string;
  data: T;
}

export interface RecordData {
  taskId: string;
  model: string;
  state: string;
  param: string;
  resultJson: string;
  failCode: string;
  failMsg: string;
  costTime: number | null;
  completeTime: number | null;
  createTime: number;
  updateTime: number;
  creditsConsumed: number | null;
}

/** A thin client that speaks to the emulator the way the pipeline speaks to KIE. */
export class Kie {
  readonly url: string;
  key: string;

  constructor(readonly emulator: KieEmulator) {
    this.url = emulator.url;
    this.key = emulator.apiKey;
  }

  async call<T = unknown>(method: string, path: string, body?: unknown, key: string | null = this.key) {
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (key !== null) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let json: Envelope<T> | undefined;
    try {
      json = JSON.parse(text) as Envelope<T>;
    } catch {
      json = undefined;
    }
    return { status: response.status, contentType: response.headers.get("content-type"), text, json: json! };
  }

  create(body: unknown, key?: string | null) {
    return this.call<{ taskId: string } | null>("POST", "/api/v1/jobs/createTask", body, key);
  }

  /** createTask that must succeed; returns the task id. */
  async createOk(body: unknown): Promise<string> {
    const reply = await this.create(body);
    if (reply.json?.code !== 200) throw new Error(`createTask failed: ${reply.text}`);
    return reply.json.data!.taskId;
  }

  record(taskId: string | null, key?: string | null) {
    const query = taskId === null ? "" : `?taskId=${encodeURIComponent(taskId)}`;
    return this.call<RecordData | null>("GET", `/api/v1/jobs/recordInfo${query}`, undefined, key);
  }

  /** Polls recordInfo until the task is terminal (deadline, no fixed sleep). */
  async settled(taskId: string, timeoutMs = 5000): Promise<RecordData> {
    let last: RecordData | null = null;
    await waitFor(async () => {
      const reply = await this.record(taskId);
      last = reply.json.code === 200 ? reply.json.data : null;
      return last !== null && (last.state === "success" || last.state === "fail");
    }, timeoutMs);
    return last!;
  }

  admin<T = any>(method: string, path: string, body?: unknown) {
    return fetch(`${this.url}/__admin/${path}`, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as T }));
  }

  async counters() {
    return (await this.admin("GET", "counters")).body;
  }
}

export async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met before the deadline");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function imagen(prompt = "a red fox in the snow", extra: Record<string, unknown> = {}) {
  return { model: "google/imagen4", input: { prompt, aspect_ratio: "1:1", ...extra } };
}

export interface Received {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: any;
}

/** A local HTTP server that records requests; `answer` decides each reply (default 200). */
export async function receiver(answer: (n: number, req: IncomingMessage, res: ServerResponse) => void = (_n, _req, res) => res.end("ok")) {
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // raw bodies (images) stay text
      }
      received.push({ at: Date.now(), path: req.url ?? "", headers: req.headers, body });
      waiters.splice(0).forEach((w) => w());
      answer(received.length, req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const handle = {
    url,
    received,
    /** Resolves once `count` requests have arrived. */
    async count(count: number, timeoutMs = 5000) {
      await waitFor(() => received.length >= count, timeoutMs);
      return received;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  open.push(handle);
  return handle;
}

/** A file server for input images: path → bytes (or a handler). */
export async function fileServer(routes: Record<string, Buffer | ((req: IncomingMessage, res: ServerResponse) => void)>) {
  const server = createServer((req, res) => {
    const route = routes[req.url ?? ""];
    if (route === undefined) {
      res.writeHead(404).end("missing");
    } else if (typeof route === "function") {
      route(req, res);
    } else {
      res.writeHead(200, { "Content-Type": "image/png" }).end(route);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  open.push({
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  return url;
}

/** A solid-colour PNG of the given size, encoded by the library. */
export function solidPng(width: number, height: number, rgb: [number, number, number]): Buffer {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data.set([...rgb, 255], i * 4);
  }
  return PNG.sync.write(png);
}

export async function download(url: string) {
  const response = await fetch(url);
  return { status: response.status, type: response.headers.get("content-type"), bytes: Buffer.from(await response.arrayBuffer()) };
}

export function resultUrls(data: RecordData): string[] {
  return (JSON.parse(data.resultJson) as { resultUrls: string[] }).resultUrls;
}
