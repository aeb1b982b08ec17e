-- Why: the tick_schedule_drift alert (20261203201000) compared only each registered tick's pg_cron
-- schedule with the registry's. A job whose command was changed by hand (cron.alter_job(command
-- => ...), say to 'select 1' while looking into a problem and never put back) runs on the right
-- schedule and does nothing: the tick it stands for never runs, and the check found nothing to
-- say. The same holds for a job moved to another database (cron.alter_job(database => ...)):
-- pg_cron runs it there, where there is no private.dispatch_tick(), and the local tick driver
-- skips it. Both are what the alert exists for, a job that does not run the tick the registry
-- asks for; both went unseen.
--
-- The check now also compares the job's command with the registry's and its database with the
-- current one; details.ticks has, besides name, schedule and wanted, the command and
-- wanted_command or the database and wanted_database of a job that differs in them. The fix is
-- still select private.schedule_ticks();: cron.schedule puts back the schedule and the command,
-- and schedule_ticks now also moves a job that runs in another database back to this one
-- (pg_cron's upsert keeps a job's database on releases before 1.5). A job paused with
-- active => false is not drift: pausing is how a tick is stopped on purpose, and schedule_ticks
-- never resumes one.

create or replace function private.tick_schedule_drift()
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  -- The current user's jobs, as schedule_ticks makes them (pg_cron's jobs are per user, and the
  -- ticks run as the user that scheduled them). A missing job has a null schedule.
  select coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'schedule', j.schedule, 'wanted', w.schedule)
                            || case when j.jobid is not null and j.command is distinct from t.command
                                    then jsonb_build_object('command', j.command, 'wanted_command', t.command)
                                    else '{}'::jsonb end
                            || case when j.jobid is not null and j.database is distinct from current_database()
                                    then jsonb_build_object('database', j.database, 'wanted_database', current_database())
                                    else '{}'::jsonb end
                            order by t.name), '[]'::jsonb)
    from private.ticks as t
   cross join lateral (select private.cron_schedule(t.every_seconds, private.pg_cron_supports_seconds()) as schedule) as w
    left join cron.job as j on j.jobname = t.name and j.username = current_user
   where j.schedule is distinct from w.schedule
      or j.command is distinct from t.command
      or j.database is distinct from current_database()
$$;
comment on function private.tick_schedule_drift() is
  'API: Private. The registered ticks whose pg_cron job (the current user''s) is missing, runs another schedule than private.ticks asks of the installed pg_cron, another command than the registry''s, or in another database: [{name, schedule, wanted[, command, wanted_command][, database, wanted_database]}], ordered by name; [] when all match.';

create or replace function private.schedule_ticks()
returns table (name text, schedule text)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  seconds_supported boolean := private.pg_cron_supports_seconds();
  tick record;
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
    -- cron.schedule with a job name replaces that user's job of the same name (its schedule and
    -- command; before pg_cron 1.5 not its database, which is put back here).
    perform cron.schedule(tick.name, schedule, tick.command);
    perform cron.alter_job(j.jobid, database => current_database())
       from cron.job as j
      where j.jobname = tick.name and j.username = current_user and j.database <> current_database();
    return next;
  end loop;
end
$$;
comment on function private.schedule_ticks() is
  'API: Private. Installs one pg_cron job per registered tick (idempotent: its schedule, command and database) and removes kiln- jobs no longer registered. The trigger on private.ticks calls it after every change there.';

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

  return private.send_credit_check(at);
end
$$;
comment on function private.account_tick(timestamptz) is
  'API: Private. Tick: alerts on missing Vault secrets (the dispatch ones, and the Storage API''s project_url and service_role_key) and on pg_cron jobs that do not run a registered tick as the registry asks (missing, another schedule, command or database: tick_schedule_drift), and sends the KIE credit check (low-balance alert, and the probe that lifts a pause raised only by 402).';

select private.pin_search_paths();
