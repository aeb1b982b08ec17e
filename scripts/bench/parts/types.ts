import type { Row } from "../results.ts";

export interface Context {
  /** As `postgres`, the project owner, like PostgREST's authenticator and pg_cron. */
  databaseUrl: string;
  /** As the cluster's superuser: fixtures and profiling switches on the bench cluster only. */
  adminUrl: string;
  quick: boolean;
  log: (message: string) => void;
}

export interface PartResult {
  rows: Row[];
  sections: { title: string; body: string }[];
  /** Lines printed after the table (the quick mode's ratio line). */
  summary: string[];
}

/** One benchmark part: one module each, run in order by scripts/bench/run.ts. */
export interface Part {
  id: string;
  title: string;
  /** Left out of the default run; runs only when named with --only. */
  optIn?: boolean;
  run(context: Context): Promise<PartResult>;
}
