import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Runs a SQL file with psql (it uses psql variables); throws with psql's error. */
export async function psqlFile(url: string, file: string, variables: Record<string, string | number> = {}): Promise<void> {
  const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", ...Object.entries(variables).flatMap(([k, v]) => ["-v", `${k}=${v}`]), "-f", file, url];
  await run("psql", args, { maxBuffer: 16 * 1024 * 1024 }).catch((error: { stderr?: string }) => {
    throw new Error(`psql -f ${file} failed: ${error.stderr ?? error}`);
  });
}
