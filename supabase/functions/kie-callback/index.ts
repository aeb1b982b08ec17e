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

Deno.serve(createHandler({
  // The function's own login (kiln_callback: the six callback functions only); the platform's
  // SUPABASE_DB_URL (the owner) only where it is not configured.
  db: postgresDatabase(Deno.env.get("KILN_CALLBACK_DB_URL") || required("SUPABASE_DB_URL")),
  storage: supabaseObjectStore(required("SUPABASE_URL"), required("SUPABASE_SERVICE_ROLE_KEY")),
  fetch,
  now: Date.now,
  env: Deno.env.toObject(),
}));
