-- Why: the pg_cron schedules are derived from private.ticks by private.schedule_ticks(), for the
-- pg_cron installed at that moment: on pg_cron older than 1.5 a sub-minute tick is scheduled once
-- a minute. When the platform later upgrades pg_cron to a release with 'N seconds' schedules,
-- nothing runs schedule_ticks again, so dispatch, reconcile and polling stay at one run a minute
-- (jobs go out 60 times slower) and nothing says so. The same holds for a schedule changed by
-- hand with cron.alter_job, or a job unscheduled by hand.
--
-- The kiln-account tick (every minute) now compares each registered tick's pg_cron job with the
-- schedule the registry asks of the installed pg_cron, and raises the tick_schedule_drift alert
-- naming every tick that differs, what pg_cron has and what it needs, and the fix
-- (select private.schedule_ticks(); as the project owner). The first run that finds them equal
-- clears it.
--
-- It alerts and does not reschedule. The tick runs as the jobs' owner, so cron.alter_job would be
-- allowed, but rewriting schedules every minute would also undo any schedule set on purpose, and
-- the one case that matters most, 'N seconds' after an upgrade, cannot run on a pg_cron that
-- lacks it, so it would ship untried.

create function private.tick_schedule_drift()
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  -- The current user's jobs, as schedule_ticks makes them (pg_cron's jobs are per user, and the
  -- ticks run as the user that scheduled them). A missing job has a null schedule.
  select coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'schedule', j.schedule, 'wanted', w.schedule)
                            order by t.name), '[]'::jsonb)
    from private.ticks as t
   cross join lateral (select private.cron_schedule(t.every_seconds, private.pg_cron_supports_seconds()) as schedule) as w
    left join cron.job as j on j.jobname = t.name and j.username = current_user
   where j.schedule is distinct from w.schedule
$$;
comment on function private.tick_schedule_drift() is
  'API: Private. The registered ticks whose pg_cron job (the current user''s) is missing or runs another schedule than private.ticks asks of the installed pg_cron: [{name, schedule, wanted}], ordered by name; [] when all match.';

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
      format('pg_cron runs %s on other schedules than private.ticks asks of pg_cron %s (details.ticks: the schedule '
             'pg_cron has, null for no job, and the one wanted; after a pg_cron upgrade, sub-minute ticks still run '
             'once a minute). Run select private.schedule_ticks(); as the project owner.',
             (select string_agg(d ->> 'name', ', ') from jsonb_array_elements(drift) as d), cron_version),
      false,
      jsonb_build_object('ticks', drift, 'pg_cron_version', cron_version),
      at);
  else
    update private.alerts a set cleared_at = account_tick.at where a.key = 'tick_schedule_drift' and a.cleared_at is null;
  end if;

  return private.send_credit_check(at);
end
$$;
comment on function private.account_tick(timestamptz) is
  'API: Private. Tick: alerts on missing Vault secrets (the dispatch ones, and the Storage API''s project_url and service_role_key) and on pg_cron jobs whose schedule differs from the tick registry''s (tick_schedule_drift), and sends the KIE credit check (low-balance alert, and the probe that lifts a pause raised only by 402).';

select private.pin_search_paths();
