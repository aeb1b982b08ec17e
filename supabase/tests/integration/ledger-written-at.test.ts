import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asServiceRole, type Tx } from "./support/concurrency.ts";
import { connect } from "./support/db.ts";
import { testPlan } from "./support/plans.ts";

// A ledger entry is dated when it is written, not when its transaction began. Over two real
// connections: a transaction that began first writes its entry last (it took the profile's lock
// after the other committed), so its entry has the higher id and must not have the earlier date.
// Inside one pgTAP transaction every entry shares the transaction's start, so this can only be
// seen across transactions.

const sql = connect({ max: 3 });
const plan = testPlan(sql, "ledgerts", "Ledger time test", 10);

beforeAll(() => plan.create());
afterAll(() => plan.drop().finally(() => sql.end({ timeout: 5 })));

describe("credit_ledger.created_at", () => {
  it("an entry written later by a transaction that began earlier is not dated before the entries between", async () => {
    const userId = await plan.signUp();
    const early = await sql.reserve();
    try {
      await early`begin`;
      await asServiceRole(early as unknown as Tx);
      await early`select now()`; // the transaction has begun: now() is fixed from here
      await new Promise((resolve) => setTimeout(resolve, 20));
      const [between] = await sql.begin(async (tx) => {
        await asServiceRole(tx);
        return tx<{ id: string }[]>`select (public.grant_credits(${userId}, 3, 'written between')).id::text as id`;
      });
      const [late] = await early<{ id: string }[]>`select (public.grant_credits(${userId}, 4, 'written last')).id::text as id`;
      await early`commit`;

      const rows = await sql<{ id: string; created_at: Date }[]>`
        select id::text, created_at from public.credit_ledger where id in (${between.id}::bigint, ${late.id}::bigint) order by id`;
      expect(rows.map((row) => row.id)).toEqual([between.id, late.id]);
      expect(rows[1].created_at.getTime()).toBeGreaterThanOrEqual(rows[0].created_at.getTime());
    } finally {
      await early`rollback`.catch(() => {}); // a no-op after the commit
      early.release();
    }
  });
});
