import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// Operators learn which alerts exist from two places: the comment on private.alerts (\d+ in psql,
// the dashboard) and the README's row for private.active_alerts. Both must name exactly the keys
// the functions as they are now (not as an earlier migration defined them) can raise.
const root = fileURLToPath(new URL("../../..", import.meta.url));

/** Alert keys a function body raises: private.raise_alert('key', ...); comments do not count. */
function alertKeysRaised(body: string): string[] {
  const code = body.replace(/--[^\n]*/g, "");
  return [...code.matchAll(/raise_alert\(\s*'([a-z_]+)'/g)].map((match) => match[1]);
}

/** The keys listed in the comment on private.alerts: "Operator alerts (a, b, c)". */
function keysInTableComment(comment: string): string[] {
  const list = comment.match(/Operator alerts \(([^)]*)\)/)?.[1] ?? "";
  return list.split(",").map((key) => key.trim()).filter((key) => key !== "");
}

/**
 * The keys the README's private.active_alerts row names: backquoted snake_case words outside
 * parentheses (inside them, each key's explanation names its details fields).
 */
function keysInReadme(readme: string): string[] {
  let row = readme.split("\n").find((line) => line.startsWith("| `private.active_alerts` |")) ?? "";
  for (let inner = row.replace(/\([^()]*\)/g, ""); inner !== row; inner = row.replace(/\([^()]*\)/g, "")) row = inner;
  return [...row.matchAll(/`([a-z]+(?:_[a-z]+)+)`/g)].map((match) => match[1]);
}

/** Keys private.active_alerts computes itself when read; private.alerts never holds them. */
const COMPUTED_BY_THE_VIEW = ["ticks_silent"];

const sorted = (keys: Iterable<string>) => [...new Set(keys)].sort();

describe("alert keys are documented where operators read them", () => {
  const sql = connect({ max: 1 });
  afterAll(() => sql.end());

  async function raised(): Promise<string[]> {
    const rows = await sql<{ body: string }[]>`
      select p.prosrc as body from pg_proc p
       where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)`;
    return sorted(rows.flatMap((row) => alertKeysRaised(row.body)));
  }

  it("finds the keys the functions raise", async () => {
    expect((await raised()).length).toBeGreaterThan(5);
    expect(alertKeysRaised("perform private.raise_alert('a_b', 'x');\n-- private.raise_alert('c_d')")).toEqual(["a_b"]);
  });

  it("the comment on private.alerts lists exactly those keys", async () => {
    const [{ comment }] = await sql<{ comment: string }[]>`
      select obj_description('private.alerts'::regclass, 'pg_class') as comment`;
    expect(sorted(keysInTableComment(comment))).toEqual(await raised());
  });

  it("the view computes its own keys", async () => {
    const [{ definition }] = await sql<{ definition: string }[]>`
      select pg_get_viewdef('private.active_alerts'::regclass) as definition`;
    for (const key of COMPUTED_BY_THE_VIEW) expect(definition).toContain(`'${key}'::text`);
    expect(keysInReadme("| `private.active_alerts` | `a_b` (`c_d` (`e_f`)), `g_h` |")).toEqual(["a_b", "g_h"]);
  });

  it("the README's private.active_alerts row names exactly those keys and the view's own", async () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    expect(sorted(keysInReadme(readme))).toEqual(sorted([...(await raised()), ...COMPUTED_BY_THE_VIEW]));
  });
});
