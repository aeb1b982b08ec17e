/**
 * The emulator's memory: tasks, result files, download links, counters, settings and faults.
 * Everything lives in process memory; `reset()` returns to the state right after start.
 */
import type { ModelFacts } from "./catalogue.ts";
import { type Endpoint, type FaultSet, FaultRules, parseRuleText } from "./faults.ts";
import { SlidingWindow } from "./limits.ts";
import type { ResolvedOptions } from "./options.ts";
import { Timers } from "./timers.ts";

export type TaskState = "waiting" | "queuing" | "generating" | "success" | "fail";
export const TERMINAL: readonly TaskState[] = ["success", "fail"];

export interface CallbackAttempt {
  /** 1 for the first delivery, 2 for a duplicate. */
  delivery: number;
  attempt: number;
  at: number;
  url: string;
  status: number | null;
  error: string | null;
}

export interface Task {
  taskId: string;
  model: string;
  state: TaskState;
  /** JSON string of the whole createTask body, exactly as KIE stores it. */
  param: string;
  apiKey: string;
  prompt: string;
  aspectRatio: string;
  imageUrls: string[];
  callBackUrl: string | null;
  faults: FaultSet;
  /** Create to terminal, for this task. */
  taskMs: number;
  createTime: number;
  updateTime: number;
  completeTime: number | null;
  resultUrls: string[];
  failCode: string;
  failMsg: string;
  creditsConsumed: number | null;
  callbacks: CallbackAttempt[];
  /** Pending automatic transition, if any. */
  timer: NodeJS.Timeout | null;
  /** Download and rendering, started on entering generating. */
  work: Promise<WorkOutcome> | null;
  /** Reset generation this task belongs to: work left over from before a reset is dropped. */
  epoch: number;
}

export type WorkOutcome = { ok: true; images: Buffer[] } | { ok: false; failCode: string; failMsg: string };

export interface StoredFile {
  taskId: string;
  bytes: Buffer;
  createdAt: number;
}

export interface DownloadLink {
  fileKey: string;
  /** Expiry is createdAt + the configured link lifetime, read when the link is used. */
  createdAt: number;
}

export function newCounters() {
  return {
    /** Every request received, per endpoint (including refused ones). */
    requests: { createTask: 0, recordInfo: 0, credit: 0, downloadUrl: 0 } as Record<Endpoint, number>,
    /** Tasks created. */
    creates: 0,
    /** recordInfo requests admitted by the poll limiter. */
    polls: 0,
    /** 429 answers per endpoint. */
    rateLimited: { createTask: 0, recordInfo: 0 },
    /** Body code 401 answers. */
    unauthorized: 0,
    /** Requests answered by a fault (code, http, reset) instead of normally. */
    faultsInjected: 0,
    tasks: { success: 0, fail: 0 },
    callbacks: {
      /** Delivery attempts made (each retry and each duplicate counts). */
      sent: 0,
      /** Attempts answered 2xx. */
      delivered: 0,
      /** Attempts that failed (non-2xx, timeout, connection error). */
      failed: 0,
      /** Deliveries given up after the last retry. */
      abandoned: 0,
      /** Callbacks not sent because of callback=drop. */
      dropped: 0,
    },
  };
}

export class EmulatorState {
  tasks = new Map<string, Task>();
  files = new Map<string, StoredFile>();
  links = new Map<string, DownloadLink>();
  counters = newCounters();
  faults = new FaultRules();
  config: ResolvedOptions;
  balance: number | null;
  createLimiter: SlidingWindow;
  pollLimiter: SlidingWindow;
  timers = new Timers();
  epoch = 0;
  baseUrl = "";
  /** A loopback port nothing listens on: callback=unreachable sends there (connection refused). */
  closedPort = 0;

  constructor(
    private readonly initial: ResolvedOptions,
    public catalogue: ModelFacts[],
    public log: (message: string) => void,
  ) {
    this.config = structuredClone(initial);
    this.balance = initial.balance;
    this.createLimiter = new SlidingWindow(initial.createRate);
    this.pollLimiter = new SlidingWindow(initial.pollRate);
    this.installStartupFaults();
  }

  private installStartupFaults(): void {
    for (const text of this.initial.faults) {
      const { endpoint, spec } = parseRuleText(text);
      this.faults.add(endpoint, spec);
    }
  }

  /** Back to the state right after start: no tasks, zero counters, start-up faults and settings. */
  reset(): void {
    this.timers.cancelAll();
    this.epoch++;
    this.tasks.clear();
    this.files.clear();
    this.links.clear();
    this.counters = newCounters();
    this.faults.clear();
    this.config = structuredClone(this.initial);
    this.balance = this.initial.balance;
    this.createLimiter = new SlidingWindow(this.initial.createRate);
    this.pollLimiter = new SlidingWindow(this.initial.pollRate);
    this.installStartupFaults();
  }
}
