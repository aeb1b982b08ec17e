-- Why: pg_cron marks the runs a server restart cut short as `failed`, with the return message
-- 'server restarted' and no end_time (MarkPendingRunsAsFailed sets only status and message), and
-- the purge only ever deleted runs that recorded their end: every restart left its cut-short runs
-- in cron.job_run_details for good. A handful a restart, but with no bound over the years, and
-- they sit at the old end where the purge reads.
--
-- A run marked failed without an end is over (pg_cron never writes to it again) and its age can
-- be read from its runid: runids come from one sequence in the order runs are recorded, so a run
-- whose runid is below that of a run that ended before the cutoff was recorded before that one
-- started, before the cutoff. Each purge now also deletes the failed runs without an end below the
-- newest runid it deleted as expired, read through the primary key. Runs still `starting` or
-- `running` stay (they may be in progress); a restart marks them failed and a later purge takes
-- them. Otherwise as in 20261203201100.

create or replace function private.purge_cron_history(before timestamptz, max_rows integer default 20000)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  lowest bigint;
  highest bigint;
  oldest bigint;
  newest_expired bigint;
  expired integer;
  abandoned integer;
begin
  -- The window: the max_rows smallest runids of runs that recorded their end, read from the
  -- primary key. Runs without an end_time are passed over (read, never counted): they would
  -- otherwise fill the window for good.
  select min(w.runid), max(w.runid) into lowest, highest
    from (select r.runid from cron.job_run_details r where r.end_time is not null order by r.runid limit max_rows) as w;
  -- A closed runid range, so even a generic plan reads it through the primary key.
  with gone as (
    delete from cron.job_run_details d
     where d.runid between lowest and highest
       and d.end_time < before
    returning d.runid
  )
  select count(*)::integer, max(gone.runid) into expired, newest_expired from gone;
  -- Runs a restart cut short, recorded before a run that expired: over, and older than the cutoff.
  -- A closed range again (from the oldest runid, the primary key's first entry).
  select min(r.runid) into oldest from cron.job_run_details r;
  delete from cron.job_run_details d
   where d.runid between oldest and newest_expired - 1
     and d.end_time is null
     and d.status = 'failed';
  get diagnostics abandoned = row_count;
  return expired + abandoned;
end
$$;
comment on function private.purge_cron_history(timestamptz, integer) is
  'API: Private. Deletes the cron.job_run_details rows that ended before `before` among the max_rows smallest runids of runs with an end_time (the oldest runs, read through the primary key; runs without an end_time take no place), and the runs a restart cut short (failed, no end_time) recorded before the newest of those; returns how many. Never a younger row, never a run that may still be in progress.';
