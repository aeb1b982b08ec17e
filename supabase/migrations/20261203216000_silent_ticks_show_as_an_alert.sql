-- Why: every alert is raised by a tick (tick_failing and tick_schedule_drift by kiln-account,
-- pg_net_stalled by reconcile), so when pg_cron stops running the ticks (its scheduler stopped or
-- unable to open connections, a tick hung on a lock so pg_cron never starts its next run, every
-- job paused by a careless `cron.alter_job`) nothing raises anything: private.active_alerts, where
-- the runbook ("A job seems stuck", step 1) looks first, shows nothing while jobs pile up.
--
-- The view now computes one alert itself, when it is read, from pg_cron's own history:
-- ticks_silent names each registered tick whose active pg_cron job has not started a run for
-- three of its periods plus two minutes (so pg_cron 1.4 running sub-minute ticks once a minute,
-- without the local tick driver, is not silent). Runs are read among the newest 50,000 runids (an
-- index range on the primary key); a tick with no run among them counts from the oldest run
-- there. An empty history says nothing (a fresh deploy before pg_cron's first run), and a paused
-- job is a decision, not an alert (see "Operator surface").

create function private.silent_ticks(at timestamptz default now())
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with newest as (
    select coalesce(max(x.runid), 0) as runid from cron.job_run_details as x
  ),
  recent as (
    -- A closed runid range, so the planner reads it through the primary key.
    select d.jobid, d.start_time
      from cron.job_run_details as d, newest
     where d.runid between newest.runid - 50000 and newest.runid
  ),
  last_starts as (
    select recent.jobid, max(recent.start_time) as started from recent group by recent.jobid
  ),
  watched as (
    select min(recent.start_time) as since from recent
  )
  select coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'every_seconds', t.every_seconds,
                                               'last_started_at', s.started,
                                               'silent_since', coalesce(s.started, w.since) + allowed.gap)
                            order by t.name), '[]'::jsonb)
    from private.ticks as t
    join cron.job as j on j.jobname = t.name and j.username = current_user and j.active
   cross join watched as w
   cross join lateral (select make_interval(secs => 3 * t.every_seconds + 120) as gap) as allowed
    left join last_starts as s on s.jobid = j.jobid
   -- With no run at all, since is null and nothing is silent.
   where coalesce(s.started, w.since) < at - allowed.gap
$$;
comment on function private.silent_ticks(timestamptz) is
  'API: Private. The registered ticks whose active pg_cron job (the current user''s) has started no run for three of its periods plus two minutes, read among the newest 50,000 runs of cron.job_run_details (a tick with none there counts from the oldest of them): [{name, every_seconds, last_started_at, silent_since}], ordered by name; [] when none or when the history is empty.';
revoke all on function private.silent_ticks(timestamptz) from public;

create or replace view private.active_alerts with (security_invoker = true) as
  select a.key, a.message, a.pauses_dispatch, a.details, a.raised_at, a.last_seen_at, a.occurrences
    from private.alerts a
   where a.cleared_at is null
  union all
  select 'ticks_silent',
         'Ticks have not run for three of their periods: pg_cron is not starting them (its scheduler stopped or cannot connect, or a run hung). Jobs wait meanwhile. See step 4 of "A job seems stuck".',
         false,
         jsonb_build_object('ticks', silent.ticks),
         (select min((t ->> 'silent_since')::timestamptz) from jsonb_array_elements(silent.ticks) as t),
         now(),
         1
    from (select private.silent_ticks() as ticks) as silent
   where silent.ticks <> '[]'::jsonb;
comment on view private.active_alerts is
  'API: Private. Operators: alerts not cleared yet (clear with private.clear_alert(key)), and ticks_silent, computed when read: registered ticks pg_cron has not started for three of their periods (private.silent_ticks).';

select private.pin_search_paths();
