/**
 * The benchmark's one table: rows from every part, rendered for the terminal and for
 * bench/RESULTS.md. Pure functions, so the format is tested without running anything.
 */

/** One measured (or not yet measured) figure, next to the baseline it was measured against. */
export interface Row {
  part: string;
  case: string;
  subject: string;
  /** The figure, in `unit`; absent when the part is not measured yet. */
  value?: number;
  unit?: string;
  p50Ms?: number;
  p99Ms?: number;
  /** A baseline from the same run; the ratio is value / baseline.value. */
  baseline?: { name: string; value: number };
  note?: string;
}

export interface Machine {
  cores: number;
  memoryGiB: number;
  postgres: string;
  pgNet: "real" | "look-alike";
  /** fsync, synchronous_commit and full_page_writes on, as on a hosted project. */
  durableCommits: boolean;
}

export interface Report {
  mode: "quick" | "full";
  startedAt: string;
  durationSeconds: number;
  machine: Machine;
  rows: Row[];
  /** Further markdown sections (profiles, plans), in order. */
  sections: { title: string; body: string }[];
}

export const COLUMNS = ["Part", "Case", "Subject", "Value", "p50 ms", "p99 ms", "Baseline (same run)", "Ratio", "Note"];

function number(value: number): string {
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  if (value >= 100) return Math.round(value).toLocaleString("en-US");
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function ratio(row: Row): number | undefined {
  if (row.value === undefined || !row.baseline || row.baseline.value === 0) return undefined;
  return row.value / row.baseline.value;
}

export function cells(row: Row): string[] {
  const unit = row.unit ? ` ${row.unit}` : "";
  const r = ratio(row);
  return [
    row.part,
    row.case,
    row.subject,
    row.value === undefined ? "not measured yet" : `${number(row.value)}${unit}`,
    row.p50Ms === undefined ? "" : number(row.p50Ms),
    row.p99Ms === undefined ? "" : number(row.p99Ms),
    row.baseline ? `${row.baseline.name}: ${number(row.baseline.value)}${unit}` : "",
    r === undefined ? "" : r.toFixed(2),
    row.note ?? "",
  ];
}

export function machineLine(report: Report): string {
  const m = report.machine;
  return `${report.mode} run, started ${report.startedAt}, took ${Math.round(report.durationSeconds)} s; ` +
    `${m.cores} cores, ${m.memoryGiB.toFixed(1)} GiB memory, ${m.postgres}, pg_net ${m.pgNet}, ` +
    (m.durableCommits ? "durable commits (fsync, synchronous_commit, full_page_writes on)" : "durability off");
}

export function markdownTable(rows: Row[]): string {
  const escape = (cell: string) => cell.replaceAll("|", "\\|");
  const lines = [
    `| ${COLUMNS.join(" | ")} |`,
    `|${COLUMNS.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${cells(row).map(escape).join(" | ")} |`),
  ];
  return lines.join("\n");
}

export function renderMarkdown(report: Report): string {
  const parts = [
    "# Benchmark results",
    "",
    "Written by `npm run bench` (see the README's Benchmarks section); every figure stands next to a",
    "baseline measured in the same run, interleaved with it, because absolute numbers drift on shared machines.",
    "",
    machineLine(report),
    "",
    markdownTable(report.rows),
  ];
  for (const section of report.sections) parts.push("", `## ${section.title}`, "", section.body);
  return parts.join("\n") + "\n";
}

/** The same table, aligned for a terminal. */
export function renderText(report: Report): string {
  const table = [COLUMNS, ...report.rows.map(cells)];
  const widths = COLUMNS.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const lines = table.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return [machineLine(report), "", ...lines].join("\n");
}
