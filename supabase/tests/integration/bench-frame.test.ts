// The benchmark is a script, not a test: nothing here measures anything. These checks keep its
// frame from rotting: the CLI answers --help and refuses bad arguments without starting a cluster,
// every part is listed, and the results writer renders given numbers into the documented table.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseSummary } from "../../../scripts/bench/pgbench.ts";
import { parseArgs, selectedParts } from "../../../scripts/bench/run.ts";
import { COLUMNS, markdownTable, renderMarkdown, renderText, type Report } from "../../../scripts/bench/results.ts";
import { median, percentile } from "../../../scripts/bench/stats.ts";

const run = promisify(execFile);

const report: Report = {
  mode: "quick",
  startedAt: "2026-11-30T12:00:00Z",
  durationSeconds: 93.4,
  machine: { cores: 2, memoryGiB: 23.5, postgres: "PostgreSQL 15.18", pgNet: "look-alike", durableCommits: true },
  rows: [
    { part: "1 start_generation", case: "8 clients", subject: "one-update baseline", unit: "TPS", value: 20000, p50Ms: 0.2, p99Ms: 2.5 },
    { part: "1 start_generation", case: "8 clients", subject: "start_generation", unit: "TPS", value: 2500, p50Ms: 3.1, p99Ms: 12.25,
      baseline: { name: "one-update", value: 20000 } },
    { part: "4 cost growth", case: "1M finished + 1k active", subject: "private.poll_tick", unit: "ms", value: 2.2,
      baseline: { name: "10k finished", value: 2 }, note: "a | b" },
    { part: "2 dispatch burst", case: "", subject: "createTask rate", note: "needs the emulator" },
  ],
  sections: [{ title: "Profile", body: "details here" }],
};

describe("npm run bench", () => {
  it("prints its usage with --help, naming every part", async () => {
    const { stdout } = await run("npm", ["run", "--silent", "bench", "--", "--help"]);
    expect(stdout).toMatch(/^usage: npm run bench -- \[--quick\]/);
    for (const part of ["start-generation", "tick-cost", "dispatch-burst", "engine-overhead", "callback-path", "memory", "rule-cost"]) expect(stdout).toContain(part);
    expect(stdout).toContain("rule-cost runs only when named here");
  });

  it("runs the opt-in part only when it is named", () => {
    expect(selectedParts().map((p) => p.id)).toEqual(["start-generation", "tick-cost", "dispatch-burst", "engine-overhead", "callback-path", "memory"]);
    const options = parseArgs(["--only", "rule-cost,start-generation"]);
    if (options === "help") throw new Error("not help");
    expect(selectedParts(options.only).map((p) => p.id)).toEqual(["start-generation", "rule-cost"]);
  });

  it("refuses an unknown part before starting anything", async () => {
    const failure = await run("npm", ["run", "--silent", "bench", "--", "--only", "no-such-part"]).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain("only.0");
  });
});

describe("the results writer", () => {
  it("renders given numbers as one markdown table with ratios to the same-run baselines", () => {
    const lines = markdownTable(report.rows).split("\n");
    expect(lines[0]).toBe(`| ${COLUMNS.join(" | ")} |`);
    expect(lines[1]).toBe("|---|---|---|---|---|---|---|---|---|");
    expect(lines[2]).toBe("| 1 start_generation | 8 clients | one-update baseline | 20,000 TPS | 0.20 | 2.50 |  |  |  |");
    expect(lines[3]).toBe("| 1 start_generation | 8 clients | start_generation | 2,500 TPS | 3.10 | 12.3 | one-update: 20,000 TPS | 0.13 |  |");
    expect(lines[4]).toBe("| 4 cost growth | 1M finished + 1k active | private.poll_tick | 2.20 ms |  |  | 10k finished: 2 ms | 1.10 | a \\| b |");
    expect(lines[5]).toBe("| 2 dispatch burst |  | createTask rate | not measured yet |  |  |  |  | needs the emulator |");
  });

  it("states the run's mode, duration and machine, then the table and the sections", () => {
    const markdown = renderMarkdown(report);
    expect(markdown).toContain(
      "quick run, started 2026-11-30T12:00:00Z, took 93 s; 2 cores, 23.5 GiB memory, PostgreSQL 15.18, pg_net look-alike, " +
        "durable commits (fsync, synchronous_commit, full_page_writes on)",
    );
    expect(renderMarkdown({ ...report, machine: { ...report.machine, durableCommits: false } })).toContain("pg_net look-alike, durability off");
    expect(markdown.indexOf("| Part |")).toBeLessThan(markdown.indexOf("## Profile"));
    expect(renderText(report).split("\n")[2]).toMatch(/^Part +Case +Subject +Value/);
  });

  it("reads pgbench's summary, counting aborted clients", () => {
    const output = [
      "number of transactions actually processed: 12345",
      "number of failed transactions: 3 (0.024%)",
      "tps = 4115.123456 (without initial connection time)",
      "pgbench: error: client 2 script 0 aborted in command 4 query 0: ERROR:  too many generations in progress",
    ].join("\n");
    expect(parseSummary(output)).toEqual({ tps: 4115.123456, transactions: 12345, failed: 3, abortedClients: 1 });
  });
});

describe("the order statistics every figure is read with", () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);

  it("takes the nearest rank: the smallest value with p % of the values at or below it", () => {
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile(hundred, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it("gives the middle value, or the mean of the two middle ones, in any input order", () => {
    expect(median([9, 1, 5])).toBe(5);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});
