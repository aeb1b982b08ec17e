-- Why: a tick that throws on every run raised no alert. The reconcile and deadline ticks record
-- the errors of single answers and jobs (reconcile_error, deadline_error), and the retention tick
-- those of its parts (retention_error), but an error that aborts a whole run of any tick (a
-- setting or secret it cannot read, a row that makes every dispatch or poll batch fail, a
-- privilege lost on a table it writes) is rolled back with everything else: pg_cron records the
-- run as failed in cron.job_run_details and nothing else happens. Dispatch stopping so leaves
-- every job waiting until its deadline refund, housekeeping stopping leaves orphaned rate tokens
-- held, and private.active_alerts, where the runbook ("A job seems stuck", step 1) looks first,
-- shows nothing.
--
-- The kiln-account tick (every minute) now also reads each registered tick's latest finished runs
-- (among the newest 20,000 of pg_cron's history, an index range on runid) and raises tick_failing
-- for every tick whose last three finished runs all failed (or all it has, if fewer), naming it
-- with the count, since when, and the latest error as pg_cron recorded it. One failed run between
-- successes (a deadlock Postgres resolved, a restart) does not raise it. The first run that finds
-- no such tick clears it. The check runs in its own subtransaction: if it cannot read the history,
-- the rest of the account tick (secrets, schedules, the credit check) still runs. A failing
-- kiln-account cannot report itself; its failures show in step 4's query.

create function private.failing_ticks()
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with recent as (
    select d.jobid, d.status, d.return_message, d.start_time, d.runid
      from cron.job_run_details as d
     where d.runid >= (select coalesce(max(x.runid), 0) - 20000 from cron.job_run_details as x)
       and d.status in ('succeeded', 'failed')
  )
  select coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'failed_runs', last_runs.runs,
                                               'failing_since', last_runs.first_start,
                                               'last_error', left(btrim(last_runs.last_message), 300))
                            order by t.name), '[]'::jsonb)
    from private.ticks as t
    join cron.job as j on j.jobname = t.name and j.username = current_user
   cross join lateral (
     select count(*)::integer as runs,
            count(*) filter (where r.status = 'failed')::integer as failed,
            min(r.start_time) as first_start,
            (array_agg(r.return_message order by r.runid desc))[1] as last_message
       from (select * from recent where recent.jobid = j.jobid order by recent.runid desc limit 3) as r
   ) as last_runs
   where last_runs.runs > 0 and last_runs.failed = last_runs.runs
$$;
comment on function private.failing_ticks() is
  'API: Private. The registered ticks whose pg_cron job (the current user''s) failed its last three finished runs (or every one it has, if fewer), among the newest 20,000 runs of cron.job_run_details: [{name, failed_runs, failing_since, last_error}], ordered by name; [] when none.';

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
  'API: Private. Tick: alerts on missing Vault secrets (the dispatch ones, and the Storage API''s project_url and service_role_key), on pg_cron jobs that do not run a registered tick as the registry asks (missing, another schedule, command or database: tick_schedule_drift) and on ticks whose recent runs all failed (tick_failing), and sends the KIE credit check (low-balance alert, and the probe that lifts a pause raised only by 402).';

select private.pin_search_paths();
