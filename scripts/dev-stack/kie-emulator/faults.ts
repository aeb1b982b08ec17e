/**
 * Fault grammar, shared by prompt markers, `--fault` flags and the admin endpoint.
 *
 *   spec := item ("," item)*        item := name ["=" value]
 *   prompt marker: "[kie:" spec "]" anywhere in input.prompt (any number of markers)
 *
 * Request faults (any endpoint): code=N, http=N, reset[=before|after], delay=MS.
 * Task faults (createTask only): fail[=CODE], moderation, slow=MS, hold, ghost=MS, results=N,
 * format=gif|html, callback=drop|duplicate|late:MS|unreachable. The README documents each one.
 */

export type CallbackFault =
  | { kind: "drop" }
  | { kind: "duplicate" }
  | { kind: "late"; ms: number }
  | { kind: "unreachable" };

export interface FaultSet {
  /** Answer HTTP 200 with this body code; nothing is stored. */
  code?: number;
  /** Answer this HTTP status with a non-JSON body (Cloudflare style); nothing is stored. */
  http?: number;
  /** Destroy the connection: before doing anything, or after storing the task (lost response). */
  reset?: "before" | "after";
  /** Hold the response back this long (the request is still carried out at once). */
  delay?: number;
  /** The task ends in state fail with this failCode. */
  fail?: string;
  /** The task ends in state fail as a content-moderation rejection. */
  moderation?: true;
  /** This task takes this long from create to terminal state. */
  slow?: number;
  /** The task stops in its current state until POST /__admin/tasks/:id/advance. */
  hold?: true;
  /** recordInfo answers 422 "recordInfo is null" for this long after creation. */
  ghost?: number;
  /** A successful task reports this many result URLs instead of one. */
  results?: number;
  /** A successful task's result files are of this format instead of PNG (html: an error page). */
  format?: ResultFormat;
  callback?: CallbackFault;
}

/** Result file formats the emulator can serve besides PNG: a GIF, or a host's HTML error page. */
export const RESULT_FORMATS = ["gif", "html"] as const;
export type ResultFormat = (typeof RESULT_FORMATS)[number];

/** The most result URLs `results=N` may ask for. */
export const MAX_RESULTS = 20;

export const ENDPOINTS = ["createTask", "recordInfo", "credit", "downloadUrl"] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

const TASK_FAULTS = ["fail", "moderation", "slow", "hold", "ghost", "results", "format", "callback"] as const;

export class FaultSyntaxError extends Error {}

function msValue(name: string, value: string | undefined): number {
  if (value === undefined || !/^\d{1,9}$/.test(value)) {
    throw new FaultSyntaxError(`${name} needs a duration in ms, e.g. ${name}=500`);
  }
  return Number(value);
}

function statusValue(name: string, value: string | undefined, min: number): number {
  if (value === undefined || !/^\d{3}$/.test(value) || Number(value) < min || Number(value) === 200) {
    throw new FaultSyntaxError(`${name} needs a status code from ${min} to 599 other than 200, got "${value ?? ""}"`);
  }
  const n = Number(value);
  if (n > 599) throw new FaultSyntaxError(`${name} needs a status code from ${min} to 599, got "${value}"`);
  return n;
}

function flag(name: string, value: string | undefined): true {
  if (value !== undefined) throw new FaultSyntaxError(`${name} takes no value`);
  return true;
}

/** Parses one spec ("code=455,delay=100"); throws FaultSyntaxError with a readable message. */
export function parseFaultSpec(spec: string): FaultSet {
  const faults: FaultSet = {};
  const items = spec.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0) throw new FaultSyntaxError("empty fault spec");
  for (const item of items) {
    const eq = item.indexOf("=");
    const name = (eq < 0 ? item : item.slice(0, eq)).trim();
    const value = eq < 0 ? undefined : item.slice(eq + 1).trim();
    switch (name) {
      case "code":
        faults.code = statusValue(name, value, 400);
        break;
      case "http":
        faults.http = statusValue(name, value, 400);
        break;
      case "reset":
        if (value !== undefined && value !== "before" && value !== "after") {
          throw new FaultSyntaxError(`reset takes before or after, got "${value}"`);
        }
        faults.reset = value ?? "before";
        break;
      case "delay":
        faults.delay = msValue(name, value);
        break;
      case "fail":
        if (value !== undefined && !/^[A-Za-z0-9_.-]{1,32}$/.test(value)) {
          throw new FaultSyntaxError(`fail takes a failCode of letters, digits, _ . - (at most 32), got "${value}"`);
        }
        faults.fail = value ?? "501";
        break;
      case "moderation":
        faults.moderation = flag(name, value);
        break;
      case "slow":
        faults.slow = msValue(name, value);
        break;
      case "hold":
        faults.hold = flag(name, value);
        break;
      case "ghost":
        faults.ghost = msValue(name, value);
        break;
      case "results":
        if (value === undefined || !/^\d{1,2}$/.test(value) || Number(value) < 1 || Number(value) > MAX_RESULTS) {
          throw new FaultSyntaxError(`results needs a count from 1 to ${MAX_RESULTS}, got "${value ?? ""}"`);
        }
        faults.results = Number(value);
        break;
      case "format":
        if (!(RESULT_FORMATS as readonly string[]).includes(value ?? "")) {
          throw new FaultSyntaxError(`format takes ${RESULT_FORMATS.join(", ")}, got "${value ?? ""}"`);
        }
        faults.format = value as ResultFormat;
        break;
      case "callback": {
        const late = /^late:(\d{1,9})$/.exec(value ?? "");
        if (late) faults.callback = { kind: "late", ms: Number(late[1]) };
        else if (value === "drop" || value === "duplicate" || value === "unreachable") faults.callback = { kind: value };
        else throw new FaultSyntaxError(`callback takes drop, duplicate, late:MS or unreachable, got "${value ?? ""}"`);
        break;
      }
      default:
        throw new FaultSyntaxError(`unknown fault "${name}"`);
    }
  }
  return faults;
}

/** Every `[kie:...]` marker in a prompt, merged left to right. */
export function parsePromptFaults(prompt: string): FaultSet {
  let merged: FaultSet = {};
  for (const m of prompt.matchAll(/\[kie:([^\]]*)\]/g)) merged = { ...merged, ...parseFaultSpec(m[1]) };
  return merged;
}

export interface FaultRule {
  id: number;
  endpoint: Endpoint;
  spec: string;
  faults: FaultSet;
  /** Requests (or, for task faults, tasks) left before the rule retires; null = until cleared. */
  remaining: number | null;
}

/** A rule from `[ENDPOINT:]SPEC` (the --fault flag); the endpoint defaults to createTask. */
export function parseRuleText(text: string): { endpoint: Endpoint; spec: string } {
  const colon = text.indexOf(":");
  const head = colon < 0 ? "" : text.slice(0, colon);
  if ((ENDPOINTS as readonly string[]).includes(head)) return { endpoint: head as Endpoint, spec: text.slice(colon + 1) };
  return { endpoint: "createTask", spec: text };
}

/** Run-wide fault rules: each request takes the merged faults of the rules for its endpoint. */
export class FaultRules {
  private rules: FaultRule[] = [];
  private nextId = 1;

  add(endpoint: Endpoint, spec: string, times: number | null = null): FaultRule {
    const faults = parseFaultSpec(spec);
    if (endpoint !== "createTask") {
      const taskOnly = TASK_FAULTS.filter((name) => name in faults);
      if (taskOnly.length) {
        throw new FaultSyntaxError(`${taskOnly.join(", ")} only apply to createTask (tasks), not ${endpoint}`);
      }
    }
    const rule = { id: this.nextId++, endpoint, spec, faults, remaining: times };
    this.rules.push(rule);
    return rule;
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  remove(id: number): boolean {
    const before = this.rules.length;
    this.rules = this.rules.filter((r) => r.id !== id);
    return this.rules.length < before;
  }

  clear(): void {
    this.rules = [];
  }

  /** The faults for one request, using up one of each counted rule that applied. */
  take(endpoint: Endpoint): FaultSet {
    let merged: FaultSet = {};
    for (const rule of this.rules) {
      if (rule.endpoint !== endpoint) continue;
      merged = { ...merged, ...rule.faults };
      if (rule.remaining !== null) rule.remaining--;
    }
    this.rules = this.rules.filter((r) => r.remaining === null || r.remaining > 0);
    return merged;
  }
}
