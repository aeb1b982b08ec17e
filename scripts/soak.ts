/**
 * npm run soak: thousands of jobs from many users on every plan through the whole local pipeline
 * (the end-to-end harness: KIE emulator, gateway with Storage and the kie-callback function, the
 * pg_net look-alike's worker, ticks every 200 ms), with random emulator faults in the prompts;
 * then the invariants of the fault suite and a short report. scripts/soak.sh prepares the
 * throwaway cluster and runs this with DATABASE_URL set.
 */
import { z } from "zod";
import { Pipeline } from "../supabase/tests/integration/support/pipeline.ts";
import { percentile } from "./bench/stats.ts";

const usage = `usage: npm run soak -- [--jobs N] [--users N] [--fault-rate F]

Starts a throwaway cluster and the whole local pipeline on free ports, starts N jobs (default
1000) from U users (default 40) spread over the plans free, paid, pro and an unlimited one
(each user starts only as fast as the plan allows), puts a random emulator fault marker into a
fraction F (default 0.2) of the text-to-image prompts, waits until every job is terminal, then
checks the invariants (terminal by the deadline, one debit, at most one refund and only for
failures, credits equal to the ledger, every result in Storage as a PNG, no 429 from the
emulator) and prints jobs by outcome, refunds, p50/p95 time to terminal and the 429 count.
Exit status: 0 when every invariant holds, 1 otherwise, 2 for bad arguments.
Environment: KILN_SOAK_PORT (cluster port, default: first free in 18850-18899).

The emulator and the dispatcher run with raised rate limits (createTask 200/s, recordInfo
100/s, and the dispatcher's budgets just below them) so thousands of jobs take minutes, not
hours; the dispatcher still keeps the emulator's limits, which the 429 count shows.`;

const FAULTS = ["callback=drop", "callback=duplicate", "callback=late:1500", "fail=501", "moderation", "slow=1500", "code=505", "ghost=800"];

const argsSchema = z.object({
  jobs: z.number().int().min(1).max(100_000),
  users: z.number().int().min(1).max(1000),
  faultRate: z.number().min(0).max(1),
});

function parseArgs(argv: string[]): z.infer<typeof argsSchema> {
  const out: Record<string, number> = { jobs: 1000, users: 40, faultRate: 0.2 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const key = { "--jobs": "jobs", "--users": "users", "--fault-rate": "faultRate" }[flag];
    if (!key) throw new Error(`unknown argument ${flag} (see --help)`);
    const value = Number(argv[++i]);
    if (argv[i] === undefined || Number.isNaN(value)) throw new Error(`${flag} needs a number`);
    out[key] = value;
  }
  const parsed = argsSchema.safeParse(out);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  return parsed.data;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage);
    return 0;
  }
  let args;
  try {
    args = parseArgs(argv.filter((a) => a !== "--check-args"));
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  if (argv.includes("--check-args")) return 0;

  const p = await Pipeline.start({
    kie: { taskMs: 600, createRate: { limit: 200, windowMs: 1000 }, pollRate: { limit: 100, windowMs: 1000 } },
    settings: {
      "dispatch.create_per_window": 180,
      "dispatch.create_window_seconds": 1,
      "poll.per_window": 90,
      "dispatch.batch_size": 200,
    },
  });
  const started: string[] = [];
  let stopTicks = false;
  try {
    const plans = ["free", "paid", "pro", p.planId];
    const qualities: Record<string, ("fast" | "standard" | "ultra")[]> = {
      free: ["fast"], paid: ["fast", "standard"], pro: ["fast", "standard", "ultra"], [p.planId]: ["fast", "standard", "ultra"],
    };
    const users: { id: string; plan: string; photo: string }[] = [];
    for (let i = 0; i < args.users; i++) {
      const plan = plans[i % plans.length];
      const id = await p.createUser(args.jobs * 4 + 10, plan);
      users.push({ id, plan, photo: await p.uploadPhoto(id) });
    }
    const t0 = Date.now();
    const ticks = (async () => {
      while (!stopTicks) {
        await p.tick();
        await sleep(200);
      }
    })();
    let refused = 0;
    let faulted = 0;
    let reserved = 0; // starts taken or in flight, so concurrent users stop at exactly --jobs
    const starters = users.map(async (u) => {
      while (reserved < args.jobs) {
        reserved++;
        const quality = qualities[u.plan][Math.floor(Math.random() * qualities[u.plan].length)];
        const imageToImage = quality !== "ultra" && Math.random() < 0.3;
        const fault = !imageToImage && Math.random() < args.faultRate ? FAULTS[Math.floor(Math.random() * FAULTS.length)] : null;
        try {
          const id = imageToImage
            ? await p.startJob(u.id, { templateId: p.templateId, imageUrls: [u.photo], quality })
            : await p.startJob(u.id, { prompt: `soak ${started.length}${fault ? ` [kie:${fault}]` : ""}`, quality });
          started.push(id);
          if (fault) faulted++;
        } catch (err) {
          const code = (err as { code?: string }).code ?? "";
          reserved--;
          if (!/^KL0(17|18)$/.test(code)) throw err;
          refused++; // the plan's active-job or per-minute limit: wait as the app would
          await sleep(500 + Math.random() * 1000);
        }
      }
    });
    const progress = setInterval(async () => {
      const [c] = await p.sql<{ completed: number; failed: number }[]>`
        select count(*) filter (where status = 'completed')::int as completed, count(*) filter (where status = 'failed')::int as failed
          from public.generation_jobs where id = any(${started})`.catch(() => [{ completed: -1, failed: -1 }]);
      const limited = p.kie.state.counters.rateLimited;
      process.stderr.write(`\r${((Date.now() - t0) / 1000).toFixed(0)} s: started ${started.length}/${args.jobs}, completed ${c.completed}, failed ${c.failed}, refused starts ${refused}, 429s ${limited.createTask + limited.recordInfo}   `);
    }, 1000);
    try {
      await Promise.all(starters);
      // Any job of these users not in the list (none expected) is checked too.
      const extra = await p.sql<{ id: string }[]>`
        select id from public.generation_jobs where user_id = any(${users.map((u) => u.id)}) and not (id = any(${started}))`;
      started.push(...extra.map((r) => r.id));
      await p.tickUntil(async () => {
        const [{ n }] = await p.sql<{ n: number }[]>`
          select count(*)::int as n from public.generation_jobs where id = any(${started}) and status not in ('completed', 'failed')`;
        return n === 0;
      }, { timeoutMs: 600_000, everyMs: 500 });
    } finally {
      clearInterval(progress);
      stopTicks = true;
      await ticks;
    }
    const elapsed = (Date.now() - t0) / 1000;
    process.stderr.write("\n");

    const outcomes = await p.sql<{ status: string; error_code: string | null; n: number }[]>`
      select status, error_code, count(*)::int as n from public.generation_jobs where id = any(${started})
       group by 1, 2 order by 1, 2`;
    const [{ refunds }] = await p.sql<{ refunds: number }[]>`
      select count(*)::int as refunds from public.credit_ledger where job_id = any(${started}) and kind = 'refund'`;
    const times = (await p.sql<{ s: number }[]>`
      select extract(epoch from completed_at - created_at)::float8 as s from public.generation_jobs where id = any(${started}) order by 1`).map((r) => r.s);
    const limited = p.kie.state.counters.rateLimited;
    const problems = await p.checkInvariants(started);

    console.log(`soak: ${started.length} jobs from ${args.users} users (plans ${plans.slice(0, 3).join(", ")} and unlimited), fault rate ${args.faultRate} (${faulted} faulted prompts), ${elapsed.toFixed(0)} s`);
    for (const o of outcomes) console.log(`  ${o.status}${o.error_code ? ` (${o.error_code})` : ""}: ${o.n}`);
    console.log(`  refunds: ${refunds}`);
    console.log(`  time to terminal: p50 ${percentile(times, 50).toFixed(2)} s, p95 ${percentile(times, 95).toFixed(2)} s, max ${times.at(-1)?.toFixed(2)} s`);
    console.log(`  starts refused by plan limits (and retried): ${refused}`);
    console.log(`  emulator 429s: createTask ${limited.createTask}, recordInfo ${limited.recordInfo}; callbacks delivered ${p.kie.state.counters.callbacks.delivered}, failed ${p.kie.state.counters.callbacks.failed}, dropped ${p.kie.state.counters.callbacks.dropped}`);
    if (problems.length > 0) {
      console.log(`invariants: ${problems.length} violated`);
      for (const line of problems.slice(0, 50)) console.log(`  ${line}`);
      return 1;
    }
    console.log("invariants: all hold");
    return 0;
  } finally {
    stopTicks = true;
    await p.stop();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
