-- Why: tick_failing (20261203212200) is raised by the kiln-account tick, so when kiln-account is
-- the tick that fails, nothing raises it: private.active_alerts, where the runbook ("A job seems
-- stuck", step 1) looks first, showed nothing, and the other alerts kiln-account raises and
-- clears (missing_secret, tick_schedule_drift, tick_failing for the other ticks, kie_low_balance)
-- silently went out of date. Only the failed runs in step 4's query showed it.
--
-- And the other way round: kiln-account's own run read its own last three finished runs, not the
-- one in progress, so the first run that succeeded after three failures named kiln-account
-- failing, and the alert stayed up until the next run, a minute after kiln-account had recovered.
--
-- private.active_alerts now computes, when it is read, whether kiln-account's (the tick that runs
-- private.account_tick()) own last three finished runs all failed, by the rule of failing_ticks,
-- now one function per tick (private.tick_failure: the newest runs of one job, read backwards
-- through the runid index until three finished ones are found, never past the newest 20,000), and
-- shows it under tick_failing, in one row with the ticks kiln-account stored before it failed.
-- kiln-account no longer stores itself. The view does not write.

create function private.tick_failure(tick text)
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with newest as (
    select coalesce(max(x.runid), 0) as runid from cron.job_run_details as x
  )
  select jsonb_build_object('name', t.name, 'failed_runs', last_runs.runs,
                            'failing_since', last_runs.first_start,
                            'last_error', left(btrim(last_runs.last_message), 300))
    from private.ticks as t
    -- A paused job is stopped on purpose (often because it failed): not an alert.
    join cron.job as j on j.jobname = t.name and j.username = current_user and j.active
   cross join newest
   cross join lateral (
     select count(*)::integer as runs,
            count(*) filter (where r.status = 'failed')::integer as failed,
            min(r.start_time) as first_start,
            (array_agg(r.return_message order by r.runid desc))[1] as last_message
       from (select d.runid, d.status, d.start_time, d.return_message
               from cron.job_run_details as d
              -- A closed runid range, read backwards through the primary key until three are found.
              where d.runid between newest.runid - 20000 and newest.runid
                and d.jobid = j.jobid
                and d.status in ('succeeded', 'failed')
              order by d.runid desc
              limit 3) as r
   ) as last_runs
   where t.name = tick
     and last_runs.runs > 0 and last_runs.failed = last_runs.runs
$$;
comment on function private.tick_failure(text) is
  'API: Private. For the registered tick named, when its active pg_cron job (the current user''s) failed its last three finished runs (or every one it has, if fewer) among the newest 20,000 runs of cron.job_run_details: {name, failed_runs, failing_since, last_error}; otherwise null.';
revoke all on function private.tick_failure(text) from public;

create or replace function private.failing_ticks()
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(jsonb_agg(f.failure order by t.name), '[]'::jsonb)
    from private.ticks as t
   cross join lateral (select private.tick_failure(t.name) as failure) as f
   where f.failure is not null
$$;
comment on function private.failing_ticks() is
  'API: Private. The registered ticks whose active pg_cron job (the current user''s; a paused job is left out) failed its last three finished runs (or every one it has, if fewer), among the newest 20,000 runs of cron.job_run_details (private.tick_failure): [{name, failed_runs, failing_since, last_error}], ordered by name; [] when none.';

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
  -- This tick's own runs are left out: the one in progress is not among them, so the first run
  -- that succeeds after failures would name itself; private.active_alerts computes them when read.
  begin
    failing := (select coalesce(jsonb_agg(f.tick order by f.tick ->> 'name'), '[]'::jsonb)
                  from jsonb_array_elements(private.failing_ticks()) as f (tick)
                 where not exists (select 1 from private.ticks as t
                                    where t.name = f.tick ->> 'name' and t.command = 'select private.account_tick()'));
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
  'API: Private. Tick: alerts on missing Vault secrets (the dispatch ones, and the Storage API''s project_url and service_role_key), on pg_cron jobs that do not run a registered tick as the registry asks (missing, another schedule, command or database: tick_schedule_drift) and on the other ticks whose recent runs all failed (tick_failing; its own failures are computed by private.active_alerts), records which tick jobs were paused, resumed or re-created (private.tick_jobs, for ticks_silent), and sends the KIE credit check (low-balance alert, and the probe that lifts a pause raised only by 402).';

create or replace view private.active_alerts with (security_invoker = true) as
  select a.key, a.message, a.pauses_dispatch, a.details, a.raised_at, a.last_seen_at, a.occurrences
    from private.alerts a
   where a.cleared_at is null
     and a.key <> 'tick_failing'
  union all
  -- tick_failing: the ticks kiln-account stored, and kiln-account itself, computed when read.
  select 'tick_failing',
         case when own.ticks = '[]'::jsonb then stored.message
              else format('pg_cron runs of %s keep failing: %s. It is the tick that raises and clears the stored '
                          'alerts, so they may be out of date until it runs again (computed when read). details.ticks '
                          'has the latest error; README "A job seems stuck", step 4, lists the failed runs.',
                          (select string_agg(o ->> 'name', ', ') from jsonb_array_elements(own.ticks) as o),
                          left(own.ticks -> 0 ->> 'last_error', 200))
                   || coalesce(' Stored before: ' || stored.message, '') end,
         false,
         coalesce(stored.details, '{}'::jsonb) || jsonb_build_object('ticks', merged.ticks),
         least(stored.raised_at, (select min((o ->> 'failing_since')::timestamptz) from jsonb_array_elements(own.ticks) as o)),
         greatest(stored.last_seen_at, case when own.ticks <> '[]'::jsonb then now() end),
         coalesce(stored.occurrences, 1)
    from (select coalesce(jsonb_agg(f.failure order by t.name), '[]'::jsonb) as ticks
            from private.ticks as t
           cross join lateral (select private.tick_failure(t.name) as failure) as f
           where t.command = 'select private.account_tick()' and f.failure is not null) as own
    left join private.alerts as stored on stored.key = 'tick_failing' and stored.cleared_at is null
   cross join lateral (
     -- kiln-account's own entry is the one computed now, never one stored earlier.
     select coalesce(jsonb_agg(m.tick order by m.tick ->> 'name'), '[]'::jsonb) as ticks
       from (select s.tick from jsonb_array_elements(coalesce(stored.details -> 'ticks', '[]'::jsonb)) as s (tick)
              where not exists (select 1 from private.ticks as t
                                 where t.name = s.tick ->> 'name' and t.command = 'select private.account_tick()')
             union all
             select o.tick from jsonb_array_elements(own.ticks) as o (tick)) as m
   ) as merged
   where merged.ticks <> '[]'::jsonb
  union all
  select 'ticks_silent',
         'Ticks have not run for three of their periods: pg_cron is not starting them (its scheduler stopped or cannot connect, or a run hung). Jobs wait meanwhile. See step 4 of "A job seems stuck".',
         false,
         jsonb_build_object('ticks', silent.ticks),
         (select min((t ->> 'silent_since')::timestamptz) from jsonb_array_elements(silent.ticks) as t),
         now(),
         1
    from (select private.silent_ticks() as ticks) as silent
   where silent.ticks <> '[]'::jsonb;
comment on view private.active_alerts is
  'API: Private. Operators: alerts not cleared yet (clear with private.clear_alert(key)); tick_failing also names kiln-account when its own last three finished runs failed, computed when read (private.tick_failure), since it is the tick that raises alerts; and ticks_silent, computed when read: registered ticks pg_cron has not started for three of their periods (private.silent_ticks).';

select private.pin_search_paths();

comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error, deadline_error, pg_net_stalled, retention_error, storage_purge_failing, tick_schedule_drift, tick_failing). Active while cleared_at is null; clear with private.clear_alert(key). Most are also cleared by the tick that finds the problem gone. private.active_alerts adds ticks_silent, computed when read (private.silent_ticks), and names kiln-account under tick_failing when its own runs keep failing, computed when read (private.tick_failure): it is the tick that raises tick_failing.';
