// The pg_net worker as the pipeline suites drive it, whichever pg_net is installed:
// - the look-alike: its Node worker runs only between start and stop, as before;
// - the real extension: its background worker always exists (the postmaster restarts it), so
//   "stopped" means frozen with SIGSTOP, and "started" means thawed with SIGCONT. A frozen worker
//   sends nothing and leaves the queue as it is, which is what the scenarios need: requests that
//   wait while the worker is down, or that a crash loses before they are sent. Outside the suites
//   that start it, the real worker stays frozen (support/global-setup.ts).
// The same start and stop as the worker suites' (support/pg-net.ts testWorkers), without their
// per-test bookkeeping.
import { connectAsAdmin } from "./db.ts";
import { assertNoOtherWorker, installedPgNet, testWorkers } from "./pg-net.ts";

export interface NetWorker {
  /** The worker sends nothing until the next startNetWorker(). */
  stop(): Promise<void>;
}

/** Starts (look-alike) or thaws (real) the worker that sends pg_net's queued requests. */
export async function startNetWorker(): Promise<NetWorker> {
  const kind = (await installedPgNet()) === "real" ? "real" : "lookalike";
  const admin = connectAsAdmin({ max: 1 });
  try {
    // No look-alike worker of another suite may drain the queue while this one runs.
    if (kind === "lookalike") await assertNoOtherWorker(admin);
    const { stop } = await testWorkers(kind, admin, () => {}).start();
    return { stop };
  } finally {
    await admin.end({ timeout: 5 });
  }
}
