/**
 * `npm run kie:emulator -- [options]`: runs the KIE emulator until SIGINT/SIGTERM.
 * Prints the listening URL on stdout (one line) so scripts can read it; logs go to stderr.
 */
import { parseArgs, usage } from "./options.ts";
import { startKieEmulator } from "./server.ts";

async function main(argv: string[]): Promise<void> {
  let args;
  try {
    args = parseArgs(argv);
  } catch (error) {
    console.error(`kie-emulator: ${(error as Error).message}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(usage);
    return;
  }
  const emulator = await startKieEmulator({
    ...args.options,
    databaseUrl: args.dbUrl ?? undefined,
    log: (message) => console.error(`[kie-emulator] ${message}`),
  });
  console.log(emulator.url);
  console.error(
    `[kie-emulator] listening on ${emulator.url} (${args.options.apiKeys?.length ?? 1} key(s), ` +
      `${args.dbUrl ? "models from the database" : "built-in model catalogue"})`,
  );
  const shutdown = async () => {
    await emulator.close();
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

main(process.argv.slice(2)).catch((error: Error) => {
  console.error(`kie-emulator: ${error.message}`);
  process.exit(1);
});
