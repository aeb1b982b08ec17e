import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The demo's command line: --help, and bad flags refused with exit 2 before anything starts.
// The demo itself (the whole stack) is not run here: the end-to-end suites cover the pipeline.

const script = resolve(dirname(fileURLToPath(import.meta.url)), "../../../scripts/demo.ts");
let scratch = "";

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "kiln-demo-cli-"));
  // The stack directory lies under a file: should a refused run go on anyway, stack.sh cannot
  // create it and stops before starting anything.
  await writeFile(join(scratch, "file"), "");
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function demo(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      env: { ...process.env, KIE_API_KEY: "", KILN_DEMO_PUBLIC_URL: "", KILN_STACK_DIR: join(scratch, "file", "stack"),
        KILN_STACK_DB_PORT: "1", KILN_STACK_GATEWAY_PORT: "1", KILN_STACK_KIE_PORT: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c));
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    child.on("error", fail);
    child.on("exit", (code) => done({ code, stdout, stderr }));
  });
}

describe("npm run demo: command line", () => {
  it("--help prints the usage, names every flag and exits 0", async () => {
    const { code, stdout, stderr } = await demo(["--help"]);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(stdout).toMatch(/^usage: npm run demo/);
    for (const flag of ["--keep", "--out", "--timeout", "--kie-key", "--public-url", "KIE_API_KEY", "functions_base_url"]) {
      expect(stdout).toContain(flag);
    }
  });

  it.each([
    [["--bogus"], /Unknown option '--bogus'/],
    [["extra"], /positional argument/],
    [["--timeout", "soon"], /--timeout must be a whole number of seconds from 1 to 3600/],
    [["--timeout", "0"], /--timeout must be a whole number of seconds from 1 to 3600/],
    [["--kie-key", "k"], /--kie-key needs --public-url/],
    [["--kie-key", "k", "--public-url", "http://tunnel.example"], /--public-url must be an https URL/],
    [["--public-url", "https://tunnel.example"], /--public-url is only used with --kie-key/],
    [["--kie-key"], /argument missing/],
  ])("%j is refused with exit 2, the reason and the usage, before anything starts", async (args, reason) => {
    const { code, stdout, stderr } = await demo(args);
    expect(code).toBe(2);
    expect(stdout).toBe(""); // the first step prints its header before it starts the stack
    expect(stderr).toMatch(reason);
    expect(stderr).toContain("usage: npm run demo");
  });

  it("KIE_API_KEY in the environment counts as --kie-key", async () => {
    const { code, stderr } = await demo([], { KIE_API_KEY: "from-env" });
    expect(code).toBe(2);
    expect(stderr).toMatch(/--kie-key needs --public-url/);
  });

  it("a bad port in the environment is refused with exit 2", async () => {
    const { code, stderr } = await demo(["--keep"], { KILN_STACK_DB_PORT: "70000" });
    expect(code).toBe(2);
    expect(stderr).toMatch(/too big|<=65535/i);
  });
});
