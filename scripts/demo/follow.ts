import type { Sql } from "postgres";
import type { Change, ChangeStream } from "../../supabase/tests/integration/support/wal2json.ts";
import { receives } from "../../supabase/tests/integration/support/wal2json.ts";

// Prints each status change of the demo's jobs as it streams out of the supabase_realtime
// publication (what Realtime reads), filtered and RLS-checked as Realtime would deliver it to
// the user's subscription `user_id=eq.<uid>`, and each change of the balance as the app's
// subscription to its profile (`id=eq.<uid>`) gets it. Silence gets a heartbeat line, never a
// quiet wait.

export interface Tracked {
  label: string;
  status: string;
}

/** The balance as the app's Realtime subscription to its profile last delivered it. */
export interface Balance {
  credits: number | null;
}

const TERMINAL = new Set(["completed", "failed"]);
const HEARTBEAT_MS = 4000;

export async function follow(
  sql: Sql,
  stream: ChangeStream,
  userId: string,
  jobs: Map<string, Tracked>,
  balance: Balance,
  say: (line: string) => void,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quietSince = Date.now();
  for (;;) {
    for (const change of await stream.read()) {
      if (await followBalance(sql, change, userId, balance, say)) continue;
      if (change.schema !== "public" || change.table !== "generation_jobs") continue;
      const job = jobs.get(change.record.id ?? "");
      if (!job) continue;
      if (!(await receives(sql, change, { userId, filters: [{ column: "user_id", value: userId }] }))) {
        throw new Error(`Realtime would not deliver the ${change.action} of ${job.label} to its owner`);
      }
      const status = change.record.status ?? "";
      if (status === job.status && change.action !== "insert") continue;
      say(`${job.label}: ${job.status ? `${job.status} → ` : ""}${status}${detail(change.record)}`);
      job.status = status;
      quietSince = Date.now();
    }
    const open = [...jobs.values()].filter((j) => !TERMINAL.has(j.status));
    if (open.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`still not finished after ${timeoutMs / 1000} s: ${open.map((j) => `${j.label} ${j.status}`).join(", ")}`);
    }
    if (Date.now() - quietSince >= HEARTBEAT_MS) {
      say(`… waiting: ${open.map((j) => `${j.label} ${j.status}`).join(", ")}`);
      quietSince = Date.now();
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Takes a change of the user's profile row, if it is one; says when its balance moved. */
export async function followBalance(
  sql: Sql,
  change: Change,
  userId: string,
  balance: Balance,
  say: (line: string) => void,
): Promise<boolean> {
  if (change.schema !== "public" || change.table !== "profiles" || change.record.id !== userId) return false;
  if (!(await receives(sql, change, { userId, filters: [{ column: "id", value: userId }] }))) {
    throw new Error(`Realtime would not deliver the ${change.action} of the user's profile to its owner`);
  }
  const credits = Number(change.record.credits);
  if (credits !== balance.credits) {
    say(`balance: ${balance.credits === null ? "" : `${balance.credits} → `}${credits} credits`);
    balance.credits = credits;
  }
  return true;
}

function detail(record: Record<string, string | null>): string {
  if (record.status === "failed") return ` (${record.error_code}: ${record.error_message})`;
  if (record.status === "completed") return ` (${record.result_urls?.replace(/^\{|\}$/g, "")})`;
  return "";
}
