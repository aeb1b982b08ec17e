/**
 * Rule cost (opt-in: `--only rule-cost`; the default run leaves it out): what each of
 * start_generation's guards costs a start, measured by switching it off on the bench cluster and
 * nowhere else. start_generation is called as in part 1 (PostgREST's transaction, 8 clients, the
 * create budget spent), once per variant per round, each run after a checkpoint. The tables grow
 * with every run (the per-user indexes with them), so a later run is slower: the order turns by
 * one variant each round, every variant runs once in every position, and the figures are medians
 * over the rounds. The variants:
 *   - unchanged;
 *   - no dispatch trigger (no pipeline row, no free-token question);
 *   - no ledger guards (the chain check and the two deferred balance checks);
 *   - no foreign-key checks (the insert-side checks on the job, ledger and pipeline rows);
 *   - no moderation (private.find_blocked_term answers null at once);
 *   - all four off, and the floor baseline (part 1's) beside it.
 * Everything is switched back on before the part returns, whatever happens.
 */
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { pgbench } from "../pgbench.ts";
import { median } from "../stats.ts";
import type { Row } from "../results.ts";
import { psqlFile } from "./psql.ts";
import type { Context, Part, PartResult } from "./types.ts";

const USERS = 5000;
const CLIENTS = 8;
const sqlDir = fileURLToPath(new URL("../sql/", import.meta.url));

type Guard = "dispatch trigger" | "ledger guards" | "foreign-key checks" | "moderation";
const GUARDS: Guard[] = ["dispatch trigger", "ledger guards", "foreign-key checks", "moderation"];
const VARIANTS: { name: string; off: Guard[]; script: "start-generation" | "floor" }[] = [
  { name: "unchanged", off: [], script: "start-generation" },
  ...GUARDS.map((g) => ({ name: `no ${g}`, off: [g], script: "start-generation" as const })),
  { name: "all four off", off: GUARDS, script: "start-generation" },
  { name: "floor baseline", off: [], script: "floor" },
];

/** The statements that switch each guard on or off (as the cluster's superuser). */
async function switches(admin: postgres.Sql): Promise<Record<Guard, { on: string[]; off: string[] }>> {
  const foreignKeyChecks = (await admin`
    select format('alter table %s %%s trigger %I', t.tgrelid::regclass, t.tgname) as statement
      from pg_trigger t
     where t.tgisinternal and t.tgfoid = 'pg_catalog."RI_FKey_check_ins"'::regproc
       and t.tgrelid in ('public.generation_jobs'::regclass, 'public.credit_ledger'::regclass, 'private.job_pipeline'::regclass)`)
    .map((r) => String(r.statement));
  const [{ definition }] = await admin`select pg_get_functiondef('private.find_blocked_term(text)'::regprocedure) as definition`;
  const toggles = (statements: string[]) => ({
    on: statements.map((s) => s.replace("%s", "enable")),
    off: statements.map((s) => s.replace("%s", "disable")),
  });
  return {
    "dispatch trigger": toggles(["alter table public.generation_jobs %s trigger generation_jobs_enqueue"]),
    "ledger guards": toggles([
      "alter table public.credit_ledger %s trigger credit_ledger_chain",
      "alter table public.credit_ledger %s trigger credit_ledger_matches_profile",
      "alter table public.profiles %s trigger profiles_credits_match_ledger",
    ]),
    "foreign-key checks": toggles(foreignKeyChecks),
    moderation: {
      on: [String(definition)],
      off: [`create or replace function private.find_blocked_term(content text) returns text language plpgsql stable
              set search_path = pg_catalog, pg_temp as $$ begin return null; end $$`],
    },
  };
}

export const ruleCost: Part = {
  id: "rule-cost",
  title: "what each guard costs a start",
  optIn: true,
  async run(context: Context): Promise<PartResult> {
    const seconds = context.quick ? 2 : 8;
    const rounds = context.quick ? 1 : VARIANTS.length;
    const admin = postgres(context.adminUrl, { max: 1, onnotice: () => {} });
    let restore: string[] = [];
    try {
      const [{ ready }] = await admin`select to_regnamespace('bench') is not null as ready`;
      if (!ready) await psqlFile(context.adminUrl, `${sqlDir}start-generation-fixtures.sql`, { users: USERS });
      const toggles = await switches(admin);
      restore = GUARDS.flatMap((g) => toggles[g].on);
      const setGuards = async (off: Guard[]) => {
        for (const g of GUARDS) for (const statement of toggles[g][off.includes(g) ? "off" : "on"]) await admin.unsafe(statement);
      };
      const bench = (script: string, secs: number) =>
        pgbench({ databaseUrl: context.databaseUrl, script: `${sqlDir}${script}.pgbench`, clients: CLIENTS, seconds: secs, variables: { users: USERS } });

      await bench("start-generation", 1); // warm-up: plans, caches
      const tps = new Map<string, number[]>();
      let errors = 0;
      for (let round = 1; round <= rounds; round++) {
        for (let i = 0; i < VARIANTS.length; i++) {
          const variant = VARIANTS[(i + round - 1) % VARIANTS.length];
          await setGuards(variant.off);
          await admin`call bench.finish_active()`;
          await admin`checkpoint`;
          const result = await bench(variant.script, seconds);
          errors += result.failed + result.abortedClients;
          tps.set(variant.name, [...(tps.get(variant.name) ?? []), result.tps]);
          context.log(`  rule cost, ${variant.name}, round ${round}: ${Math.round(result.tps)} TPS`);
        }
      }
      await setGuards([]);

      const unchanged = tps.get("unchanged")!;
      const rows: Row[] = VARIANTS.filter((v) => v.name !== "floor baseline").map((v) => {
        const base = { part: "7 rule cost", case: `${CLIENTS} clients`, subject: `start_generation, ${v.name}`, unit: "TPS", value: median(tps.get(v.name)!) };
        const runs = tps.get(v.name)!.map((x) => Math.round(x)).join(", ");
        if (v.name === "unchanged") return { ...base, note: `median of ${rounds} run(s) of ${seconds} s (${runs} TPS), one per position` };
        return { ...base, baseline: { name: "unchanged", value: median(unchanged) }, note: `runs: ${runs} TPS` };
      });
      const floor = median(tps.get("floor baseline")!);
      rows.push({ part: "7 rule cost", case: `${CLIENTS} clients`, subject: "start_generation, all four off", unit: "TPS",
                  value: median(tps.get("all four off")!), baseline: { name: "floor", value: floor },
                  note: "what the rest of a start costs beside the floor" });
      rows.push({ part: "7 rule cost", case: "all runs", subject: "errors", value: errors, note: "failed transactions + aborted clients" });
      return { rows, sections: [], summary: [] };
    } finally {
      // Whatever failed above, the bench cluster gets its guards back.
      for (const statement of restore) await admin.unsafe(statement).catch(() => {});
      await admin.end();
    }
  },
};
