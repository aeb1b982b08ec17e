import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import type { Database } from "../../functions/_shared/database.types.ts";
import { connect } from "./support/db.ts";

// What the app reads through the generated types (database.types.ts, `supabase gen types
// typescript`) must hold for what the RPCs return. The values are checked here at run time, as
// PostgREST would serialise them; the type assertions are checked by the `tsc` suite (expectTypeOf
// is a no-op at run time), which fails when the committed types promise less than the data.

type RecentPrompt = Database["public"]["Functions"]["recent_prompts"]["Returns"][number];

const sql = connect({ max: 2 });
const userId = randomUUID();
const claims = JSON.stringify({ sub: userId, role: "authenticated" });

/** `supabase.rpc(name, args)` as PostgREST runs it: one transaction, role and claims, rows as JSON. */
async function rpcRows<T>(query: string, parameters: unknown[] = []): Promise<T[]> {
  return (await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${claims}, true)`;
    const rows = await tx.unsafe(`select to_jsonb(r) as row from ${query} r`, parameters as never[]);
    return rows.map((r) => r.row as T);
  })) as T[];
}

beforeAll(async () => {
  await sql`insert into auth.users (id, email) values (${userId}, ${`${userId}@app-contract.kiln.local`})`;
  // Two requests, as the app makes them: each start is its own transaction (and created_at).
  await rpcRows(`public.start_generation(prompt => 'a lighthouse at dusk', style => 'watercolor')`);
  await rpcRows(`public.start_generation(prompt => 'a paper boat')`);
});

afterAll(async () => {
  await sql`delete from auth.users where id = ${userId}`;
  await sql.end();
});

describe("recent_prompts rows as the app reads them", () => {
  it("a prompt sent without a style comes back with style null, and the type says it may", async () => {
    const rows = await rpcRows<RecentPrompt>(`public.recent_prompts("limit" => 10)`);
    expect(rows.map((row) => [row.prompt, row.style])).toEqual([
      ["a paper boat", null],
      ["a lighthouse at dusk", "watercolor"],
    ]);
    expect(Object.keys(rows[0]).sort()).toEqual(["aspect_ratio", "last_used_at", "prompt", "quality", "style"]);
    expectTypeOf<RecentPrompt["style"]>().toEqualTypeOf<string | null>();
    expectTypeOf<RecentPrompt>().toHaveProperty("prompt");
    expectTypeOf<RecentPrompt>().toHaveProperty("last_used_at");
  });
});
