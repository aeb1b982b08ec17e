// With the real pg_net installed, its background worker is frozen (SIGSTOP) while the suites run
// and thawed when they end. So whichever pg_net runs, no worker sends anything unless a suite
// starts one (support/net-worker.ts, support/pg-net.ts): the look-alike's worker runs only inside
// the suites that start it, and suites that answer pg_net's requests themselves (inserting
// net._http_response rows) need the queue left alone.
import { installedPgNet, signalRealWorker } from "./pg-net.ts";

export async function setup(): Promise<void> {
  if ((await installedPgNet()) === "real") await signalRealWorker("SIGSTOP");
}

export async function teardown(): Promise<void> {
  if ((await installedPgNet()) === "real") await signalRealWorker("SIGCONT");
}
