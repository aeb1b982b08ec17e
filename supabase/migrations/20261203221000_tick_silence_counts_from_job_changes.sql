-- Why: ticks_silent (20261203216000) counts a tick's silence from its last start in pg_cron's
-- history, or, for a tick with no run there, from the oldest run of the history. That is wrong
-- right after the tick's job changed: a tick just registered (no run yet), a tick just given a
-- shorter period (its last start was on time for the old one), a job re-created (a new jobid
-- without runs) and a tick resumed with cron.alter_job(active => true) after a long pause (its
-- last start is as old as the pause) were all named silent at once, though their first run was
-- not due yet, and stayed so until it came: the alert cried wolf after exactly the changes an
-- operator makes while looking at it.
--
-- pg_cron records no time for any of these changes, so private.tick_jobs now records what was
-- seen of each registered tick's job: its jobid, whether it was active, when it was last seen,
-- and changed_at, when it was seen installed, rescheduled, re-created, paused or resumed.
-- private.schedule_ticks() records each job it installs or changes (schedule, command, database
-- or jobid) as changed then; the kiln-account tick looks at every job each minute and records a
-- job whose jobid or active flag differs from what was last seen as changed at that moment. A
-- tick's silence now counts from the later of its last start and changed_at. The view does not
-- write: a job that differs from its record when the view is read (resumed or re-created after
-- kiln-account last looked) counts from the moment it was last seen as recorded, which is at most
-- a minute before the change while kiln-account runs.
--
-- What cannot be seen: a pause and resume both between two kiln-account runs (harmless: the last
-- start is then at most about a minute old), and a job resumed or re-created while kiln-account
-- was itself paused or failing, which counts from when kiln-account last saw it, so it may be
-- named silent until its first run or until kiln-account runs again (kiln-account itself, resumed
-- after a pause, until its own first run, within a minute). An empty history still says nothing
-- (pg_cron with cron.log_run off records no run at all).

create table private.tick_jobs (
  name text not null
    constraint tick_jobs_pkey primary key
    constraint tick_jobs_name_fkey references private.ticks (name) on update cascade on delete cascade,
  jobid bigint not null,
  active boolean not null,
  seen_at timestamptz not null,
  changed_at timestamptz
);
comment on table private.tick_jobs is
  'API: Private. What was last seen of each registered tick''s pg_cron job (the owner''s), written by private.schedule_ticks() and every kiln-account run: private.silent_ticks counts a tick''s silence from the later of its last start and changed_at.';
comment on column private.tick_jobs.name is 'The tick (private.ticks.name, the pg_cron job name).';
comment on column private.tick_jobs.jobid is 'The pg_cron job last seen for the tick (a job re-created by hand has another).';
comment on column private.tick_jobs.active is 'Whether the job was active (not paused with cron.alter_job(active => false)) when last seen.';
comment on column private.tick_jobs.seen_at is 'When the job was last seen so; a job that differs from this row changed after it.';
comment on column private.tick_jobs.changed_at is 'When the job was seen installed, rescheduled, re-created, paused or resumed (schedule_ticks: when it made the change; kiln-account: the run that first saw it); null: no change seen since the row was made. pg_cron is not expected to have started it before.';
alter table private.tick_jobs enable row level security;
revoke all on private.tick_jobs from public;

create function private.observe_tick_jobs(at timestamptz default now(), changed text[] default '{}')
returns void
language sql volatile
set search_path = pg_catalog, pg_temp
as $$
  -- The current user's jobs, as schedule_ticks makes them. A tick without a job keeps its row: a
  -- job made again later has another jobid, and counts as changed.
  insert into private.tick_jobs as r (name, jobid, active, seen_at, changed_at)
  select t.name, j.jobid, j.active, observe_tick_jobs.at,
         case when t.name = any(observe_tick_jobs.changed) then observe_tick_jobs.at end
    from private.ticks as t
    join cron.job as j on j.jobname = t.name and j.username = current_user
  on conflict on constraint tick_jobs_pkey do update
     set jobid = excluded.jobid,
         active = excluded.active,
         seen_at = excluded.seen_at,
         changed_at = case when excluded.changed_at is not null then excluded.changed_at
                           when r.jobid <> excluded.jobid or r.active <> excluded.active then excluded.seen_at
                           else r.changed_at end
$$;
comment on function private.observe_tick_jobs(timestamptz, text[]) is
  'API: Private. Records what is seen of each registered tick''s pg_cron job in private.tick_jobs: jobid and active flag as of at; changed_at becomes at for the ticks named in changed (schedule_ticks installed or changed their jobs) and for a job whose jobid or active flag differs from what was last seen.';

-- What is there now: the jobs were installed long ago, as far as anyone knows.
revoke all on function private.observe_tick_jobs(timestamptz, text[]) from public;

select private.observe_tick_jobs(now());

create or replace function private.schedule_ticks()
returns table (name text, schedule text)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  seconds_supported boolean := private.pg_cron_supports_seconds();
  tick record;
  previous record;
  changed text[] := '{}';
begin
  -- Ticks removed from the registry stop running.
  perform cron.unschedule(j.jobname)
    from cron.job as j
   where j.jobname like 'kiln-%'
     and j.username = current_user
     and not exists (select 1 from private.ticks as t where t.name = j.jobname);

  for tick in select t.name, t.every_seconds, t.command from private.ticks as t order by t.name loop
    name := tick.name;
    schedule := private.cron_schedule(tick.every_seconds, seconds_supported);
    select j.jobid, j.schedule, j.command, j.database into previous
      from cron.job as j where j.jobname = tick.name and j.username = current_user;
    -- cron.schedule with a job name replaces that user's job of the same name (its schedule and
    -- command; before pg_cron 1.5 not its database, which is put back here).
    perform cron.schedule(tick.name, schedule, tick.command);
    perform cron.alter_job(j.jobid, database => current_database())
       from cron.job as j
      where j.jobname = tick.name and j.username = current_user and j.database <> current_database();
    -- A job made or changed now is not expected to have started on its new schedule before now.
    if not exists (select 1 from cron.job as j
                    where j.jobname = tick.name and j.username = current_user
                      and (j.jobid, j.schedule, j.command, j.database)
                          is not distinct from (previous.jobid, previous.schedule, previous.command, previous.database)) then
      changed := changed || tick.name;
    end if;
    return next;
  end loop;
  perform private.observe_tick_jobs(now(), changed);
end
$$;
comment on function private.schedule_ticks() is
  'API: Private. Installs one pg_cron job per registered tick (idempotent: its schedule, command and database), removes kiln- jobs no longer registered, and records in private.tick_jobs the jobs it made or changed (ticks_silent counts from then). The trigger on private.ticks calls it after every change there.';

create or replace function private.silent_ticks(at timestamptz default now())
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with newest as (
    select coalesce(max(x.runid), 0) as runid from cron.job_run_details as x
  ),
  recent as (
    -- A closed runid range, so the planner reads it through the primary key.
    select d.jobid, d.start_time
      from cron.job_run_details as d, newest
     where d.runid between newest.runid - 50000 and newest.runid
  ),
  last_starts as (
    select recent.jobid, max(recent.start_time) as started from recent group by recent.jobid
  ),
  watched as (
    select min(recent.start_time) as since from recent
  )
  select coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'every_seconds', t.every_seconds,
                                               'last_started_at', s.started,
                                               'silent_since', counted.since + allowed.gap)
                            order by t.name), '[]'::jsonb)
    from private.ticks as t
    join cron.job as j on j.jobname = t.name and j.username = current_user and j.active
   cross join watched as w
   cross join lateral (select make_interval(secs => 3 * t.every_seconds + 120) as gap) as allowed
    left join last_starts as s on s.jobid = j.jobid
    left join private.tick_jobs as r on r.name = t.name
   cross join lateral (
     -- From the later of its last start (none in the history read: its oldest run) and the last
     -- change of its job. A job that differs from its record (resumed or re-created since) changed
     -- after the record was last seen.
     select greatest(coalesce(s.started, w.since),
                     case when r.jobid <> j.jobid or not r.active then r.seen_at else r.changed_at end) as since
   ) as counted
   -- With no run at all, since is null and nothing is silent.
   where w.since is not null
     and counted.since < at - allowed.gap
$$;
comment on function private.silent_ticks(timestamptz) is
  'API: Private. The registered ticks whose active pg_cron job (the current user''s) has started no run for three of its periods plus two minutes, counted from the later of its last start among the newest 50,000 runs of cron.job_run_details (a tick with none there: the oldest of them) and the last change of its job seen in private.tick_jobs (installed, rescheduled, re-created, resumed): [{name, every_seconds, last_started_at, silent_since}], ordered by name; [] when none or when the history is empty.';

create or replace function private.account_tick(at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  missing text[] := array(select n from unnest(array['kie_api_key', 'functions_base_url', 'finalize_credential',
                                                     'project_url', 'service_role_key']) as n
                           where private.secret(n) is null);
  drift jsonb := private.tick_schedule_drift();
  cron_version text := (select e.extversion from pg_catalog.pg_extension as e where e.extname = 'pg_cron');
  failing jsonb;
  problem text;
begin
  if cardinality(missing) > 0 then
    perform private.raise_alert('missing_secret',
      format('Vault secrets missing: %s. %s See README "Secrets".', array_to_string(missing, ', '),
        case when missing && array['kie_api_key', 'functions_base_url', 'finalize_credential']
             then 'Jobs wait (and time out) until they are set.'
             else 'Storage deletes (expired results and uploads, deleted accounts) wait until they are set.' end),
      false, jsonb_build_object('secrets', missing), at);
  else
    update private.alerts a set cleared_at = account_tick.at where a.key = 'missing_secret' and a.cleared_at is null;
  end if;

  if jsonb_array_length(drift) > 0 then
    perform private.raise_alert('tick_schedule_drift',
      format('pg_cron runs %s otherwise than private.ticks asks of pg_cron %s (details.ticks: the schedule '
             'pg_cron has, null for no job, and the one wanted, and any command or database that differs; after a '
             'pg_cron upgrade, sub-minute ticks still run once a minute). Run select private.schedule_ticks(); as the '
             'project owner.',
             (select string_agg(d ->> 'name', ', ') from jsonb_array_elements(drift) as d), cron_version),
      false,
      jsonb_build_object('ticks', drift, 'pg_cron_version', cron_version),
      at);
  else
    update private.alerts a set cleared_at = account_tick.at where a.key = 'tick_schedule_drift' and a.cleared_at is null;
  end if;

  -- Which jobs were paused, resumed or re-created since the last run (ticks_silent counts from
  -- then). Its own subtransaction: the rest of the tick still runs.
  begin
    perform private.observe_tick_jobs(at);
  exception when others then
    get stacked diagnostics problem = message_text;
    raise warning 'the ticks'' pg_cron jobs could not be recorded: %', problem;
  end;

  -- Ticks whose every recent run failed. Its own subtransaction: the credit check still goes out.
  begin
    failing := private.failing_ticks();
    if jsonb_array_length(failing) > 0 then
      perform private.raise_alert('tick_failing',
        format('pg_cron runs of %s keep failing: %s. details.ticks has each one''s latest error; README "A job seems '
               'stuck", step 4, lists the failed runs.',
               (select string_agg(f ->> 'name', ', ') from jsonb_array_elements(failing) as f),
               left(failing -> 0 ->> 'last_error', 200)),
        false, jsonb_build_object('ticks', failing), at);
    else
      update private.alerts a set cleared_at = account_tick.at where a.key = 'tick_failing' and a.cleared_at is null;
    end if;
  exception when others then
    get stacked diagnostics problem = message_text;
    raise warning 'the failed runs of the ticks could not be read: %', problem;
  end;

  return private.send_credit_check(at);
end
$$;
comment on function private.account_tick(timestamptz) is
  'API: Private. Tick: alerts on missing Vault secrets (the dispatch ones, and the Storage API''s project_url and service_role_key), on pg_cron jobs that do not run a registered tick as the registry asks (missing, another schedule, command or database: tick_schedule_drift) and on ticks whose recent runs all failed (tick_failing), records which tick jobs were paused, resumed or re-created (private.tick_jobs, for ticks_silent), and sends the KIE credit check (low-balance alert, and the probe that lifts a pause raised only by 402).';

select private.pin_search_paths();
