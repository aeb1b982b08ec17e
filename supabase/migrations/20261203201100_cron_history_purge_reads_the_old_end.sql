-- Why: with 1 s ticks cron.job_run_details holds about 1.9M rows at the 7-day retention
-- (housekeeping.cron_history_retention_seconds), and the housekeeping tick deleted the old ones
-- with `where end_time < at - make_interval(secs => private.setting_number(...))`: a full scan of
-- the table every 10 minutes (there is no index on end_time or start_time), and the cutoff
-- recomputed for every row (setting_number is stable, not constant, and reads private.settings
-- each time), to find the two thousand or so rows that expired since the last run. The table is
-- pg_cron's, owned by the platform's superuser: `postgres` may not add an index to it.
--
-- The purge now reads only the old end of the table, through its primary key: runid comes from a
-- sequence when pg_cron (or the local tick driver) starts recording a run, so the oldest runs
-- have the smallest runids. Each run takes the 20,000 smallest runids and deletes those of them
-- that ended before the cutoff (private.purge_cron_history): never a row younger than the
-- retention, and never more than 20,000 rows in one run (at 1 s ticks about 2,000 expire between
-- two runs, so a backlog shrinks by about 18,000 a run). A run that started long ago and ended
-- recently (runid and end_time out of step) stays until it is old enough; the expired rows after
-- it in the window go now. Runs without an end_time (cut short by a server restart, or still
-- running) stay, as before, and take no place in the window: it is the 20,000 smallest runids
-- among runs that recorded their end. Such runs gather at the old end (each restart leaves the
-- runs it cut short there for good), and a window that counted them would, once 20,000 had
-- gathered, hold nothing the purge may delete, run after run, while the table grew again.
--
-- Expired cron history is never locked by anyone (pg_cron writes a run's row only until it has
-- ended), so that delete needs no SKIP LOCKED; the request log and late results keep it. The
-- net._http_response cutoff is computed once too. Otherwise as in 20261203110000.

create function private.purge_cron_history(before timestamptz, max_rows integer default 20000)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  lowest bigint;
  highest bigint;
  purged integer;
begin
  -- The window: the max_rows smallest runids of runs that recorded their end, read from the
  -- primary key. Runs without an end_time are passed over (read, never counted): they would
  -- otherwise fill the window for good.
  select min(w.runid), max(w.runid) into lowest, highest
    from (select r.runid from cron.job_run_details r where r.end_time is not null order by r.runid limit max_rows) as w;
  -- A closed runid range, so even a generic plan reads it through the primary key.
  delete from cron.job_run_details d
   where d.runid between lowest and highest
     and d.end_time < before;
  get diagnostics purged = row_count;
  return purged;
end
$$;
comment on function private.purge_cron_history(timestamptz, integer) is
  'API: Private. Deletes the cron.job_run_details rows that ended before `before` among the max_rows smallest runids of runs with an end_time (the oldest runs, read through the primary key; runs without an end_time stay and take no place); returns how many. Never a younger row, never more than max_rows.';
revoke all on function private.purge_cron_history(timestamptz, integer) from public;

create or replace function private.housekeeping_tick(at timestamptz default now())
returns jsonb
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  responses integer;
  cron_runs integer;
  log_rows integer;
  late_rows integer;
  responses_before timestamptz := at - make_interval(secs => private.setting_number('housekeeping.net_response_retention_seconds')::double precision);
  cron_before timestamptz := at - make_interval(secs => private.setting_number('housekeeping.cron_history_retention_seconds')::double precision);
  log_before timestamptz := at - make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision);
begin
  delete from net._http_response h where h.created < responses_before;
  get diagnostics responses = row_count;
  cron_runs := private.purge_cron_history(cron_before);
  delete from private.requests q
   where q.id in (select o.id from private.requests o where o.resolved_at < log_before for update skip locked);
  get diagnostics log_rows = row_count;
  delete from private.late_results l
   where l.id in (select o.id from private.late_results o where o.received_at < log_before for update skip locked);
  get diagnostics late_rows = row_count;
  return jsonb_build_object('net_responses', responses, 'cron_runs', cron_runs, 'requests', log_rows, 'late_results', late_rows,
                            'orphaned_tokens', private.release_orphaned_tokens(at));
end
$$;
comment on function private.housekeeping_tick(timestamptz) is
  'API: Private. Tick: deletes net._http_response, cron.job_run_details (the oldest runs, at most 20,000 a run: private.purge_cron_history), resolved private.requests and late results past their retention settings (skipping request log and late result rows another transaction holds, left for the next run), and frees orphaned rate tokens.';

select private.pin_search_paths();
