/**
 * CLI of the local platform gateway (gateway.ts). Development only.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { startGateway } from "./gateway.ts";
import { LOCAL_ANON_KEY, LOCAL_JWT_SECRET, LOCAL_SERVICE_ROLE_KEY } from "./keys.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

const USAGE = `Usage: tsx scripts/dev-stack/gateway/main.ts [options]

The local stack's one base URL, like a hosted project's SUPABASE_URL, on 127.0.0.1:
  /storage/v1/...           Storage API stand-in (real files + storage.objects rows, RLS decides)
  /functions/v1/<name>/...  supabase/functions/<name>/index.ts under Deno
  /rest/v1/...              404 (no PostgREST locally)
Runs until SIGTERM or SIGINT.

Options:
  --port N               port on 127.0.0.1 (default: 54321, config.toml [api] port)
  --database-url URL     database (default: $DATABASE_URL)
  --storage-dir DIR      where object files are kept (required)
  --functions-dir DIR    Edge Functions (default: supabase/functions)
  --config FILE          config.toml for verify_jwt (default: supabase/config.toml)
  --set-vault-secrets    store the gateway's URL and the local service key in Vault as project_url
                         and service_role_key (what the database uses to call Storage), as an
                         operator does on a hosted project
  --print-keys           print the local JWT secret, anon key and service key, then exit
  -h, --help             show this help
`;

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        "database-url": { type: "string" },
        "storage-dir": { type: "string" },
        "functions-dir": { type: "string" },
        config: { type: "string" },
        "print-keys": { type: "boolean" },
        "set-vault-secrets": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values["print-keys"]) {
    process.stdout.write(
      `JWT secret        ${LOCAL_JWT_SECRET}\nanon key          ${LOCAL_ANON_KEY}\nservice_role key  ${LOCAL_SERVICE_ROLE_KEY}\n`,
    );
    return 0;
  }
  const port = values.port === undefined ? 54321 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`--port must be a port number, got '${values.port}'\n`);
    return 2;
  }
  const databaseUrl = values["database-url"] ?? process.env.DATABASE_URL;
  if (!databaseUrl) {
    process.stderr.write("no database: pass --database-url or set DATABASE_URL\n");
    return 2;
  }
  if (!values["storage-dir"]) {
    process.stderr.write("--storage-dir is required\n");
    return 2;
  }
  const gateway = await startGateway({
    port,
    databaseUrl,
    storageDir: resolve(values["storage-dir"]),
    functionsDir: values["functions-dir"] ? resolve(values["functions-dir"]) : resolve(ROOT, "supabase/functions"),
    configPath: values.config ? resolve(values.config) : resolve(ROOT, "supabase/config.toml"),
    log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  });
  if (values["set-vault-secrets"]) await setVaultSecrets(databaseUrl, gateway.url);
  await new Promise<void>((done) => {
    process.once("SIGTERM", done);
    process.once("SIGINT", done);
  });
  await gateway.stop();
  return 0;
}

/** Creates or updates the Vault secrets the database reads to call the Storage API. */
async function setVaultSecrets(databaseUrl: string, url: string): Promise<void> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (const [name, value] of [["project_url", url], ["service_role_key", LOCAL_SERVICE_ROLE_KEY]]) {
      const [existing] = await sql`select id from vault.secrets where name = ${name}`;
      if (existing) await sql`select vault.update_secret(${existing.id}, ${value})`;
      else await sql`select vault.create_secret(${value}, ${name})`;
    }
  } finally {
    await sql.end();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`gateway: ${err.message}\n`);
    process.exit(1);
  },
);
