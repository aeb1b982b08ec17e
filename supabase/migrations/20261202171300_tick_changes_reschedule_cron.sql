-- Why: the README tells operators that the ticks' cadences are the rows of private.ticks, but a
-- change there reached pg_cron only when private.schedule_ticks() ran (in two migrations): the
-- local tick driver, which reads the table, followed the new cadence while a hosted project kept
-- the old schedule. Any change to private.ticks now reschedules the kiln jobs, as the project
-- owner (schedule_ticks schedules and unschedules the current user's jobs, so it must not run as
-- whoever edited the row).

create function private.reschedule_ticks()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform private.schedule_ticks();
  return null;
end
$$;
comment on function private.reschedule_ticks() is
  'API: Private. Trigger: any change to private.ticks reschedules the kiln pg_cron jobs (private.schedule_ticks, as the owner).';
revoke all on function private.reschedule_ticks() from public;

create trigger ticks_reschedule_cron
  after insert or update or delete on private.ticks
  for each statement execute function private.reschedule_ticks();
comment on function private.schedule_ticks() is
  'API: Private. Installs one pg_cron job per registered tick (idempotent) and removes kiln- jobs no longer registered. The trigger on private.ticks calls it after every change there.';
