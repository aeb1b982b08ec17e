/**
 * A migration that tightens the setting rules ends by checking the values already stored, and
 * stops (KL053, naming each broken setting) rather than leave a value its rule now refuses. The
 * migrations ran long ago on this database, so each check is run again here on a stored value
 * slipped past the write trigger, as a value written before the rule existed would be.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { connectAsAdmin } from "./support/db.ts";

const dir = join(import.meta.dirname, "../../migrations");
// The last `do $$ ... $$;` block of a migration, when it is the stored-values check.
const storedValuesCheck = (sql: string): string | undefined =>
  [...sql.matchAll(/^do \$\$\n[\s\S]*?\n\$\$;$/gm)].map((m) => m[0]).filter((block) =>
    block.includes("settings stored before this migration")
  ).at(-1);

const checks = readdirSync(dir)
  .filter((name) => name.endsWith(".sql"))
  .sort()
  .flatMap((name) => {
    const block = storedValuesCheck(readFileSync(join(dir, name), "utf8"));
    return block ? [[name, block] as [string, string]] : [];
  });

// The platform's superuser: only it may turn the write trigger off (session_replication_role).
const admin = connectAsAdmin({ max: 1 });
afterAll(() => admin.end({ timeout: 5 }));

class Rollback extends Error {}

/** Runs `work` in a transaction that is always rolled back; resolves with what it returned. */
async function rolledBack<T>(work: (tx: typeof admin) => Promise<T>): Promise<T> {
  let result!: T;
  await admin.begin(async (tx) => {
    result = await work(tx as unknown as typeof admin);
    throw new Rollback();
  }).catch((error) => {
    if (!(error instanceof Rollback)) throw error;
  });
  return result;
}

describe("the stored-values check at the end of a settings migration", () => {
  it("is found in the migrations that tighten the rules", () => {
    expect(checks.map(([name]) => name)).toEqual(expect.arrayContaining([
      expect.stringMatching(/_every_setting_checked\.sql$/),
      expect.stringMatching(/_list_entries_readers_can_match\.sql$/),
    ]));
  });

  it.each(checks)("%s passes the values stored now", async (_name, block) => {
    await expect(rolledBack((tx) => tx.unsafe(block))).resolves.toBeDefined();
  });

  it.each(checks)("%s stops on a stored value its rule refuses, naming it", async (_name, block) => {
    const error = await rolledBack(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update private.settings set value = '["localhost", "img.test"]' where key = 'images.allowed_hosts'`;
      await tx`update private.settings set value = '"15m"' where key = 'jobs.deadline_seconds'`;
      await tx`set local session_replication_role = origin`;
      return tx.unsafe(block).then(() => null, (e: { code?: string; detail?: string }) => e);
    });
    expect(error?.code).toBe("KL053");
    expect(error?.detail).toContain('jobs.deadline_seconds = "15m"');
  });

  it("the latest one also names an entry only the new rules refuse", async () => {
    const [, block] = checks.at(-1)!;
    const error = await rolledBack(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update private.settings set value = '["localhost", "img.test"]' where key = 'images.allowed_hosts'`;
      await tx`set local session_replication_role = origin`;
      return tx.unsafe(block).then(() => null, (e: { code?: string; detail?: string }) => e);
    });
    expect(error?.code).toBe("KL053");
    expect(error?.detail).toContain('images.allowed_hosts = ["localhost", "img.test"]');
  });
});
