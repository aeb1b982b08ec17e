// What the Storage purge suites share: the database reaching the Storage API the way a hosted
// project does. The test gateway (Storage stand-in) runs, the Vault secrets project_url and
// service_role_key point at it (the previous values come back at stop), and pg_net's worker sends
// the queued delete requests.
import type { SupabaseClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import { LOCAL_SERVICE_ROLE_KEY } from "../../../../scripts/dev-stack/gateway/keys.ts";
import { type NetWorker, startNetWorker } from "./net-worker.ts";
import { serviceClient, startTestGateway, type TestGateway } from "./gateway.ts";

export interface PurgeStack {
  gateway: TestGateway;
  /** A client with the service key, as the platform's own services call Storage. */
  service: SupabaseClient;
  stop(): Promise<void>;
}

export async function startPurgeStack(sql: postgres.Sql): Promise<PurgeStack> {
  const gateway = await startTestGateway();
  const saved = await sql<{ name: string; secret: string }[]>`
    select name, secret from vault.secrets where name in ('project_url', 'service_role_key')`;
  for (const [name, value] of [["project_url", gateway.gateway.url], ["service_role_key", LOCAL_SERVICE_ROLE_KEY]]) {
    await sql`delete from vault.secrets where name = ${name}`;
    await sql`select vault.create_secret(${value}, ${name})`;
  }
  let worker: NetWorker | undefined;
  try {
    worker = await startNetWorker();
  } catch (error) {
    await gateway.stop();
    throw error;
  }
  return {
    gateway,
    service: serviceClient(gateway.gateway.url),
    async stop() {
      await worker?.stop();
      await sql`delete from vault.secrets where name in ('project_url', 'service_role_key')`;
      for (const { name, secret } of saved) await sql`select vault.create_secret(${secret}, ${name})`;
      await gateway.stop();
    },
  };
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until pg_net has stored the answer to that request. */
export async function waitForResponse(sql: postgres.Sql, requestId: number | string): Promise<void> {
  await waitFor(async () => (await sql`select 1 from net._http_response where id = ${requestId}`).length > 0);
}
