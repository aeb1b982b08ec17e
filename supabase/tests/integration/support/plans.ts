import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { asServiceRole, signUp } from "./concurrency.ts";

/**
 * A plan of one test file's own, so that only what a test means to exercise refuses: metered, no
 * signup credits, ranked above every other, with `limit` active jobs and `limit` starts a minute.
 * `create` it in beforeAll and `drop` it in afterAll: that deletes the users the file signed up
 * (their profiles, jobs and ledgers go with them) and then the plan.
 */
export type TestPlan = ReturnType<typeof testPlan>;

export function testPlan(sql: Sql<Record<string, unknown>>, label: string, name: string, limit: number) {
  const id = `${label}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const users: string[] = [];
  return {
    id,
    /** Every user `signUp` made, in order. */
    users,
    async create(): Promise<void> {
      const [{ rank }] = await sql<{ rank: number }[]>`
        select coalesce(max(rank), 0) + 1 + floor(random() * 1000)::int as rank from public.plans`;
      await sql`
        insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered)
        values (${id}, ${name}, ${rank}, ${limit}, ${limit}, 0, true)`;
    },
    /** A signed-up user, moved to `plan` (this one unless named) with `credits` granted, by an operator. */
    async signUp(options: { plan?: string; credits?: number } = {}): Promise<string> {
      const { plan = id, credits = 0 } = options;
      const userId = await signUp(sql, label);
      users.push(userId);
      if (plan !== "free" || credits !== 0) {
        await sql.begin(async (tx) => {
          await asServiceRole(tx);
          if (plan !== "free") await tx`select public.set_plan(${userId}, ${plan})`;
          if (credits !== 0) await tx`select public.grant_credits(${userId}, ${credits}, ${`${name} credits`})`;
        });
      }
      return userId;
    },
    async drop(): Promise<void> {
      if (users.length > 0) await sql`delete from auth.users where id = any(${users}::uuid[])`;
      await sql`delete from public.plans where id = ${id}`;
    },
  };
}
