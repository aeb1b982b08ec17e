import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// A settings write and a change of its rule made at the same time: each trigger checks against
// the other table, so without a lock each would pass against the other's old row and together
// they would leave a value its rule forbids. The settings trigger reads the rule `for share`:
// whichever comes second waits for the first to commit, then checks against what it committed.
// A key of the test's own, so no other setting is disturbed.

const KEY = "test.concurrent_limit";
const sql = connect({ max: 4 });

interface State {
  value: number | null;
  max: number | null;
}

async function state(): Promise<State> {
  const [row] = await sql<State[]>`
    select (select (s.value #>> '{}')::int from private.settings s where s.key = ${KEY}) as value,
           (select r.max_value::int from private.setting_rules r where r.key = ${KEY}) as max`;
  return row;
}

/** Resolves once the statement running on `pid` waits for a lock (or has already finished). */
async function waitUntilBlocked(pid: number, finished: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!finished()) {
    const [row] = await sql<{ waiting: boolean }[]>`
      select coalesce(wait_event_type = 'Lock', false) as waiting from pg_stat_activity where pid = ${pid}`;
    if (row?.waiting) return;
    if (Date.now() > deadline) throw new Error("the second transaction neither waited nor finished");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `first` runs in an open transaction; `second` starts on another connection while it is open,
 * and `first` commits once `second` has either finished or is waiting for a lock.
 * Resolves with the SQLSTATE `second` failed with, or "committed".
 */
async function race(first: string, second: string): Promise<string> {
  const secondConnection = await sql.reserve();
  try {
    const [{ pid }] = await secondConnection<{ pid: number }[]>`select pg_backend_pid() as pid`;
    let secondOutcome!: Promise<string>;
    await sql.begin(async (tx) => {
      await tx.unsafe(first);
      let done = false;
      secondOutcome = secondConnection
        .unsafe(second)
        .then(() => "committed", (error: { code?: string }) => String(error.code ?? error))
        .finally(() => (done = true));
      await waitUntilBlocked(pid, () => done);
    });
    return await secondOutcome;
  } finally {
    secondConnection.release();
  }
}

beforeEach(async () => {
  await sql`delete from private.settings where key = ${KEY}`;
  await sql`delete from private.setting_rules where key = ${KEY}`;
  await sql`insert into private.setting_rules (key, shape, min_value, max_value, may_be_deleted)
            values (${KEY}, 'whole_number', 0, 1000, true)`;
  await sql`insert into private.settings (key, value, description) values (${KEY}, '500', 'concurrency test')`;
});

afterEach(async () => {
  await sql`delete from private.settings where key = ${KEY}`;
  await sql`delete from private.setting_rules where key = ${KEY}`;
});

afterAll(() => sql.end({ timeout: 5 }));

describe("settings and their rules changed at the same time", () => {
  it("a value written while its rule is being tightened is checked against the tightened rule", async () => {
    const outcome = await race(
      `update private.setting_rules set max_value = 600 where key = '${KEY}'`,
      `update private.settings set value = '800' where key = '${KEY}'`,
    );
    expect(outcome).toBe("KL053");
    expect(await state()).toEqual({ value: 500, max: 600 });
  });

  it("a rule tightened while a value is being written is checked against that value", async () => {
    const outcome = await race(
      `update private.settings set value = '900' where key = '${KEY}'`,
      `update private.setting_rules set max_value = 600 where key = '${KEY}'`,
    );
    expect(outcome).toBe("KL053");
    expect(await state()).toEqual({ value: 900, max: 1000 });
  });

  it("a rule change outside read committed is refused: its trigger would read a snapshot from before any wait", async () => {
    for (const level of ["repeatable read", "serializable"]) {
      const outcome = await sql
        .begin(`isolation level ${level}`, (tx) => tx.unsafe(`update private.setting_rules set max_value = 600 where key = '${KEY}'`))
        .then(() => "committed", (error: { code?: string }) => String(error.code ?? error));
      expect(outcome, level).toBe("KL053");
    }
    expect(await state()).toEqual({ value: 500, max: 1000 });
  });

  it("a setting inserted while its rule is being deleted is refused as unknown", async () => {
    await sql`delete from private.settings where key = ${KEY}`;
    const outcome = await race(
      `delete from private.setting_rules where key = '${KEY}'`,
      `insert into private.settings (key, value, description) values ('${KEY}', '10', 'late')`,
    );
    expect(outcome).toBe("KL053");
    expect(await state()).toEqual({ value: null, max: null });
  });

  it("a rule deleted while its setting is being inserted is refused", async () => {
    await sql`delete from private.settings where key = ${KEY}`;
    const outcome = await race(
      `insert into private.settings (key, value, description) values ('${KEY}', '10', 'first')`,
      `delete from private.setting_rules where key = '${KEY}'`,
    );
    expect(outcome).toBe("KL053");
    expect(await state()).toEqual({ value: 10, max: 1000 });
  });
});
