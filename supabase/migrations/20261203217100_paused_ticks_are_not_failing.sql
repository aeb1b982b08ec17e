-- Why: private.failing_ticks (20261203212200) read every registered tick's pg_cron job, paused or
-- not. A tick an operator pauses with cron.alter_job(active => false) is stopped on purpose, and a
-- tick that keeps failing is the usual reason to pause one: its last three runs stay failed for
-- good, so kiln-account raised tick_failing for it every minute, and private.clear_alert could not
-- make it stay cleared short of resuming the failing tick. tick_schedule_drift and ticks_silent
-- already leave paused jobs out ("a decision, not an alert").
--
-- failing_ticks now reads active jobs only; a resumed tick whose last runs failed is named again
-- until it succeeds. Otherwise as in 20261203212200.

create or replace function private.failing_ticks()
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
    -- A paused job is stopped on purpose (often because it failed): not an alert.
    join cron.job as j on j.jobname = t.name and j.username = current_user and j.active
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
  'API: Private. The registered ticks whose active pg_cron job (the current user''s; a paused job is left out) failed its last three finished runs (or every one it has, if fewer), among the newest 20,000 runs of cron.job_run_details: [{name, failed_runs, failing_since, last_error}], ordered by name; [] when none.';
