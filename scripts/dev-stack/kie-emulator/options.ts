/**
 * Emulator settings: defaults, validation (zod) and the command-line parser.
 */
import { z } from "zod";
import type { ModelFacts } from "./catalogue.ts";
import { FaultRules, parseRuleText } from "./faults.ts";

/** `N/Ws` or `N/Wms`: at most N requests in any window of W. */
export interface Rate {
  limit: number;
  windowMs: number;
}

export function parseRate(text: string): Rate {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*(ms|s|m)\s*$/.exec(text);
  if (!m) throw new Error(`bad rate "${text}": expected N/Ws, N/Wms or N/Wm, e.g. 20/10s`);
  const unit = m[3] === "ms" ? 1 : m[3] === "s" ? 1000 : 60_000;
  const rate = { limit: Number(m[1]), windowMs: Number(m[2]) * unit };
  if (rate.limit < 1 || rate.windowMs < 1) throw new Error(`bad rate "${text}": both numbers must be positive`);
  return rate;
}

const rateSchema = z.object({ limit: z.number().int().positive(), windowMs: z.number().int().positive() });
const ms = z.number().int().nonnegative();

export const optionsSchema = z.object({
  /** 0 picks a free port. */
  port: z.number().int().min(0).max(65535).default(0),
  /** Accepted bearer keys; anything else gets body code 401. */
  apiKeys: z.array(z.string().min(1)).min(1).default(["kie-test-key"]),
  /** Create to terminal state, split waiting 10 % / queuing 20 % / generating 70 %. */
  taskMs: ms.default(3000),
  /** Terminal state to first callback attempt. */
  callbackDelayMs: ms.default(0),
  callbackTimeoutMs: ms.default(15_000),
  /** Waits before each retry of a failed callback delivery (KIE's other APIs: 1, 5, 15 min). */
  callbackRetryMs: z.array(ms).default([60_000, 300_000, 900_000]),
  createRate: rateSchema.default({ limit: 20, windowMs: 10_000 }),
  pollRate: rateSchema.default({ limit: 10, windowMs: 1000 }),
  webhookHmacKey: z.string().min(1).nullable().default(null),
  /** Account balance in credits; null = unlimited. Below a task's cost, createTask answers 402. */
  balance: z.number().int().nonnegative().nullable().default(null),
  creditsPerTask: z.number().int().nonnegative().default(4),
  /** recordInfo answers 422 "recordInfo is null" for this long after creation (seen on KIE). */
  notFoundAfterCreateMs: ms.default(0),
  /** Result URLs in resultJson stop working after this (KIE: "typically 24 hours"). */
  resultTtlMs: ms.default(24 * 3600_000),
  /** download-url can mint links while the media is kept (KIE: "14 days"). */
  mediaTtlMs: ms.default(14 * 24 * 3600_000),
  /** Lifetime of a download-url link (KIE: 20 minutes). */
  downloadTtlMs: ms.default(20 * 60_000),
  /** Long edge of result images, pixels. */
  imageSize: z.number().int().min(8).max(4096).default(256),
  /** Input image downloads: per-URL timeout and size cap. */
  fetchTimeoutMs: ms.default(10_000),
  maxInputBytes: z.number().int().positive().default(10 * 1024 * 1024),
  /** Run-wide fault rules (see faults.ts), as `[endpoint:]spec` strings. */
  faults: z.array(z.string()).default([]),
  /** Host put into result URLs; the server always binds 127.0.0.1. */
  publicHost: z.string().default("127.0.0.1"),
});

export type KieEmulatorOptions = z.input<typeof optionsSchema> & {
  /** Model facts; default: the built-in catalogue (kept equal to public.models by a test). */
  catalogue?: ModelFacts[];
  /** Read model facts from this database's public.models instead (ignored with `catalogue`). */
  databaseUrl?: string;
  log?: (message: string) => void;
};
export type ResolvedOptions = z.output<typeof optionsSchema>;

export const usage = `usage: npm run kie:emulator -- [options]

A local stand-in for the KIE.ai jobs API (createTask, recordInfo, chat/credit, download-url),
with KIE's limits, callbacks and failure modes. Listens on 127.0.0.1 only. Development tool.

  --port P                   listen port (default 0: any free port; the URL is printed)
  --api-key KEY              accepted bearer key, repeatable (default kie-test-key)
  --task-ms MS               create to terminal state (default 3000; 0 for benchmarks)
  --callback-delay-ms MS     terminal state to first callback attempt (default 0)
  --callback-timeout-ms MS   callback delivery timeout (default 15000)
  --callback-retry-ms LIST   retry waits after failed deliveries (default 60000,300000,900000)
  --create-rate N/W          createTask limit per key (default 20/10s)
  --poll-rate N/W            recordInfo limit per key (default 10/1s)
  --webhook-hmac-key K       sign callbacks (X-Webhook-Timestamp, X-Webhook-Signature)
  --balance N                account credits (default unlimited); 402 when a task costs more
  --credits-per-task N       credits a successful task consumes (default 4)
  --not-found-after-create-ms MS  recordInfo says 422 "recordInfo is null" this long after create
  --result-ttl-ms MS         result URLs expire (default 24 h)
  --media-ttl-ms MS          download-url works this long (default 14 days)
  --download-ttl-ms MS       lifetime of a download-url link (default 20 min)
  --image-size PX            long edge of result images (default 256)
  --fetch-timeout-ms MS      input image download timeout (default 10000)
  --max-input-bytes N        input image size cap (default 10485760)
  --fault [ENDPOINT:]SPEC    run-wide fault, repeatable, e.g. --fault code=455,
                             --fault recordInfo:http=522 (grammar in the README)
  --db-url URL               read model facts from public.models instead of the built-in catalogue
  --public-host HOST         host written into result URLs (default 127.0.0.1)
  -h, --help                 this text

Admin endpoints (tests): /__admin/tasks, /__admin/counters, /__admin/faults, /__admin/balance,
/__admin/config, /__admin/reset. See the README.`;

export interface CliArgs {
  options: KieEmulatorOptions;
  dbUrl: string | null;
  help: boolean;
}

const integerFlags: Record<string, keyof ResolvedOptions> = {
  "--port": "port",
  "--task-ms": "taskMs",
  "--callback-delay-ms": "callbackDelayMs",
  "--callback-timeout-ms": "callbackTimeoutMs",
  "--balance": "balance",
  "--credits-per-task": "creditsPerTask",
  "--not-found-after-create-ms": "notFoundAfterCreateMs",
  "--result-ttl-ms": "resultTtlMs",
  "--media-ttl-ms": "mediaTtlMs",
  "--download-ttl-ms": "downloadTtlMs",
  "--image-size": "imageSize",
  "--fetch-timeout-ms": "fetchTimeoutMs",
  "--max-input-bytes": "maxInputBytes",
};

function integer(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`${flag} needs a non-negative integer, got "${value}"`);
  return Number(value);
}

/** Parses argv into options; throws an Error with a readable message on bad input. */
export function parseArgs(argv: string[]): CliArgs {
  const raw: Record<string, unknown> = {};
  const apiKeys: string[] = [];
  const faults: string[] = [];
  let dbUrl: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "-h" || flag === "--help") return { options: {}, dbUrl: null, help: true };
    const value = argv[i + 1];
    if (value === undefined || value.startsWith("--")) throw new Error(`${flag} needs a value (see --help)`);
    i++;
    if (flag in integerFlags) raw[integerFlags[flag]] = integer(flag, value);
    else if (flag === "--api-key") apiKeys.push(value);
    else if (flag === "--fault") faults.push(value);
    else if (flag === "--create-rate") raw.createRate = parseRate(value);
    else if (flag === "--poll-rate") raw.pollRate = parseRate(value);
    else if (flag === "--webhook-hmac-key") raw.webhookHmacKey = value;
    else if (flag === "--public-host") raw.publicHost = value;
    else if (flag === "--db-url") dbUrl = value;
    else if (flag === "--callback-retry-ms") {
      raw.callbackRetryMs = value === "" || value === "none" ? [] : value.split(",").map((v) => integer(flag, v.trim()));
    } else throw new Error(`unknown argument ${flag} (see --help)`);
  }
  if (apiKeys.length) raw.apiKeys = apiKeys;
  if (faults.length) raw.faults = faults;
  // Checked here so a bad --fault is a usage error, not a failed start.
  const probe = new FaultRules();
  for (const text of faults) {
    const { endpoint, spec } = parseRuleText(text);
    try {
      probe.add(endpoint, spec);
    } catch (error) {
      throw new Error(`--fault ${text}: ${(error as Error).message}`);
    }
  }
  const parsed = optionsSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  }
  return { options: parsed.data, dbUrl, help: false };
}
