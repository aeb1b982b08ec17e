import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectAsAdmin } from "./support/db.ts";
import { Pipeline } from "./support/pipeline.ts";

// The invariants checker of the end-to-end suites must go red when the system breaks: each test
// breaks one thing the checker watches and reads its verdict.

let p: Pipeline;

beforeAll(async () => {
  p = await Pipeline.start();
}, 60_000);

afterEach(async () => {
  await p.restoreScenario();
});

afterAll(async () => {
  await p?.stop();
});

async function completedJob(): Promise<{ user: string; id: string }> {
  const user = await p.createUser(10);
  const id = await p.startJob(user, { prompt: "a calm lake" });
  const [row] = await p.untilTerminal([id]);
  expect(row.status).toBe("completed");
  expect(await p.checkInvariants([id])).toEqual([]);
  return { user, id };
}

/** Runs `fn` with a function's body replaced, then puts the shipped definition back. */
async function withFunctionReplaced(signature: string, body: string, fn: () => Promise<void>) {
  const [{ def }] = await p.sql<{ def: string }[]>`select pg_get_functiondef(${signature}::regprocedure) as def`;
  try {
    await p.sql.unsafe(def.replace(/AS \$function\$[\s\S]*\$function\$/, `AS $function$${body}$function$`));
    await fn();
  } finally {
    await p.sql.unsafe(def);
  }
}

describe("the invariants checker goes red", () => {
  it("on a job that is not terminal, and on one that finished past its deadline", async () => {
    const user = await p.createUser(10);
    const held = await p.startJob(user, { prompt: "waiting [kie:hold]" });
    await p.tickUntil(async () => (await p.job(held)).status === "generating");
    expect(await p.checkInvariants([held])).toContainEqual(expect.stringMatching(/not terminal/));
    const { id } = await completedJob();
    await p.sql`update private.job_pipeline set deadline_at = now() - interval '1 hour' where job_id = ${id}`;
    expect(await p.checkInvariants([id])).toContainEqual(expect.stringMatching(/finished after its deadline/));
    for (let i = 0; i < 3; i++) await fetch(`${p.kie.url}/__admin/tasks/${await p.taskIdOf(held)}/advance`, { method: "POST" });
    await p.untilTerminal([held]);
  });

  it("on a failed job whose refund was skipped", async () => {
    const user = await p.createUser(10);
    await withFunctionReplaced("private.refund_job(uuid, text)", " begin return; end ", async () => {
      const id = await p.startJob(user, { prompt: "doomed [kie:fail=501]" });
      const [row] = await p.untilTerminal([id]);
      expect(row.status).toBe("failed");
      expect(await p.checkInvariants([id])).toEqual([expect.stringMatching(/failed without a refund/)]);
    });
  });

  it("on a refund for a completed job (completed and failed both applied)", async () => {
    const { user, id } = await completedJob();
    await p.sql`select private.post_ledger_entry(${user}, 'refund', 1, 'a stray refund', ${id})`;
    expect(await p.checkInvariants([id])).toEqual([expect.stringMatching(/refunded/)]);
  });

  it("on a debit that is not the amount charged", async () => {
    const { id } = await completedJob();
    await p.sql`update public.generation_jobs set credits_charged = credits_charged + 1 where id = ${id}`;
    expect(await p.checkInvariants([id])).toEqual([expect.stringMatching(/debit -\d+ for \d+ charged/)]);
  });

  it("on credits that differ from the ledger", async () => {
    const { user, id } = await completedJob();
    // The schema itself refuses this (a trigger checks the balance against the ledger): the
    // platform's superuser switches triggers off to get past it.
    const admin = connectAsAdmin({ max: 1 });
    try {
      await admin.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update public.profiles set credits = credits + 5 where id = ${user}`;
      });
    } finally {
      await admin.end({ timeout: 5 });
    }
    expect(await p.checkInvariants([id])).toEqual([expect.stringMatching(/credits \d+, ledger sums to \d+/)]);
  });

  it("on an image missing from Storage, and on one that is not a PNG", async () => {
    // Each object is a folder of versions in the stand-in's storage directory, at its result path.
    const stored = (path: string) => join(p.stack.storageDir, ...path.split("/"));
    const { id } = await completedJob();
    const [path] = (await p.job(id)).result_urls;
    const versions = await readdir(stored(path));
    for (const v of versions) await writeFile(join(stored(path), v), "not an image");
    expect(await p.checkInvariants([id])).toEqual([expect.stringMatching(/unreadable/)]);
    const other = await completedJob();
    const [otherPath] = (await p.job(other.id)).result_urls;
    const missing = otherPath.replace(/0\.png$/, "1.png");
    await p.sql`update public.generation_jobs set result_urls = result_urls || ${missing}::text where id = ${other.id}`;
    const problems = await p.checkInvariants([other.id]);
    expect(problems).toContainEqual(expect.stringMatching(/1 of 2 images in storage.objects/));
    expect(problems).toContainEqual(expect.stringMatching(/1\.png unreadable/));
    expect((await readdir(stored(otherPath))).length).toBeGreaterThan(0);
  });

  it("on 429s from the emulator the scenario did not ask for", async () => {
    const res = await fetch(`${p.kie.url}/__admin/config`, { method: "PATCH", body: JSON.stringify({ createRate: "1/1s" }) });
    expect(res.status).toBe(200);
    const user = await p.createUser(10);
    const ids = [await p.startJob(user, { prompt: "one" }), await p.startJob(user, { prompt: "two" })];
    await p.untilTerminal(ids, { at: (() => { const t0 = Date.now(); return () => new Date(t0 + (Date.now() - t0) * 4); })() });
    expect(await p.checkInvariants(ids)).toEqual([expect.stringMatching(/the emulator answered 429/)]);
    expect(await p.checkInvariants(ids, { allow429: true })).toEqual([]);
  });
});
