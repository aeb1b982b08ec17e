import postgres from "postgres";

/** The database the test runner prepared (bootstrap, migrations, seed). */
export function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: run the suites through `npm test`");
  return url;
}

/** A connection pool for one test file; close it in afterAll. */
export function connect(options: postgres.Options<Record<string, never>> = {}) {
  return postgres(databaseUrl(), { onnotice: () => {}, ...options });
}

/**
 * The platform's superuser (supabase_admin), only for stand-ins of processes that run inside the
 * server on hosted Supabase (pg_net's worker) and for server settings only it may change.
 */
export function adminDatabaseUrl(): string {
  const url = process.env.KILN_ADMIN_DATABASE_URL;
  if (!url) throw new Error("KILN_ADMIN_DATABASE_URL is not set: run the suites through `npm test`");
  return url;
}

export function connectAsAdmin(options: postgres.Options<Record<string, never>> = {}) {
  return postgres(adminDatabaseUrl(), { onnotice: () => {}, ...options });
}
