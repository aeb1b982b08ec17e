import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The app maps error codes, so the registry (the one list, supabase/error-codes.md) must match
// what the SQL can raise.
const root = fileURLToPath(new URL("../../..", import.meta.url));
const migrationsDir = join(root, "supabase/migrations");

// Codes as SQL string literals ('KL001'): what a raise can use; mentions in comments do not count.
function codesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/'(KL\d{3})'/g)].map((match) => match[1]));
}

function documentedCodes(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^\|\s*(KL\d{3})\s*\|/gm)].map((match) => match[1]));
}

const raised = new Set(
  readdirSync(migrationsDir)
    .filter((file) => file.endsWith(".sql"))
    .flatMap((file) => [...codesIn(readFileSync(join(migrationsDir, file), "utf8"))]),
);

describe("error code registry", () => {
  const registry = documentedCodes(readFileSync(join(root, "supabase/error-codes.md"), "utf8"));

  it("finds codes in the migrations", () => {
    expect(raised.size).toBeGreaterThan(20);
  });

  it("documents every code the migrations raise, and nothing else", () => {
    expect([...registry].sort()).toEqual([...raised].sort());
  });
});
