-- Why: ticks_silent counts a tick's silence from the later of its last start and the last change
-- of its job (20261203221000), but only private.schedule_ticks() and kiln-account runs record
-- changes in private.tick_jobs. A job resumed or re-created while kiln-account was itself paused
-- or failing counted from when kiln-account last saw it, and a job paused and resumed in that time
-- (never seen paused), kiln-account itself after a pause among them, from its last start before
-- the pause, even after kiln-account ran again (it found the job as it had last seen it): each was
-- named silent at once, however long ago that was, until its first run came. The alert cried wolf
-- right after an operator brought things back.
--
-- pg_cron records no time for a change of its job, but its tables place one: cron.alter_job,
-- cron.schedule and cron.unschedule write the job's row in cron.job, and every run pg_cron records
-- is a row of cron.job_run_details written by its own transaction. Transaction ids are handed out
-- in time order, so a job row whose version (xmin) is newer than a run's row was written after
-- that run's end (or start, for one not finished) was recorded. A job row newer than its tick's
-- private.tick_jobs row changed after that record; private.last_run_recorded_before() finds the
-- last run recorded before the job row was written, and silence counts from no earlier than its
-- end: private.silent_ticks reads it when the view is read, and private.observe_tick_jobs (every
-- kiln-account run) stores it as changed_at, so it holds once the record is rewritten. While
-- pg_cron starts any tick (kiln-dispatch every second) that is within a second or a minute of the
-- change; when pg_cron starts nothing at all, it is the last run before the scheduler stopped, and
-- the tick rightly shows as silent. The tables and functions read are the same on pg_cron 1.4 and
-- 1.5+, and nothing more is recorded. A job row older than its record changes nothing.
--
-- Transaction ids wrap after 2^31: a job row left unchanged for that many transactions (not
-- unusual on a busy database) may read as newer than anything, which is why a job row is only
-- placed among the runs when it is newer than its private.tick_jobs row, rewritten every
-- kiln-account minute. A run row that reads wrongly so only makes the time found earlier.
--
-- private.schedule_ticks() called cron.schedule for every tick, which writes the job's row even
-- when nothing differs; it now leaves a job that is already as wanted alone, so that only a
-- change writes it.

create function private.last_run_recorded_before(job_version xid)
returns timestamptz
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with newest as (
    select coalesce(max(x.runid), 0) as runid from cron.job_run_details as x
  )
  select max(coalesce(d.end_time, d.start_time))
    from cron.job_run_details as d, newest
   -- A closed runid range, so the planner reads it through the primary key.
   where d.runid between newest.runid - 50000 and newest.runid
     and age(d.xmin) > age(job_version)
$$;
comment on function private.last_run_recorded_before(xid) is
  'API: Private. The end (start, for a run not finished) of the last run among the newest 50,000 of cron.job_run_details whose row was written before the row version given (xmin of a cron.job row: when it was written); null when none. A job changed then changed after that moment.';
revoke all on function private.last_run_recorded_before(xid) from public;

create or replace function private.observe_tick_jobs(at timestamptz default now(), changed text[] default '{}')
returns void
language sql volatile
set search_path = pg_catalog, pg_temp
as $$
  -- The current user's jobs, as schedule_ticks makes them. A tick without a job keeps its row: a
  -- job made again later has another jobid, and counts as changed.
  insert into private.tick_jobs as r (name, jobid, active, seen_at, changed_at)
  select t.name, j.jobid, j.active, observe_tick_jobs.at,
         case when t.name = any(observe_tick_jobs.changed) then observe_tick_jobs.at
              -- Its row in cron.job was written after the record: changed after the last run
              -- pg_cron recorded before then (a pause and resume unseen among them).
              when age(j.xmin) < age(old.xmin)
              then greatest(old.seen_at, private.last_run_recorded_before(j.xmin))
              when old.jobid <> j.jobid or old.active <> j.active then observe_tick_jobs.at
              else old.changed_at end
    from private.ticks as t
    join cron.job as j on j.jobname = t.name and j.username = current_user
    left join private.tick_jobs as old on old.name = t.name
  on conflict on constraint tick_jobs_pkey do update
     set jobid = excluded.jobid,
         active = excluded.active,
         seen_at = excluded.seen_at,
         changed_at = excluded.changed_at
$$;
comment on function private.observe_tick_jobs(timestamptz, text[]) is
  'API: Private. Records what is seen of each registered tick''s pg_cron job in private.tick_jobs: jobid and active flag as of at; changed_at becomes at for the ticks named in changed (schedule_ticks installed or changed their jobs), for a job whose row in cron.job was written after its record the last run pg_cron recorded before it (private.last_run_recorded_before), and otherwise at for a job whose jobid or active flag differs from what was last seen.';

create or replace function private.schedule_ticks()
returns table (name text, schedule text)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  seconds_supported boolean := private.pg_cron_supports_seconds();
  tick record;
  previous record;
  changed text[] := '{}';
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
    select j.jobid, j.schedule, j.command, j.database into previous
      from cron.job as j where j.jobname = tick.name and j.username = current_user;
    -- A job already as wanted is left alone: cron.schedule would write its row again, which
    -- private.observe_tick_jobs would take for a change.
    if previous.jobid is null
       or (previous.schedule, previous.command, previous.database)
          is distinct from (schedule, tick.command, current_database()) then
      -- cron.schedule with a job name replaces that user's job of the same name (its schedule and
      -- command; before pg_cron 1.5 not its database, which is put back here).
      perform cron.schedule(tick.name, schedule, tick.command);
      perform cron.alter_job(j.jobid, database => current_database())
         from cron.job as j
        where j.jobname = tick.name and j.username = current_user and j.database <> current_database();
    end if;
    -- A job made or changed now is not expected to have started on its new schedule before now.
    if not exists (select 1 from cron.job as j
                    where j.jobname = tick.name and j.username = current_user
                      and (j.jobid, j.schedule, j.command, j.database)
                          is not distinct from (previous.jobid, previous.schedule, previous.command, previous.database)) then
      changed := changed || tick.name;
    end if;
    return next;
  end loop;
  perform private.observe_tick_jobs(now(), changed);
end
$$;
comment on function private.schedule_ticks() is
  'API: Private. Installs one pg_cron job per registered tick (idempotent: its schedule, command and database; a job already as wanted is not written again), removes kiln- jobs no longer registered, and records in private.tick_jobs the jobs it made or changed (ticks_silent counts from then). The trigger on private.ticks calls it after every change there.';

create or replace function private.silent_ticks(at timestamptz default now())
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
                                               'silent_since', counted.since + allowed.gap)
                            order by t.name), '[]'::jsonb)
    from private.ticks as t
    join cron.job as j on j.jobname = t.name and j.username = current_user and j.active
   cross join watched as w
   cross join lateral (select make_interval(secs => 3 * t.every_seconds + 120) as gap) as allowed
    left join last_starts as s on s.jobid = j.jobid
    left join private.tick_jobs as r on r.name = t.name
   cross join lateral (
     -- From the later of its last start (none in the history read: its oldest run) and the last
     -- change of its job. A job that differs from its record (resumed or re-created since) changed
     -- after the record was last seen; a job whose row in cron.job was written after its record
     -- (an unrecorded change, whatever kiln-account was doing) changed after every run pg_cron
     -- recorded before it was written.
     select greatest(coalesce(s.started, w.since),
                     case when r.jobid <> j.jobid or not r.active then r.seen_at else r.changed_at end,
                     case when age(j.xmin) < age(r.xmin)
                          then greatest(r.seen_at, private.last_run_recorded_before(j.xmin))
                     end) as since
   ) as counted
   -- With no run at all, since is null and nothing is silent.
   where w.since is not null
     and counted.since < at - allowed.gap
$$;
comment on function private.silent_ticks(timestamptz) is
  'API: Private. The registered ticks whose active pg_cron job (the current user''s) has started no run for three of its periods plus two minutes, counted from the later of its last start among the newest 50,000 runs of cron.job_run_details (a tick with none there: the oldest of them) and the last change of its job (installed, rescheduled, re-created, paused, resumed): seen in private.tick_jobs, or, for a job row in cron.job written after its private.tick_jobs row, the end of the last run pg_cron recorded before the job row was written (private.last_run_recorded_before): [{name, every_seconds, last_started_at, silent_since}], ordered by name; [] when none or when the history is empty.';

select private.pin_search_paths();

comment on column private.tick_jobs.changed_at is 'When the job was seen installed, rescheduled, re-created, paused or resumed (schedule_ticks: when it made the change; kiln-account: for a job whose row in cron.job was written after this record, the end of the last run pg_cron recorded before it, private.last_run_recorded_before; otherwise the run that first saw it); null: no change seen since the row was made. pg_cron is not expected to have started it before.';
