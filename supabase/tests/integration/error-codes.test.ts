import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// The app maps error codes, so the registry (the one list, supabase/error-codes.md) must match
// what the SQL can raise, and the job failure codes what the table accepts and the SQL writes.
// "The SQL" is every function as it is defined now: a code or a job failure code that only an
// earlier migration's version of a function used is not raised any more.
const root = fileURLToPath(new URL("../../..", import.meta.url));

function withoutComments(text: string): string {
  return text.replace(/--[^\n]*/g, "");
}

// Codes as SQL string literals ('KL001'): what a raise can use; mentions in comments do not count.
function codesIn(text: string): Set<string> {
  return new Set([...withoutComments(text).matchAll(/'(KL\d{3})'/g)].map((match) => match[1]));
}

/** The bodies of every function in public and private, as defined now. */
async function currentFunctionBodies(sql: ReturnType<typeof connect>): Promise<string[]> {
  const rows = await sql<{ body: string }[]>`
    select p.prosrc as body from pg_proc p
     where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)`;
  return rows.map((row) => row.body);
}

function documentedCodes(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^\|\s*(KL\d{3})\s*\|/gm)].map((match) => match[1]));
}

describe("error code registry", () => {
  const sql = connect({ max: 1 });
  afterAll(() => sql.end());
  const registry = documentedCodes(readFileSync(join(root, "supabase/error-codes.md"), "utf8"));

  async function raised(): Promise<Set<string>> {
    return new Set((await currentFunctionBodies(sql)).flatMap((body) => [...codesIn(body)]));
  }

  it("finds codes in the functions, and none in a comment", async () => {
    expect((await raised()).size).toBeGreaterThan(20);
    expect([...codesIn("raise_error('KL001', 'x'); -- not 'KL002'")]).toEqual(["KL001"]);
  });

  it("documents every code the functions raise, and nothing else", async () => {
    expect([...registry].sort()).toEqual([...(await raised())].sort());
  });
});

// Job failure codes as the SQL writes them: `error_code = 'x'`, and the code argument (the fourth)
// of private.fail_job calls. The arguments before it hold no commas (ids, `array[stage]`, attempt).
function jobCodesWritten(text: string): Set<string> {
  const assigned = [...text.matchAll(/error_code\s*=\s*'([a-z_]+)'/g)].map((match) => match[1]);
  const failed = [...text.matchAll(/fail_job\(\s*[^,()]+,\s*[^,]+,\s*[^,]+,\s*'([a-z_]+)'/g)].map((match) => match[1]);
  return new Set([...assigned, ...failed]);
}

function documentedJobCodes(markdown: string): Set<string> {
  const section = markdown.split(/^## Why a job failed/m)[1] ?? "";
  return new Set([...section.matchAll(/^\|\s*`([a-z_]+)`\s*\|/gm)].map((match) => match[1]));
}

describe("job failure codes (generation_jobs.error_code)", () => {
  const sql = connect();
  afterAll(() => sql.end());
  const registry = documentedJobCodes(readFileSync(join(root, "supabase/error-codes.md"), "utf8"));

  it("documents every code the functions write, and nothing else", async () => {
    const written = new Set((await currentFunctionBodies(sql)).flatMap((body) => [...jobCodesWritten(withoutComments(body))]));
    expect(registry.size).toBeGreaterThan(3);
    expect([...registry].sort()).toEqual([...written].sort());
  });

  it("documents exactly the codes the table accepts", async () => {
    const [{ definition }] = await sql<{ definition: string }[]>`
      select pg_get_constraintdef(oid) as definition from pg_constraint
       where conrelid = 'public.generation_jobs'::regclass and conname = 'generation_jobs_error_code_known'`;
    const list = definition.match(/error_code = ANY \(ARRAY\[([^\]]*)\]/)?.[1] ?? "";
    const accepted = new Set([...list.matchAll(/'([a-z_]+)'::text/g)].map((match) => match[1]));
    expect([...accepted].sort()).toEqual([...registry].sort());
  });
});
