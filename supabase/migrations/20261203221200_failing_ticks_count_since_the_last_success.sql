-- Why: tick_failing names a tick whose last three finished runs all failed, with failed_runs and
-- failing_since, but both were read from those three runs only: failed_runs was never more than 3,
-- and failing_since was the start of the third-to-last run. For a 1-second tick that had been
-- failing for an hour the alert said it had failed 3 times since three seconds ago, and the
-- tick_failing row private.active_alerts computes for kiln-account (20261203221100) took its
-- raised_at from it, so it always read "three minutes ago" however long kiln-account had failed.
--
-- private.tick_failure now finds the job's last success among the newest 20,000 runs (read
-- backwards through the runid index) and counts the failed runs after it: failed_runs is the
-- number of failures in a row, failing_since the start of the first of them, and the rule is the
-- same (three failures in a row, or every finished run there is when none succeeded). Runs older
-- than the newest 20,000 are not read, so a tick failing for longer counts from there.

create or replace function private.tick_failure(tick text)
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with newest as (
    select coalesce(max(x.runid), 0) as runid from cron.job_run_details as x
  )
  select jsonb_build_object('name', t.name, 'failed_runs', failures.runs,
                            'failing_since', failures.first_start,
                            'last_error', left(btrim(failures.last_message), 300))
    from private.ticks as t
    -- A paused job is stopped on purpose (often because it failed): not an alert.
    join cron.job as j on j.jobname = t.name and j.username = current_user and j.active
   cross join newest
   cross join lateral (
     -- Its last success: closed runid ranges, read backwards through the primary key.
     select max(s.runid) as runid
       from (select d.runid
               from cron.job_run_details as d
              where d.runid between newest.runid - 20000 and newest.runid
                and d.jobid = j.jobid
                and d.status = 'succeeded'
              order by d.runid desc
              limit 1) as s
   ) as last_success
   cross join lateral (
     select count(*)::integer as runs,
            min(d.start_time) as first_start,
            (array_agg(d.return_message order by d.runid desc))[1] as last_message
       from cron.job_run_details as d
      where d.runid between greatest(newest.runid - 20000, coalesce(last_success.runid + 1, 0)) and newest.runid
        and d.jobid = j.jobid
        and d.status = 'failed'
   ) as failures
   where t.name = tick
     -- Its last three finished runs failed, or, with no success among them, every one it has.
     and (failures.runs >= 3 or (last_success.runid is null and failures.runs > 0))
$$;
comment on function private.tick_failure(text) is
  'API: Private. For the registered tick named, when its active pg_cron job (the current user''s) failed its last three finished runs (or every one it has, if fewer) among the newest 20,000 runs of cron.job_run_details: {name, failed_runs (failures in a row since its last success there), failing_since (the first of them), last_error}; otherwise null.';
