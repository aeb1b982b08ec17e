import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, databaseUrl } from "./support/db.ts";

// `npm run stack:up` on a stack made with the other pg_net: the cluster's preloads were fixed
// when it was made, so a look-alike stack under the real extension would leave every job waiting
// (no worker of either kind), and a real-pg_net stack cannot start without the extension. It is
// refused, named, and left as it is. No cluster is started here: the data directories are fakes.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
let scratch = "";
let installed: "real" | "lookalike";

function run(command: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

/** A stack directory whose cluster was made with these preloads (only its postgresql.conf). */
async function fakeStack(name: string, preloads: string): Promise<string> {
  const dir = join(scratch, name);
  await mkdir(join(dir, "data"), { recursive: true });
  await writeFile(join(dir, "data", "postgresql.conf"), `shared_preload_libraries = '${preloads}'\n`);
  return dir;
}

function stackUp(dir: string) {
  return run("bash", ["scripts/stack.sh", "up"], {
    KILN_STACK_DIR: dir, KILN_STACK_DB_PORT: "1", KILN_STACK_GATEWAY_PORT: "1", KILN_STACK_KIE_PORT: "1", KILN_STACK_REBUILD_STALE: "",
  });
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "kiln-stack-cli-"));
  const probe = await run("bash", ["-c", "source scripts/lib/local-stack.sh; has_real_pg_net || exit 3"]);
  installed = probe.code === 0 ? "real" : "lookalike";
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe("stack:up and the pg_net a stack was made with", () => {
  it("refuses a stack made with the other pg_net, names stack:reset, and leaves its data alone", async () => {
    const other = installed === "real" ? "pg_cron" : "pg_cron,pg_net";
    const dir = await fakeStack("other", other);
    const { code, stderr } = await stackUp(dir);
    expect(code).not.toBe(0);
    expect(stderr).toContain(installed === "real"
      ? "was made with the pg_net look-alike, but the real pg_net is installed"
      : "was made with the real pg_net, which is not installed here");
    expect(stderr).toContain(`KILN_STACK_DIR=${dir} npm run stack:reset`);
    expect(await readdir(join(dir, "data"))).toEqual(["postgresql.conf"]);
  });

  it("does not refuse a stack made with the pg_net installed here", async () => {
    const same = installed === "real" ? "pg_cron,pg_net" : "pg_cron";
    const { stderr } = await stackUp(await fakeStack("same", same));
    // It goes on (and fails later on the fake data directory), without the refusal.
    expect(stderr).not.toContain("npm run stack:reset");
  });
});

// A stack database that another checkout migrated (a branch, a rewritten history) holds versions
// this checkout has no file for; the CLI then refuses to migrate it. `stack:up` names them (the
// demo's own stack is made again): migrations_not_here finds them.
describe("stack:up and migrations applied by another checkout", () => {
  const sql = connect({ max: 1 });
  const foreign = "20991231235900";
  afterAll(async () => {
    await sql`delete from supabase_migrations.schema_migrations where version = ${foreign}`;
    await sql.end({ timeout: 5 });
  });
  const notHere = () =>
    run("bash", ["-c", 'source scripts/lib/local-stack.sh; migrations_not_here "$0"', databaseUrl()]).then((r) => r.stdout.trim());

  it("finds none in a database migrated from this checkout", async () => {
    expect(await notHere()).toBe("");
  });

  it("names a version applied there that this checkout has no file for", async () => {
    await sql`insert into supabase_migrations.schema_migrations (version, name) values (${foreign}, 'from_another_branch')`;
    expect(await notHere()).toBe(foreign);
  });
});
