-- Why: the pipeline's periodic work (dispatch, reconcile, poll, deadlines, housekeeping) runs as
-- pg_cron jobs, each calling one private function at its own cadence. One registry says which
-- ticks exist and how often they run; the pg_cron schedules are derived from it, and the local
-- stack's tick driver reads the same rows, so every tick runs at its intended cadence everywhere.
-- pg_cron 1.5+ (hosted Supabase has 1.6) accepts 'N seconds' schedules; older versions only
-- minute schedules, so a sub-minute tick is then scheduled every minute. The capability is
-- detected from the installed extension, never from where the migration runs.

create table private.ticks (
  name text primary key
    constraint ticks_name_kebab_case check (name ~ '^kiln-[a-z0-9]+(-[a-z0-9]+)*$'),
  every_seconds integer not null
    constraint ticks_every_seconds_schedulable check (
      every_seconds between 1 and 59
      or (every_seconds % 60 = 0 and 3600 % every_seconds = 0)
      or (every_seconds % 3600 = 0 and 86400 % every_seconds = 0)
    ),
  command text not null
    constraint ticks_command_calls_one_private_function check (command ~ '^select private\.[a-z_][a-z0-9_]*\(\)$'),
  description text not null constraint ticks_description_not_blank check (btrim(description) <> '')
);
comment on table private.ticks is
  'API: Private. The registry of periodic ticks: pg_cron jobs are derived from it by private.schedule_ticks(), and the local tick driver runs the same rows.';
comment on column private.ticks.name is 'The pg_cron job name (kebab-case, prefixed kiln-).';
comment on column private.ticks.every_seconds is 'Intended cadence: 1-59 seconds, a divisor of an hour in whole minutes, or a divisor of a day in whole hours.';
comment on column private.ticks.command is 'The one statement the job runs: select private.<function>().';
comment on column private.ticks.description is 'What the tick does.';

alter table private.ticks enable row level security;
revoke all on private.ticks from public;

create function private.pg_cron_supports_seconds()
returns boolean
language sql stable
set search_path = ''
as $$
  -- 'N seconds' schedules arrived in pg_cron 1.5; extversion looks like '1.6' or '1.4-1'.
  select coalesce(
    (select string_to_array(split_part(e.extversion, '-', 1), '.')::int[] >= '{1,5}'::int[]
       from pg_catalog.pg_extension as e where e.extname = 'pg_cron'),
    false)
$$;
comment on function private.pg_cron_supports_seconds() is
  'API: Private. True when the installed pg_cron accepts ''N seconds'' schedules (1.5 and later).';

create function private.cron_schedule(every_seconds integer, seconds_supported boolean)
returns text
language sql immutable
set search_path = ''
as $$
  select case
    when every_seconds < 60 and seconds_supported then every_seconds || ' seconds'
    when every_seconds < 60 or every_seconds = 60 then '* * * * *'
    when every_seconds < 3600 then '*/' || every_seconds / 60 || ' * * * *'
    when every_seconds = 3600 then '0 * * * *'
    when every_seconds < 86400 then '0 */' || every_seconds / 3600 || ' * * *'
    else '0 0 * * *'
  end
$$;
comment on function private.cron_schedule(integer, boolean) is
  'API: Private. The pg_cron schedule for a cadence in seconds: ''N seconds'' where supported, otherwise every minute for sub-minute ticks.';

create function private.schedule_ticks()
returns table (name text, schedule text)
language plpgsql volatile
set search_path = ''
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
    -- cron.schedule with a job name replaces that user's job of the same name.
    perform cron.schedule(tick.name, schedule, tick.command);
    return next;
  end loop;
end
$$;
comment on function private.schedule_ticks() is
  'API: Private. Installs one pg_cron job per registered tick (idempotent) and removes kiln- jobs no longer registered. Migrations call it after changing private.ticks.';
