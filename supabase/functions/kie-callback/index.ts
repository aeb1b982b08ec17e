// kie-callback entry point: wires the handler to Postgres, Storage and the platform's
// environment. Everything it does is in handler.ts.
import { postgresDatabase } from "../_shared/database.ts";
import { supabaseObjectStore } from "../_shared/storage.ts";
import { createHandler } from "./handler.ts";

const required = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const handler = createHandler({
  db: postgresDatabase(required("SUPABASE_DB_URL")),
  storage: supabaseObjectStore(required("SUPABASE_URL"), required("SUPABASE_SERVICE_ROLE_KEY")),
  fetch,
  now: Date.now,
  env: Deno.env.toObject(),
});

// The platform routes requests to Deno.serve itself; the local stack instead names a loopback
// port for its gateway to forward to.
const localPort = Deno.env.get("KILN_FUNCTION_PORT");
if (localPort) Deno.serve({ hostname: "127.0.0.1", port: Number(localPort) }, handler);
else Deno.serve(handler);
