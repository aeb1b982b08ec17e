/** The command line (issue 7 item 1): flags, --help, 127.0.0.1 only, clean shutdown. */
import { spawn } from "node:child_process";
import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";
import { parseArgs, parseRate } from "../../../../scripts/dev-stack/kie-emulator/options.ts";

const cli = "scripts/dev-stack/kie-emulator/cli.ts";

function run(args: string[]) {
  const child = spawn("node_modules/.bin/tsx", [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", () => stdout.includes("\n") && resolve(stdout.split("\n")[0]));
    child.on("exit", () => reject(new Error(`exited early: ${stderr}`)));
  });
  // Only the serving test awaits the URL; the others exit on purpose.
  firstLine.catch(() => {});
  return { child, exited, firstLine, output: () => ({ stdout, stderr }) };
}

describe("argument parsing", () => {
  it("reads every documented flag", () => {
    const { options, dbUrl } = parseArgs([
      "--port", "18100", "--api-key", "k1", "--api-key", "k2", "--task-ms", "0", "--callback-delay-ms", "5",
      "--create-rate", "20/10s", "--poll-rate", "10/1s", "--webhook-hmac-key", "secret", "--callback-retry-ms", "50,100,200",
      "--balance", "9", "--fault", "recordInfo:http=522", "--db-url", "postgresql://x", "--image-size", "64",
    ]);
    expect(options).toMatchObject({
      port: 18100, apiKeys: ["k1", "k2"], taskMs: 0, callbackDelayMs: 5, createRate: { limit: 20, windowMs: 10_000 },
      pollRate: { limit: 10, windowMs: 1000 }, webhookHmacKey: "secret", callbackRetryMs: [50, 100, 200], balance: 9,
      faults: ["recordInfo:http=522"], imageSize: 64,
    });
    expect(dbUrl).toBe("postgresql://x");
  });

  it.each([
    [["--port"], "needs a value"],
    [["--task-ms", "soon"], "non-negative integer"],
    [["--create-rate", "20 per 10s"], "bad rate"],
    [["--colour", "red"], "unknown argument"],
    [["--port", "70000"], "port"],
    [["--fault", "explode"], 'unknown fault "explode"'],
    [["--fault", "recordInfo:moderation"], "only apply to createTask"],
  ])("refuses %j", (args, message) => {
    expect(() => parseArgs(args)).toThrow(message);
  });

  it("parses rates in ms, s and m", () => {
    expect(parseRate("20/10s")).toEqual({ limit: 20, windowMs: 10_000 });
    expect(parseRate("5/250ms")).toEqual({ limit: 5, windowMs: 250 });
    expect(parseRate("100/1m")).toEqual({ limit: 100, windowMs: 60_000 });
  });
});

describe("kie:emulator command", () => {
  it("--help prints the usage and exits 0", async () => {
    const p = run(["--help"]);
    expect(await p.exited).toBe(0);
    expect(p.output().stdout).toContain("--webhook-hmac-key");
  });

  it("bad arguments exit 2 with a message", async () => {
    const p = run(["--create-rate", "lots"]);
    expect(await p.exited).toBe(2);
    expect(p.output().stderr).toContain("bad rate");
  });

  it("serves on 127.0.0.1 only, prints its URL, and stops on SIGTERM", async () => {
    const p = run(["--port", "0", "--api-key", "cli-key", "--task-ms", "0"]);
    const url = await p.firstLine;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const reply = await fetch(`${url}/api/v1/chat/credit`, { headers: { Authorization: "Bearer cli-key" } });
    expect((await reply.json()).code).toBe(200);
    const port = new URL(url).port;
    const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal);
    if (external) await expect(fetch(`http://${external.address}:${port}/`)).rejects.toThrow();
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  });
});
