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
