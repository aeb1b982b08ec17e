/**
 * Benchmark: start_generation throughput and latency against a same-run baseline.
 *
 * Each call runs the way PostgREST runs an RPC: one transaction that switches to the
 * `authenticated` role, sets the JWT claims and calls the function. The baseline does the same
 * round trip but only inserts one row into a scratch table, so the ratio shows what the
 * validation, rendering, limit checks, debit and ledger entry cost on top of a bare write.
 * Both run in the same process against the same database, interleaved in rounds, so machine
 * noise hits them alike.
 */
import postgres from "postgres";
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

interface Options {
  databaseUrl: string;
  calls: number;
  concurrency: number;
  users: number;
  rounds: number;
}

interface Measurement {
  perSecond: number;
  p50: number;
  p95: number;
}

const usage = `usage: npm run bench:start-generation -- [--calls N] [--concurrency N] [--users N] [--rounds N]

  --calls N        calls per round for each side (default 1000)
  --concurrency N  connections calling at once (default 8)
  --users N        distinct users the calls are spread over (default 50)
  --rounds N       alternating rounds of baseline and start_generation (default 3)

Reads DATABASE_URL (default: the local stack). Creates its own users and plan, removes them after.`;

function parseArgs(argv: string[]): Options {
  const options: Options = {
    databaseUrl: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:54322/postgres",
    calls: 1000,
    concurrency: 8,
    users: 50,
    rounds: 3,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "-h" || flag === "--help") {
      console.log(usage);
      process.exit(0);
    }
    const key = { "--calls": "calls", "--concurrency": "concurrency", "--users": "users", "--rounds": "rounds" }[flag];
    const value = Number(argv[i + 1]);
    if (!key || !Number.isInteger(value) || value < 1) {
      console.error(`bad argument: ${flag} ${argv[i + 1] ?? ""}\n\n${usage}`);
      process.exit(2);
    }
    options[key as "calls" | "concurrency" | "users" | "rounds"] = value;
    i++;
  }
  return options;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function measure(
  calls: number,
  concurrency: number,
  call: (index: number) => Promise<void>,
): Promise<Measurement> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        const index = next++;
        const t0 = performance.now();
        await call(index);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: calls / seconds, p50: percentile(latencies, 50), p95: percentile(latencies, 95) };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const sql = postgres(options.databaseUrl, { max: options.concurrency + 1, onnotice: () => {} });
  const plan = `bench_${randomUUID().slice(0, 8)}`;
  const userIds = Array.from({ length: options.users }, () => randomUUID());
  const scratch = `bench_baseline_${plan}`;
  const claims = userIds.map((id) => JSON.stringify({ sub: id, role: "authenticated" }));

  try {
    // Fixtures: a plan without practical limits and users with enough credits for every call.
    const creditsEach = Math.ceil((options.calls * options.rounds) / options.users) + 10;
    await sql`insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits)
              values (${plan}, 'Benchmark', 1000, 1000000, 1000000, 0)`;
    await sql`insert into auth.users (id, email) select id, id || '@bench.kiln.local' from unnest(${userIds}::uuid[]) id`;
    await sql.begin(async (tx) => {
      await tx`set local role service_role`;
      for (const id of userIds) {
        await tx`select public.set_plan(${id}, ${plan})`;
        await tx`select public.grant_credits(${id}, ${creditsEach}, 'benchmark credits')`;
      }
    });
    await sql`create table ${sql(scratch)} (id uuid primary key default gen_random_uuid(), user_id uuid, prompt text)`;
    await sql`grant insert on ${sql(scratch)} to authenticated`;

    const baseline = (index: number) =>
      sql.begin(async (tx) => {
        await tx`set local role authenticated`;
        await tx`select set_config('request.jwt.claims', ${claims[index % claims.length]}, true)`;
        await tx`insert into ${sql(scratch)} (user_id, prompt) values (auth.uid(), ${`a lighthouse at dusk #${index}`})`;
      }).then(() => {});
    const startGeneration = (index: number) =>
      sql.begin(async (tx) => {
        await tx`set local role authenticated`;
        await tx`select set_config('request.jwt.claims', ${claims[index % claims.length]}, true)`;
        await tx`select id from public.start_generation(prompt => ${`a lighthouse at dusk #${index}`}, style => null)`;
      }).then(() => {});

    // Warm up both paths (plans, caches) before measuring.
    await measure(Math.min(100, options.calls), options.concurrency, baseline);
    await measure(Math.min(100, options.calls), options.concurrency, startGeneration);

    const results: { baseline: Measurement[]; start: Measurement[] } = { baseline: [], start: [] };
    for (let round = 1; round <= options.rounds; round++) {
      results.baseline.push(await measure(options.calls, options.concurrency, baseline));
      results.start.push(await measure(options.calls, options.concurrency, startGeneration));
      console.error(`round ${round}/${options.rounds} done`);
    }

    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const summarize = (runs: Measurement[]) => ({
      perSecond: median(runs.map((r) => r.perSecond)),
      p50: median(runs.map((r) => r.p50)),
      p95: median(runs.map((r) => r.p95)),
    });
    const b = summarize(results.baseline);
    const s = summarize(results.start);
    const [{ jobs }] = await sql`select count(*)::int as jobs from public.generation_jobs where user_id = any(${userIds}::uuid[])`;
    console.log(`calls per round: ${options.calls}, concurrency: ${options.concurrency}, users: ${options.users}, rounds: ${options.rounds} (medians)`);
    console.log(`baseline insert     ${b.perSecond.toFixed(0).padStart(7)} calls/s   p50 ${b.p50.toFixed(2)} ms   p95 ${b.p95.toFixed(2)} ms`);
    console.log(`start_generation    ${s.perSecond.toFixed(0).padStart(7)} calls/s   p50 ${s.p50.toFixed(2)} ms   p95 ${s.p95.toFixed(2)} ms`);
    console.log(`ratio start_generation / baseline throughput: ${(s.perSecond / b.perSecond).toFixed(2)}`);
    console.log(`jobs created: ${jobs} (expected ${options.calls * options.rounds + Math.min(100, options.calls)})`);
  } finally {
    await sql`drop table if exists ${sql(scratch)}`;
    await sql`delete from auth.users where id = any(${userIds}::uuid[])`;
    await sql`delete from public.plans where id = ${plan}`;
    await sql.end();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((error: Error) => {
    console.error(`benchmark failed: ${error.message}`);
    process.exit(1);
  });
}
