/**
 * KIE's public endpoints (kie-api.md §2, §3, §7) and the result files the emulator serves.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { validateCreate } from "./catalogue.ts";
import { type Endpoint, type FaultSet, FaultSyntaxError, parsePromptFaults } from "./faults.ts";
import { BodyTooLarge, edgeError, envelope, type Outcome, parseJson, readBody, type Reply, text } from "./http.ts";
import { resultContentType } from "./images.ts";
import type { EmulatorState } from "./state.ts";
import { createTask, recordData } from "./tasks.ts";

/** What chat/credit reports when no balance is set. */
export const UNLIMITED_BALANCE = 1_000_000;

const CODE_MESSAGES: Record<number, string> = {
  400: "Bad request: a parameter is missing or malformed",
  401: "You do not have access permissions",
  402: "Credits insufficient",
  404: "Not found",
  422: "Validation error",
  429: "Rate limited: too many requests, please try again later",
  433: "Sub-key usage exceeds the limit",
  455: "Service unavailable: system maintenance",
  500: "Server error, please try again later",
  501: "Generation failed",
  505: "This feature is disabled",
};

function codeReply(code: number, msg?: string): Reply {
  return envelope(code, msg ?? CODE_MESSAGES[code] ?? "Error");
}

function finish(reply: Reply, faults: FaultSet): Outcome {
  return { reply, delay: faults.delay, resetAfter: faults.reset === "after" };
}

/** code / http / reset-before faults answer instead of the endpoint; null lets it run. */
function faultAnswer(state: EmulatorState, faults: FaultSet): Outcome | null {
  if (faults.reset === "before") {
    state.counters.faultsInjected++;
    return { resetBefore: true };
  }
  if (faults.http !== undefined) {
    state.counters.faultsInjected++;
    return finish(edgeError(faults.http), faults);
  }
  if (faults.code !== undefined) {
    state.counters.faultsInjected++;
    return finish(codeReply(faults.code), faults);
  }
  return null;
}

/** The bearer key when it is one of ours, else null. */
function apiKey(state: EmulatorState, req: IncomingMessage): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
  return m && state.config.apiKeys.includes(m[1]) ? m[1] : null;
}

function unauthorized(state: EmulatorState, faults: FaultSet): Outcome {
  state.counters.unauthorized++;
  return finish(codeReply(401), faults);
}

function begin(state: EmulatorState, endpoint: Endpoint): FaultSet {
  state.counters.requests[endpoint]++;
  return state.faults.take(endpoint);
}

export async function handleCreateTask(state: EmulatorState, req: IncomingMessage): Promise<Outcome> {
  const runFaults = begin(state, "createTask");
  let body: unknown;
  try {
    body = parseJson(await readBody(req));
  } catch (error) {
    if (error instanceof BodyTooLarge) return finish(codeReply(400, error.message), runFaults);
    throw error;
  }
  let faults = runFaults;
  const prompt = (body as { input?: { prompt?: unknown } } | undefined)?.input?.prompt;
  if (typeof prompt === "string") {
    try {
      faults = { ...runFaults, ...parsePromptFaults(prompt) };
    } catch (error) {
      if (error instanceof FaultSyntaxError) return finish(codeReply(422, `bad [kie:...] marker: ${error.message}`), {});
      throw error;
    }
  }
  const answered = faultAnswer(state, faults);
  if (answered) return answered;
  const key = apiKey(state, req);
  if (!key) return unauthorized(state, faults);
  if (!state.createLimiter.admit(key)) {
    state.counters.rateLimited.createTask++;
    return finish(codeReply(429), faults);
  }
  if (body === undefined) return finish(codeReply(400, "request body must be JSON"), faults);
  const valid = validateCreate(body, state.catalogue);
  if (!valid.ok) return finish(codeReply(valid.code, valid.msg), faults);
  if (state.balance !== null && state.balance < state.config.creditsPerTask) return finish(codeReply(402), faults);
  const task = createTask(state, valid, body, key, faults);
  return finish(envelope(200, "success", { taskId: task.taskId }), faults);
}

export function handleRecordInfo(state: EmulatorState, req: IncomingMessage, url: URL): Outcome {
  const faults = begin(state, "recordInfo");
  const answered = faultAnswer(state, faults);
  if (answered) return answered;
  const key = apiKey(state, req);
  if (!key) return unauthorized(state, faults);
  if (!state.pollLimiter.admit(key)) {
    state.counters.rateLimited.recordInfo++;
    return finish(codeReply(429), faults);
  }
  state.counters.polls++;
  const taskId = url.searchParams.get("taskId");
  if (!taskId) return finish(codeReply(400, "taskId is required"), faults);
  const task = state.tasks.get(taskId);
  const ghostMs = task?.faults.ghost ?? state.config.notFoundAfterCreateMs;
  if (!task || Date.now() - task.createTime < ghostMs) return finish(envelope(422, "recordInfo is null", null), faults);
  return finish(envelope(200, "success", recordData(task)), faults);
}

export function handleCredit(state: EmulatorState, req: IncomingMessage): Outcome {
  const faults = begin(state, "credit");
  const answered = faultAnswer(state, faults);
  if (answered) return answered;
  if (!apiKey(state, req)) return unauthorized(state, faults);
  return finish(envelope(200, "success", state.balance ?? UNLIMITED_BALANCE), faults);
}

function fileKeyOf(state: EmulatorState, fileUrl: string): string | null {
  const prefix = `${state.baseUrl}/files/`;
  if (!fileUrl.startsWith(prefix)) return null;
  const key = fileUrl.slice(prefix.length);
  return state.files.has(key) ? key : null;
}

function mediaKept(state: EmulatorState, key: string, now = Date.now()): boolean {
  const file = state.files.get(key);
  return file !== undefined && now < file.createdAt + state.config.mediaTtlMs;
}

export async function handleDownloadUrl(state: EmulatorState, req: IncomingMessage): Promise<Outcome> {
  const faults = begin(state, "downloadUrl");
  const answered = faultAnswer(state, faults);
  if (answered) return answered;
  if (!apiKey(state, req)) return unauthorized(state, faults);
  let body: unknown;
  try {
    body = parseJson(await readBody(req));
  } catch (error) {
    if (error instanceof BodyTooLarge) return finish(codeReply(400, error.message), faults);
    throw error;
  }
  const fileUrl = (body as { url?: unknown } | undefined)?.url;
  if (typeof fileUrl !== "string" || fileUrl === "") return finish(codeReply(400, "url is required"), faults);
  const key = fileKeyOf(state, fileUrl);
  if (!key) return finish(codeReply(422, "The url was not generated by KIE"), faults);
  if (!mediaKept(state, key)) return finish(codeReply(404, "The file has expired"), faults);
  const token = randomBytes(16).toString("hex");
  state.links.set(token, { fileKey: key, createdAt: Date.now() });
  return finish(envelope(200, "success", `${state.baseUrl}/download/${token}`), faults);
}

function image(bytes: Buffer): Reply {
  return { status: 200, headers: { "Content-Type": resultContentType(bytes) }, body: bytes };
}

/** GET /files/:taskId/:name, the URLs in resultJson: 404 once the result TTL has passed. */
export function serveFile(state: EmulatorState, key: string): Reply {
  const file = state.files.get(key);
  if (!file || Date.now() >= file.createdAt + state.config.resultTtlMs) return text(404, "Not Found");
  return image(file.bytes);
}

/** GET /download/:token, a download-url link: 404 once the link or the media has expired. */
export function serveDownload(state: EmulatorState, token: string): Reply {
  const link = state.links.get(token);
  const expired = !link || Date.now() >= link.createdAt + state.config.downloadTtlMs;
  if (expired || !mediaKept(state, link.fileKey)) return text(404, "Not Found");
  return image(state.files.get(link!.fileKey)!.bytes);
}
