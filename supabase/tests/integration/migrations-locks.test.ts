/**
 * Migrations run on a live database (`supabase db push`, one transaction per file) while starts,
 * ticks and callbacks keep writing. On the tables every one of those writes touches, a statement
 * that takes a strong lock for the length of a scan or a rewrite stops the service for as long as
 * it runs (about a second per million rows for a scan, 10 s and more for a rewrite, measured in
 * the README's "Migrations on a live database"), and even a catalog-only change waits behind the
 * longest open transaction while every later query on the table queues behind it. This test reads
 * the statements of every migration, those inside its `do` blocks and in the body of a function it
 * creates and calls included (other function bodies, comments and literals left out; SQL built at
 * run time, `execute '...'` or `execute format(...)`, is not read: review it by hand), and refuses,
 * on those tables:
 *
 * - `create index` or `reindex` without `concurrently` (a SHARE lock: no writes during the build), and a
 *   concurrent build that shares its file with other statements: the CLI runs it outside the
 *   file's transaction, so what came before it stays applied if the file fails after it;
 * - `add constraint` (check or foreign key) without `not valid`, also a foreign key to one of them
 *   from another table; validate in a later file: a `validate constraint` after another `alter
 *   table` of the same table in the same file scans it under that statement's lock;
 * - a column type change or `set not null` (a rewrite, or a scan under ACCESS EXCLUSIVE), and a
 *   new column whose default is volatile (a rewrite);
 * - an `update` or `delete` with no `where` (a backfill of every row in one transaction);
 * - any other statement that blocks writes (alter table, triggers, policies, drop index, a foreign
 *   key to one of them from any table, a new one too, ...) unless the file set `lock_timeout`
 *   first, so it gives up behind a long transaction instead of queueing every start behind it.
 *
 * A table created in the same file is new and empty: nothing is checked on it. The migrations that
 * landed before this check and break a rule are listed below with the lock they took; the README
 * section says what each cost.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const dir = join(import.meta.dirname, "../../migrations");

/**
 * The tables every start, tick or callback writes, and storage_purges, which every start with
 * photos (private.refuse_expiring_uploads) and every completing callback (private.callback_complete)
 * reads: an ACCESS EXCLUSIVE lock on it stops those as surely.
 */
const hotTables = ["public.generation_jobs", "public.profiles", "public.credit_ledger", "private.job_pipeline", "private.requests", "private.storage_purges"];

/** Landed before this check: `version rule` → what it did (documented in the README). */
const landed: Record<string, string> = {
  "20261125090600 not valid": "credit_ledger_job_id_fkey added while the jobs table was new",
  "20261125090600 lock_timeout": "the same foreign key, the jobs table created with its foreign key to profiles, and replica identity on it",
  "20261130140100 not valid": "two checks on generation_jobs under ACCESS EXCLUSIVE",
  "20261130140100 lock_timeout": "two columns, two checks and a policy change on generation_jobs; result_purges created with a foreign key to it",
  "20261130140100 concurrently": "generation_jobs_results_kept_idx built under a SHARE lock",
  "20261130150000 not valid": "generation_jobs_stage_matches_status replaced under ACCESS EXCLUSIVE",
  "20261130150000 lock_timeout": "the same check; job_pipeline, requests and late_results created with foreign keys to generation_jobs",
  "20261130150100 lock_timeout": "two triggers created on generation_jobs",
  "20261130150200 concurrently": "requests_resolved_at_idx built under a SHARE lock (the table was a file old)",
  "20261130150300 concurrently": "job_pipeline_finished_at_idx built under a SHARE lock (the table was two files old)",
  "20261130185000 lock_timeout": "a trigger created on private.requests",
  "20261130192100 lock_timeout": "job_pipeline.results_expire_at added; generation_jobs_results_kept_idx dropped",
  "20261130192100 concurrently": "job_pipeline_results_expire_at_idx built under a SHARE lock",
  "20261130192200 lock_timeout": "job_pipeline.free_retries added with its check",
  "20261130193000 lock_timeout": "triggers dropped and created on private.requests",
  "20261201100200 lock_timeout": "two generation_jobs indexes dropped",
  "20261201100200 concurrently": "two generation_jobs indexes rebuilt partial under a SHARE lock",
  "20261201110000 lock_timeout": "triggers dropped and created on private.requests",
  "20261201120000 lock_timeout": "a trigger created on public.profiles",
  "20261201120100 not valid": "storage_purges' reason check replaced and its upload check added under ACCESS EXCLUSIVE (before starts read the table)",
  "20261201120100 lock_timeout": "the same checks",
  "20261201120100 concurrently": "storage_purges_done_idx built under a SHARE lock",
  "20261201130000 lock_timeout": "a trigger created on generation_jobs",
  "20261201130100 lock_timeout": "storage_purges.failing_since added and a trigger created on it",
  "20261201150000 concurrently": "job_pipeline_waiting_due_idx built under a SHARE lock",
  "20261202090200 lock_timeout": "job_pipeline_waiting_due_idx dropped",
  "20261202090200 concurrently": "job_pipeline_waiting_rank_due_idx built under a SHARE lock",
  "20261202210100 lock_timeout": "credit_ledger.created_at default changed (catalog only) with no lock_timeout",
  "20261203202100 lock_timeout": "two triggers created on private.requests (catalog only) with no lock_timeout",
  "20261203222000 not valid": "storage_purges' reason check replaced and its delivery folder check added under ACCESS EXCLUSIVE",
  "20261203222000 lock_timeout": "the same checks, with no lock_timeout",
};

/**
 * The statements a migration runs, lowercased, without comments or literals: its top-level
 * statements, those of its `do` blocks (whatever the dollar-quote tag), and those of a function it
 * creates and then calls, which all run in the file's transaction and take the same locks. Other
 * dollar-quoted text (function bodies, run when called, not when the migration is applied) is left
 * out. PL/pgSQL is read statement by statement: the control words around them (`declare`, `begin`,
 * `if ... then`, `loop`, `exception when ... then`, `end ...`) are taken off, `perform` reads as
 * `select`. Out of scope: SQL built at run time (`execute '...'`, `execute format(...)`), whose
 * text is a literal or an expression, and functions created in another file.
 */
function statements(sql: string): string[] {
  const list: string[] = [];
  const bodies = new Map<string, string>();
  let current = "";
  // The rest of a `do` statement after its block (`language plpgsql`) is not a statement.
  let afterBlock = false;
  // A statement read, and after a call (select or call) of a function the file created before it,
  // the statements of that function's body, which run in the file's transaction (those it calls in
  // turn are not followed).
  const push = (statement: string) => {
    if (!statement) return;
    list.push(statement);
    if (!/^(?:select|call) /.test(statement)) return;
    for (const [fn, body] of bodies) {
      if (new RegExp(String.raw`(?:^|[^\w.])${fn.replace(/\./g, "\\.")} ?\(`).test(statement)) {
        list.push(...statements(body).map(plpgsql).filter(Boolean));
      }
    }
  };
  const end = () => {
    if (!afterBlock) push(current.replace(/\s+/g, " ").trim().toLowerCase());
    current = "";
    afterBlock = false;
  };
  const dollarTag = /\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/y;
  const identifierChar = (c: string | undefined) => c !== undefined && /[a-zA-Z0-9_$]/.test(c);
  let i = 0;
  while (i < sql.length) {
    dollarTag.lastIndex = i;
    const tag = sql[i] === "$" && !identifierChar(current.at(-1)) ? dollarTag.exec(sql)?.[0] : undefined;
    if (sql.startsWith("--", i)) {
      const newline = sql.indexOf("\n", i);
      i = newline < 0 ? sql.length : newline;
      current += " ";
    } else if (sql.startsWith("/*", i)) {
      const close = sql.indexOf("*/", i + 2);
      i = close < 0 ? sql.length : close + 2;
      current += " ";
    } else if (sql[i] === "'") {
      // A literal ('' inside it is a quote; after E, a backslash escapes the next character).
      const escapes = /[eE]/.test(current.at(-1) ?? "") && !identifierChar(current.at(-2));
      let j = i + 1;
      while (j < sql.length) {
        if (escapes && sql[j] === "\\") j += 2;
        else if (sql[j] === "'" && sql[j + 1] === "'") j += 2;
        else if (sql[j] === "'") break;
        else j += 1;
      }
      i = j + 1;
      current += "''";
    } else if (sql[i] === '"') {
      const close = sql.indexOf('"', i + 1);
      const next = close < 0 ? sql.length : close + 1;
      current += sql.slice(i, next);
      i = next;
    } else if (tag !== undefined) {
      const close = sql.indexOf(tag, i + tag.length);
      const body = sql.slice(i + tag.length, close < 0 ? sql.length : close);
      i = close < 0 ? sql.length : close + tag.length;
      if (/^do(?: language \w+)?$/i.test(current.replace(/\s+/g, " ").trim())) {
        current = "";
        for (const statement of statements(body)) push(plpgsql(statement));
        afterBlock = true;
      } else {
        const created = current.replace(/\s+/g, " ").trim().toLowerCase().match(/^create (?:or replace )?(?:function|procedure) ([a-z0-9_."]+) ?\(/);
        if (created) bodies.set(created[1].replace(/"/g, ""), body);
        current += "$body$";
      }
    } else if (sql[i] === ";") {
      end();
      i += 1;
    } else {
      current += sql[i];
      i += 1;
    }
  }
  end();
  return list;
}

/** A statement of a PL/pgSQL block without the control words before it. */
function plpgsql(statement: string): string {
  const control = [
    /^<<\w+>> /,
    /^declare\b ?/,
    /^begin\b ?/,
    /^(?:if|elsif|elseif) .*? then\b ?/,
    /^else\b ?/,
    /^(?:for|foreach|while) .*? loop\b ?/,
    /^loop\b ?/,
    /^(?:exception )?when .*? then\b ?/,
    /^exception\b ?/,
    /^end(?: if| loop| case)?(?: \w+)?$/,
  ];
  let s = statement;
  for (let before = ""; before !== s; ) {
    before = s;
    for (const word of control) s = s.replace(word, "");
  }
  return s.replace(/^perform /, "select ").trim();
}

const name = String.raw`(?:"?[a-z_][a-z0-9_$]*"?\.)?"?[a-z_][a-z0-9_$]*"?`;
const unquote = (table: string) => {
  const bare = table.replace(/"/g, "");
  return bare.includes(".") ? bare : `public.${bare}`;
};

type Finding = { rule: string; statement: string };

/** What the rules find in one migration's SQL. */
function findings(sql: string): Finding[] {
  const list = statements(sql);
  const created = new Set(
    list.flatMap((s) => {
      const m = s.match(new RegExp(String.raw`^create (?:unlogged )?table (?:if not exists )?(${name})`));
      return m ? [unquote(m[1])] : [];
    }),
  );
  const hot = (table: string) => hotTables.includes(unquote(table)) && !created.has(unquote(table));
  const hotIndexName = (index: string) => hotTables.some((t) => unquote(index).split(".")[1].startsWith(`${t.split(".")[1]}_`));
  const found: Finding[] = [];
  const flag = (rule: string, statement: string) => found.push({ rule, statement });
  let lockTimeout = false;
  const altered = new Set<string>();
  const concurrentBuild = list.some((s) => /^(?:create (?:unique )?index|reindex (?:table|index)) concurrently /.test(s));
  if (concurrentBuild && list.filter((s) => !/^(?:set|reset) /.test(s)).length > 1) {
    flag("concurrently", "a concurrent index build shares its file with other statements");
  }
  for (const s of list) {
    if (/^set (?:local )?lock_timeout /.test(s)) lockTimeout = true;
    if (/^reset (?:lock_timeout|all)$/.test(s)) lockTimeout = false;

    const index = s.match(new RegExp(String.raw`^create (?:unique )?index (concurrently )?(?:if not exists )?(?:${name} )?on (?:only )?(${name})`));
    if (index) {
      if (!index[1] && hot(index[2])) flag("concurrently", s);
      continue;
    }
    const reindex = s.match(new RegExp(String.raw`^reindex (table|index) (concurrently )?(${name})$`));
    if (reindex) {
      const busy = reindex[1] === "table" ? hot(reindex[3]) : hotIndexName(reindex[3]);
      if (!reindex[2] && busy) flag("concurrently", s);
      continue;
    }
    const alter = s.match(new RegExp(String.raw`^alter table (?:if exists )?(?:only )?(${name}) (.*)$`));
    // A foreign key to a busy table, from a table that is not one (a new table too), takes SHARE
    // ROW EXCLUSIVE on the busy table: no writes to it while it waits and, unless it is added
    // not valid, while the referencing table is scanned.
    if (/^(?:create (?:unlogged )?table|alter table) /.test(s) && !(alter && hot(alter[1]))) {
      const referenced = [...s.matchAll(new RegExp(String.raw`\breferences (${name})`, "g"))].map((m) => m[1]);
      if (referenced.some(hot)) {
        if (alter && /\badd (?:constraint \S+ )?foreign key\b/.test(alter[2]) && !/\bnot valid\b/.test(alter[2])) flag("not valid", s);
        if (!lockTimeout) flag("lock_timeout", s);
      }
    }
    if (alter) {
      if (!hot(alter[1])) continue;
      const actions = alter[2];
      // A validate scans the table under whatever the file's transaction already holds on it: after
      // another alter table of it in the same file, that is ACCESS EXCLUSIVE (or SHARE ROW EXCLUSIVE).
      if (/^validate constraint \S+$/.test(actions)) {
        if (altered.has(unquote(alter[1]))) flag("validate", s);
      } else {
        altered.add(unquote(alter[1]));
      }
      if (/\badd (?:constraint \S+ )?(?:check|foreign key)\b/.test(actions) && !/\bnot valid\b/.test(actions)) flag("not valid", s);
      if (/\badd (?:constraint \S+ )?(?:primary key|unique)\b/.test(actions) && !/\busing index\b/.test(actions)) flag("concurrently", s);
      if (/\balter (?:column )?\S+ (?:set data )?type\b/.test(actions) || /\bset not null\b/.test(actions)) flag("rewrite", s);
      if (/\badd (?:column )?(?:if not exists )?\S+ [^,]*\b(?:default [^,]*\b(?:clock_timestamp|gen_random_uuid|random|uuid_generate_v4|uuid_v7|nextval|timeofday)\(|serial|bigserial|generated)/.test(actions)) {
        flag("rewrite", s);
      }
      // VALIDATE CONSTRAINT alone takes SHARE UPDATE EXCLUSIVE, which writes pass.
      if (!/^validate constraint \S+$/.test(actions) && !lockTimeout) flag("lock_timeout", s);
      continue;
    }
    const blocking = [
      new RegExp(String.raw`^create (?:or replace )?(?:constraint )?trigger \S+ .*? on (${name})`),
      new RegExp(String.raw`^drop trigger (?:if exists )?\S+ on (${name})`),
      new RegExp(String.raw`^(?:create|alter|drop) policy (?:if exists )?(?:"[^"]*"|\S+) on (${name})`),
      new RegExp(String.raw`^lock table (?:only )?(${name})`),
      new RegExp(String.raw`^truncate (?:table )?(?:only )?(${name})`),
      new RegExp(String.raw`^(?:cluster|vacuum \(?full\b[^ ]*) (${name})`),
    ];
    const table = blocking.map((re) => s.match(re)?.[1]).find((t) => t !== undefined);
    if (table !== undefined) {
      if (hot(table) && !lockTimeout) flag("lock_timeout", s);
      continue;
    }
    const dropIndex = s.match(new RegExp(String.raw`^(?:drop|alter) index (concurrently )?(?:if exists )?(${name})`));
    if (dropIndex) {
      if (!dropIndex[1] && hotIndexName(dropIndex[2]) && !lockTimeout) flag("lock_timeout", s);
      continue;
    }
    const write = s.match(new RegExp(String.raw`^(?:update|delete from) (?:only )?(${name})(?: (?:as )?\w+)?(?: set .*)?$`));
    if (write && hot(write[1]) && !/\bwhere\b/.test(s)) flag("backfill", s);
  }
  return found;
}

describe("migrations do not hold strong locks on the busy tables for long", () => {
  const files = readdirSync(dir).filter((file) => file.endsWith(".sql")).sort();

  it("finds the migrations", () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it("no migration breaks a rule, beyond those landed before the check", () => {
    const seen = new Set<string>();
    const offenders: string[] = [];
    for (const file of files) {
      const version = file.slice(0, 14);
      for (const { rule, statement } of findings(readFileSync(join(dir, file), "utf8"))) {
        const key = `${version} ${rule}`;
        seen.add(key);
        if (!(key in landed)) offenders.push(`${file}: ${rule}: ${statement.slice(0, 160)}`);
      }
    }
    expect(offenders).toEqual([]);
    // Every exception still names something the rules find: a stale entry would hide nothing.
    expect(Object.keys(landed).filter((key) => !seen.has(key))).toEqual([]);
  });

  it("passes what holds the lock only for a moment", () => {
    const fine = [
      "create index concurrently if not exists generation_jobs_x_idx on public.generation_jobs (created_at);",
      "set lock_timeout = '5s';\ncreate index concurrently generation_jobs_x_idx on public.generation_jobs (created_at);",
      "set lock_timeout = '5s';\nalter table public.generation_jobs add constraint c check (image_count > 0) not valid;\nreset lock_timeout;",
      "alter table public.generation_jobs validate constraint c;",
      "set lock_timeout = '5s';\nalter table public.credit_ledger alter column created_at set default clock_timestamp();",
      "set lock_timeout = '5s';\nalter table private.job_pipeline add column x integer not null default 0;",
      "create table private.things (id int);\ncreate index things_idx on private.things (id);\nalter table private.things add constraint c check (id > 0);",
      "create index templates_x_idx on public.templates (updated_at);",
      "set lock_timeout = '5s';\ncreate table private.t (job_id uuid references public.generation_jobs (id));",
      "set lock_timeout = '5s';\nalter table private.late_results add constraint f foreign key (job_id) references public.generation_jobs (id) not valid;",
      "create table private.t (id int, parent int references private.t (id));",
      "create table private.t (template_id uuid references public.templates (id));",
      "reindex index concurrently public.generation_jobs_pkey;",
      "reindex table public.templates;",
      "update private.requests r set maybe_accepted = true where r.http_status = 502;",
      "comment on column public.generation_jobs.error_code is 'alter table public.generation_jobs add constraint x check (true)';",
      "create function private.f() returns void language sql as $$ update public.profiles set credits = 0 $$;",
      "-- create index x on public.profiles (plan);\nselect 1;",
      "do $$ begin update private.requests set maybe_accepted = true where http_status = 502; end $$;",
      "do $$ begin create index templates_x_idx on public.templates (updated_at); end $$;",
      "do $$ begin alter table public.generation_jobs validate constraint c; end $$;",
      "create function private.f() returns void language plpgsql as $f$ begin create index p_idx on public.profiles (plan); end $f$;",
      "do $$ begin raise notice 'create index p_idx on public.profiles (plan); update public.profiles set credits = 0'; end $$;",
    ];
    for (const sql of fine) expect([sql, findings(sql)]).toEqual([sql, []]);
  });

  it("refuses what holds it for a scan, a rewrite or behind a long transaction", () => {
    const refused: [string, string][] = [
      ["create index generation_jobs_x_idx on public.generation_jobs (created_at);", "concurrently"],
      ["create unique index if not exists p_idx on profiles (id);", "concurrently"],
      ["create table private.t (id int);\ncreate index concurrently j_idx on private.job_pipeline (created_at);", "concurrently"],
      ["set lock_timeout = '5s';\nalter table public.generation_jobs add constraint c check (image_count > 0);", "not valid"],
      ["set lock_timeout = '5s';\nalter table public.credit_ledger add constraint f foreign key (job_id) references public.generation_jobs (id);", "not valid"],
      ["set lock_timeout = '5s';\nalter table public.generation_jobs alter column image_count type bigint;", "rewrite"],
      ["set lock_timeout = '5s';\nalter table public.generation_jobs alter column completed_at set not null;", "rewrite"],
      ["set lock_timeout = '5s';\nalter table private.job_pipeline add column x timestamptz not null default clock_timestamp();", "rewrite"],
      ["update private.job_pipeline set polls = 0;", "backfill"],
      ["delete from private.requests;", "backfill"],
      ["alter table public.credit_ledger alter column created_at set default clock_timestamp();", "lock_timeout"],
      ["set lock_timeout = '5s';\nreset lock_timeout;\nalter table public.profiles add column x int;", "lock_timeout"],
      ["create trigger t after delete on private.requests for each row execute function private.f();", "lock_timeout"],
      ["alter policy \"Users can read their own jobs\" on public.generation_jobs using (true);", "lock_timeout"],
      ["drop index public.generation_jobs_style_idx;", "lock_timeout"],
      ["create table private.t (job_id uuid references public.generation_jobs (id));", "lock_timeout"],
      ["set lock_timeout = '5s';\nalter table private.late_results add constraint f foreign key (job_id) references public.generation_jobs (id);", "not valid"],
      ["alter table private.late_results add column request_id bigint references private.requests;", "lock_timeout"],
      ["reindex table public.generation_jobs;", "concurrently"],
      ["reindex index private.job_pipeline_pkey;", "concurrently"],
      ["create table private.t (id int);\nreindex index concurrently public.profiles_pkey;", "concurrently"],
      // Inside do blocks, which run in the migration's transaction like any other statement.
      ["do $$\nbegin\n  create index generation_jobs_x_idx on public.generation_jobs (created_at);\nend\n$$;", "concurrently"],
      [
        "do $migrate$\ndeclare\n  missing boolean;\nbegin\n  if not exists (select 1 from pg_indexes where indexname = 'profiles_plan_idx') then\n" +
        "    create index profiles_plan_idx on public.profiles (plan);\n  end if;\nend\n$migrate$ language plpgsql;",
        "concurrently",
      ],
      ["do language plpgsql $$ begin update private.job_pipeline set polls = 0; end $$;", "backfill"],
      ["-- Why: a note; with a semicolon.\ndo $$ begin delete from private.requests; end $$;", "backfill"],
      ["set lock_timeout = '5s';\ndo $$ begin if true then alter table public.generation_jobs add constraint c check (image_count > 0); end if; end $$;", "not valid"],
      [
        "do $$ begin perform 1; alter table public.credit_ledger alter column created_at set default clock_timestamp(); exception when others then null; end $$;",
        "lock_timeout",
      ],
      ["do $$ begin for i in 1..2 loop update public.generation_jobs set image_count = i; end loop; end $$;", "backfill"],
      [
        "set lock_timeout = '5s';\nalter table public.generation_jobs add constraint c check (image_count > 0) not valid;\n" +
        "do $$ begin alter table public.generation_jobs validate constraint c; end $$;",
        "validate",
      ],
      ["create function private.backfill() returns void language sql as $$ update public.profiles set credits = 0 $$;\nselect private.backfill();", "backfill"],
      [
        "create function private.index_jobs() returns void language plpgsql as $f$\nbegin\n  create index generation_jobs_x_idx on public.generation_jobs (created_at);\nend\n$f$;\n" +
        "do $$ begin perform private.index_jobs(); end $$;",
        "concurrently",
      ],
    ];
    for (const [sql, rule] of refused) expect([sql, findings(sql).map((f) => f.rule)]).toEqual([sql, [rule]]);
  });
});
