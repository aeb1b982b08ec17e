// The pg_net worker as the pipeline suites drive it, whichever pg_net is installed:
// - the look-alike: its Node worker runs only between start and stop, as before;
// - the real extension: its background worker always exists (the postmaster restarts it), so
//   "stopped" means frozen with SIGSTOP, and "started" means thawed with SIGCONT. A frozen worker
//   sends nothing and leaves the queue as it is, which is what the scenarios need: requests that
//   wait while the worker is down, or that a crash loses before they are sent. Outside the suites
//   that start it, the real worker stays frozen (support/global-setup.ts).
import { PG_NET_WORKER_APPLICATION_NAME, type PgNetWorker, startPgNetWorker } from "../../../../scripts/dev-stack/pg-net-worker.ts";
import { adminDatabaseUrl, connectAsAdmin } from "./db.ts";
import { installedPgNet, signalRealWorker } from "./pg-net.ts";

export interface NetWorker {
  /** The worker sends nothing until the next startNetWorker(). */
  stop(): Promise<void>;
}

/** No look-alike worker of another suite may drain the queue while this one runs. */
async function assertNoLookalikeWorker(): Promise<void> {
  const admin = connectAsAdmin({ max: 1 });
  try {
    const [{ n }] = await admin<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where application_name = ${PG_NET_WORKER_APPLICATION_NAME}`;
    if (n > 0) throw new Error("another pg_net look-alike worker is connected: this suite needs the queue to itself");
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Starts (look-alike) or thaws (real) the worker that sends pg_net's queued requests. */
export async function startNetWorker(): Promise<NetWorker> {
  if ((await installedPgNet()) === "real") {
    await signalRealWorker("SIGCONT");
    return { stop: () => signalRealWorker("SIGSTOP") };
  }
  await assertNoLookalikeWorker();
  const worker: PgNetWorker = await startPgNetWorker({ databaseUrl: adminDatabaseUrl(), log: () => {} });
  return { stop: () => worker.stop() };
}
