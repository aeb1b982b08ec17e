/**
 * npm run demo: one command that shows the product end to end on the local stack.
 * `npm run demo -- --help` for the flags. scripts/demo.sh installs what is missing first.
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import postgres, { type Sql } from "postgres";
import { type ChangeStream, openChangeStream } from "../supabase/tests/integration/support/wal2json.ts";
import {
  appClient,
  downloadResults,
  grantCredits,
  type JobRow,
  myCredits,
  myJobs,
  myLedger,
  signUp,
  startGeneration,
  uploadPhoto,
} from "./demo/app.ts";
import { type Balance, follow, followBalance, type Tracked } from "./demo/follow.ts";
import { DEFAULT_STACK_DIR, type DemoOptions, parseOptions, USAGE, UsageError } from "./demo/options.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// A seeded image-to-image template (supabase/seed.sql) whose inputs all have defaults.
const TEMPLATE_ID = "5eed0000-0000-4000-8000-000000000002";
const TEMPLATE_NAME = "Clay Character";
const STYLE = "watercolor";
const GRANT = 20;

const started = Date.now();
const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s]`;
const say = (line: string) => console.log(`${stamp()} ${line}`);

class StepFailed extends Error {
  constructor(readonly step: string, readonly cause: unknown) {
    super(`step "${step}" failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  console.log(`\n${stamp()} ▶ ${name}`);
  try {
    return await work();
  } catch (error) {
    throw new StepFailed(name, error);
  }
}

function stackEnv(o: DemoOptions): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KILN_STACK_DIR: o.stackDir,
    KILN_STACK_DB_PORT: String(o.dbPort),
    KILN_STACK_GATEWAY_PORT: String(o.gatewayPort),
    KILN_STACK_KIE_PORT: String(o.kiePort),
    KILN_STACK_REBUILD_STALE: o.stackDir === DEFAULT_STACK_DIR ? "1" : "",
  };
}

/** Runs `bash scripts/stack.sh <command>`, its output shown as it goes; resolves with its stdout. */
function stack(o: DemoOptions, command: "up" | "down" | "status", quiet = false): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn("bash", [join(ROOT, "scripts/stack.sh"), command], {
      env: stackEnv(o),
      stdio: ["ignore", "pipe", quiet ? "ignore" : "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk;
      if (!quiet) process.stdout.write(chunk);
    });
    child.on("error", fail);
    child.on("exit", (code) => (code === 0 ? done(out) : fail(new Error(`scripts/stack.sh ${command} exited with ${code}`))));
  });
}

async function waitForHttp(name: string, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(2000) });
      say(`${name} answers at ${new URL(url).origin}`);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${name} did not answer at ${url}: ${(error as Error).message}`);
      if (attempt % 10 === 9) say(`… waiting for the ${name} to answer`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const dbUrl = (o: DemoOptions, role = "postgres") => `postgresql://${role}@127.0.0.1:${o.dbPort}/postgres`;

/** With --kie-key: the real KIE, and a public origin for its callbacks and the photo download. */
async function pointAtRealKie(sql: Sql, o: DemoOptions) {
  // The origin, not the host: a public URL with a port is an exact scheme://host:port entry.
  const origin = new URL(o.publicUrl!).origin;
  await sql`update private.settings set value = '"https://api.kie.ai"' where key = 'kie.base_url'`;
  await sql`update private.settings set value = value || ${sql.json(origin)} where key = 'images.allowed_hosts' and not value ? ${origin}`;
  await sql`select vault.update_secret(id, ${o.kieKey!}) from vault.secrets where name = 'kie_api_key'`;
  await sql`select vault.update_secret(id, ${`${o.publicUrl}/functions/v1`}) from vault.secrets where name = 'functions_base_url'`;
}

async function run(o: DemoOptions, cleanups: (() => Promise<unknown>)[]): Promise<void> {
  const gatewayUrl = o.publicUrl ?? `http://127.0.0.1:${o.gatewayPort}`;
  const timeoutMs = o.timeoutSeconds * 1000;

  await step("local stack: postgres, pg_net, tick driver, KIE emulator, gateway", async () => {
    const before = await stack(o, "status", true);
    const alreadyUp = /^postgres\s+running/m.test(before);
    if (!alreadyUp && !o.keep) cleanups.push(() => stack(o, "down"));
    if (alreadyUp) say(`the stack in ${o.stackDir} is already running: using it, and leaving it running`);
    await stack(o, "up");
    // stack.sh starts the servers in the background: wait until each answers HTTP.
    await waitForHttp("gateway", `http://127.0.0.1:${o.gatewayPort}/storage/v1/version`);
    await waitForHttp("KIE emulator", `http://127.0.0.1:${o.kiePort}/__admin/counters`);
  });

  const sql = postgres(dbUrl(o), { onnotice: () => {}, max: 4 });
  cleanups.push(() => sql.end({ timeout: 5 }));
  // GoTrue writes auth.users as the platform's auth role.
  const auth = postgres(dbUrl(o, "supabase_auth_admin"), { onnotice: () => {}, max: 1 });
  cleanups.push(() => auth.end({ timeout: 5 }));

  if (o.kieKey) {
    await step("point the pipeline at the real KIE", async () => {
      await pointAtRealKie(sql, o);
      say(`KIE https://api.kie.ai, callbacks to ${o.publicUrl}/functions/v1/kie-callback`);
    });
  }

  const stream: ChangeStream = await step("open the change stream Realtime reads (wal2json slot on supabase_realtime)", async () => {
    const s = await openChangeStream(sql);
    cleanups.push(() => s.close());
    say(`slot ${s.slot}`);
    return s;
  });

  // The app's balance, as its Realtime subscription to its profile row delivers it.
  const balance: Balance = { credits: null };
  const readBalance = async (id: string) => {
    for (const change of await stream.read()) await followBalance(sql, change, id, balance, say);
  };

  const { userId, creditsBefore } = await step("sign up a demo user and grant credits", async () => {
    const id = await signUp(auth, `demo-${Date.now()}@kiln.local`);
    const welcome = await myCredits(sql, id);
    await grantCredits(sql, id, GRANT, "Demo credits");
    const credits = await myCredits(sql, id);
    say(`user ${id}: ${welcome} welcome credits from the signup trigger, +${GRANT} from grant_credits (service role) = ${credits}`);
    await readBalance(id);
    return { userId: id, creditsBefore: credits };
  });
  const app = appClient(gatewayUrl, userId);

  const upload = await step("upload a photo to user-uploads with the user's JWT (storage-js) and sign it", async () => {
    const u = await uploadPhoto(app, userId);
    say(`stored ${u.path}; signed URL ${u.signedUrl.replace(/token=.*/, "token=…")}`);
    return u;
  });

  const jobs = new Map<string, Tracked>();
  const track = (label: string, row: JobRow) => {
    jobs.set(row.id, { label, status: "" });
    say(`${label}: job ${row.id}, model ${row.model_key}, ${row.credits_charged} credit(s) charged`);
  };

  await step("start a template generation (image-to-image) and a text-to-image generation with a style", async () => {
    track(`template "${TEMPLATE_NAME}"`, await startGeneration(sql, userId, { templateId: TEMPLATE_ID, imageUrls: [upload.signedUrl] }));
    track(
      `text-to-image "${STYLE}"`,
      await startGeneration(sql, userId, { prompt: "a lighthouse on a cliff at dawn, gulls over the sea", style: STYLE }),
    );
  });

  await step("follow both jobs as Realtime streams them", () => follow(sql, stream, userId, jobs, balance, say, timeoutMs));

  if (o.kieKey) {
    say("the failure path uses an emulator prompt marker: skipped against the real KIE");
  } else {
    await step("a generation the emulator fails ([kie:fail=501] in the prompt)", async () => {
      track("failing job", await startGeneration(sql, userId, { prompt: "a storm at sea [kie:fail=501]" }));
      await follow(sql, stream, userId, jobs, balance, say, timeoutMs);
    });
  }

  const rows = await step(`save the results through signed URLs (createSignedUrls) to ${relative(process.cwd(), o.out) || "."}`, async () => {
    const mine = await myJobs(sql, userId, [...jobs.keys()]);
    await mkdir(o.out, { recursive: true });
    for (const row of mine.filter((r) => r.status === "completed")) {
      for (const [n, file] of (await downloadResults(app, row.result_urls ?? [])).entries()) {
        const image = PNG.sync.read(file.bytes);
        const target = join(o.out, `${jobs.get(row.id)!.label.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "").toLowerCase()}-${n}.png`);
        await writeFile(target, file.bytes);
        say(`${relative(process.cwd(), target)} (${image.width}x${image.height} PNG, generated-images/${file.path})`);
      }
    }
    return mine;
  });

  await step("check the outcome: credits and the user's ledger", async () => {
    const byLabel = new Map(rows.map((r) => [jobs.get(r.id)!.label, r]));
    const expected = [...jobs.values()].map((j) => [j.label, j.label === "failing job" ? "failed" : "completed"] as const);
    for (const [label, status] of expected) {
      if (byLabel.get(label)?.status !== status) throw new Error(`${label} ended ${byLabel.get(label)?.status}, expected ${status}`);
    }
    const creditsAfter = await myCredits(sql, userId);
    const charged = rows.filter((r) => r.status === "completed").reduce((sum, r) => sum + r.credits_charged, 0);
    say(`credits: ${creditsBefore} before the jobs, ${creditsAfter} after (${charged} charged, failures refunded)`);
    const ledger = await myLedger(sql, userId);
    const labelOf = (id: string | null) => (id ? ` [${jobs.get(id)?.label ?? id}]` : "");
    say("the user's ledger (public.credit_ledger, read through RLS):");
    for (const line of ledger) {
      const amount = `${line.amount > 0 ? "+" : ""}${line.amount}`.padStart(4);
      say(`  ${line.kind.padEnd(6)} ${amount} → ${String(line.balance_after).padStart(3)}  ${line.reason}${labelOf(line.job_id)}`);
    }
    if (creditsAfter !== creditsBefore - charged) throw new Error(`credits ${creditsAfter}, expected ${creditsBefore - charged}`);
    await readBalance(userId);
    if (balance.credits !== creditsAfter) throw new Error(`Realtime last delivered a balance of ${balance.credits}, the profile has ${creditsAfter}`);
    const refunds = ledger.filter((l) => l.kind === "refund").length;
    const failed = rows.filter((r) => r.status === "failed").length;
    if (refunds !== failed) throw new Error(`${refunds} refunds for ${failed} failed jobs`);
  });
}

async function main(): Promise<number> {
  let options: DemoOptions | null;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`demo: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const cleanups: (() => Promise<unknown>)[] = [];
  let code = 0;
  try {
    await run(options, cleanups);
  } catch (error) {
    console.error(`\n${stamp()} demo failed: ${error instanceof Error ? error.message : String(error)}`);
    code = 1;
  }
  // Last in, first out: the slot, then the connections, then the stack (when this run started it).
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      console.error(`${stamp()} cleanup: ${(error as Error).message}`);
      code ||= 1;
    }
  }
  if (code === 0) {
    console.log(`\n${stamp()} demo finished: every step passed`);
    if (options.keep) {
      console.log(`the stack is still up; stop it with: KILN_STACK_DIR=${options.stackDir} KILN_STACK_DB_PORT=${options.dbPort} ` +
        `KILN_STACK_GATEWAY_PORT=${options.gatewayPort} KILN_STACK_KIE_PORT=${options.kiePort} npm run stack:down`);
    }
  }
  return code;
}

process.exitCode = await main();
