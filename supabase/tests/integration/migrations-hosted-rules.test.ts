/**
 * Statements hosted Supabase refuses to `postgres` on tables the platform owns. Locally `postgres`
 * is a member of the Storage API's role (standing in for supautils' policy_grants), so the
 * database would accept them: this test keeps the migrations to what `supabase db push` can apply.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const dir = join(import.meta.dirname, "../../migrations");
const platformTable = String.raw`(?:storage|auth|realtime|vault|cron|net)\.\w+`;
const refusedOnHosted: [string, RegExp][] = [
  ["alter table on a platform table", new RegExp(String.raw`\balter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?${platformTable}`, "i")],
  ["comment on a policy of a platform table", new RegExp(String.raw`\bcomment\s+on\s+policy\s+"[^"]+"\s+on\s+${platformTable}`, "i")],
  ["drop of a platform table", new RegExp(String.raw`\bdrop\s+table\s+(?:if\s+exists\s+)?${platformTable}`, "i")],
];

function withoutComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, "");
}

describe("migrations stay within what hosted Supabase lets postgres do", () => {
  const files = readdirSync(dir).filter((name) => name.endsWith(".sql"));

  it("finds the migrations", () => {
    expect(files.length).toBeGreaterThan(5);
  });

  it.each(refusedOnHosted)("no migration contains %s", (_label, pattern) => {
    const offenders = files.filter((name) => pattern.test(withoutComments(readFileSync(join(dir, name), "utf8"))));
    expect(offenders).toEqual([]);
  });

  it("the patterns catch what they are meant to", () => {
    expect(refusedOnHosted[0][1].test("alter table storage.objects enable row level security")).toBe(true);
    expect(refusedOnHosted[1][1].test('comment on policy "x" on storage.objects is \'y\'')).toBe(true);
    expect(refusedOnHosted[2][1].test("drop table if exists storage.objects")).toBe(true);
    expect(refusedOnHosted[0][1].test("alter table public.generation_jobs add column x int")).toBe(false);
  });
});
