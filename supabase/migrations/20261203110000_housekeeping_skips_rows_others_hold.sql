-- Why: the housekeeping tick deletes the request log and late results past their retention in
-- two statements, all old requests first, then all old late results. An account deletion's
-- cascade deletes the same tables job by job (one job's late results, then the next job's
-- requests), so the two could each hold a row the other waited for: a deadlock (40P01) that
-- aborted either the deletion or the whole housekeeping run.
--
-- Housekeeping now deletes only rows no other transaction holds (FOR UPDATE SKIP LOCKED): a row
-- that a deletion (or anything else) has locked is left for the next run, a minute later, and
-- housekeeping never waits for one. Otherwise as in 20261201110000.

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
  log_before timestamptz := at - make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision);
begin
  delete from net._http_response h
   where h.created < at - make_interval(secs => private.setting_number('housekeeping.net_response_retention_seconds')::double precision);
  get diagnostics responses = row_count;
  delete from cron.job_run_details d
   where d.end_time < at - make_interval(secs => private.setting_number('housekeeping.cron_history_retention_seconds')::double precision);
  get diagnostics cron_runs = row_count;
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
  'API: Private. Tick: deletes net._http_response, cron.job_run_details, resolved private.requests and late results past their retention settings (skipping rows another transaction holds, left for the next run), and frees orphaned rate tokens.';
