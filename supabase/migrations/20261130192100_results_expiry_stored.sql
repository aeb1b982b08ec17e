-- Why: the retention tick still grew with history. Its index bound was the shortest retention of
-- any plan, so every job of a longer-retention owner aged between the shortest and its own
-- retention (a pro job 30 to 365 days old) was read again every minute. Each finished job's
-- expiry is now stored when it finishes (and recomputed when its owner's plan, or a plan's
-- retention, changes), beside the job in its private pipeline row: the app's row and its
-- Realtime stream stay as they were. A partial index over kept results makes the tick read only
-- the jobs that are due.

alter table private.job_pipeline add column results_expire_at timestamptz;
comment on column private.job_pipeline.results_expire_at is
  'When the finished job''s stored results expire (completed_at + its owner''s plan result_retention_days); null while it runs and once its results are removed. Kept by triggers on generation_jobs, profiles and plans.';

create index job_pipeline_results_expire_at_idx on private.job_pipeline (results_expire_at)
  where results_expire_at is not null;

-- The old scan's index: nothing reads it any more.
drop index public.generation_jobs_results_kept_idx;

create function private.results_expire_at(job public.generation_jobs)
returns timestamptz
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case when job.results_removed_at is null and job.status in ('completed', 'failed') and job.completed_at is not null then
    job.completed_at + (select pl.result_retention_days from public.profiles pr join public.plans pl on pl.id = pr.plan
                         where pr.id = job.user_id) * interval '1 day'
  end
$$;
comment on function private.results_expire_at(public.generation_jobs) is
  'API: Private. When a job''s stored results expire under its owner''s current plan; null while it runs or once they are removed.';

create function private.track_results_expiry()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  expires timestamptz := private.results_expire_at(new);
begin
  update private.job_pipeline p set results_expire_at = expires
   where p.job_id = new.id and p.results_expire_at is distinct from expires;
  return null;
end
$$;
comment on function private.track_results_expiry() is
  'API: Private. Trigger: keeps job_pipeline.results_expire_at when a job finishes or its results are removed.';

create trigger generation_jobs_track_results_expiry after update of status, completed_at, results_removed_at on public.generation_jobs
  for each row when (new.status is distinct from old.status or new.completed_at is distinct from old.completed_at
                     or new.results_removed_at is distinct from old.results_removed_at)
  execute function private.track_results_expiry();

-- A plan change moves the expiry of the user's kept results (longer or shorter retention).
create function private.plan_change_moves_expiry()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  update private.job_pipeline p set results_expire_at = private.results_expire_at(j)
    from public.generation_jobs j
   where j.user_id = new.id and p.job_id = j.id and p.results_expire_at is not null;
  return null;
end
$$;
comment on function private.plan_change_moves_expiry() is
  'API: Private. Trigger: a user''s plan changed (set_plan): their kept results expire by the new plan''s retention.';

create trigger profiles_plan_moves_results_expiry after update of plan on public.profiles
  for each row when (new.plan is distinct from old.plan) execute function private.plan_change_moves_expiry();

create function private.retention_change_moves_expiry()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  update private.job_pipeline p
     set results_expire_at = j.completed_at + new.result_retention_days * interval '1 day'
    from public.generation_jobs j
    join public.profiles pr on pr.id = j.user_id
   where pr.plan = new.id and p.job_id = j.id and p.results_expire_at is not null;
  return null;
end
$$;
comment on function private.retention_change_moves_expiry() is
  'API: Private. Trigger: a plan''s result_retention_days changed: the kept results of its users expire by the new retention.';

create trigger plans_retention_moves_results_expiry after update of result_retention_days on public.plans
  for each row when (new.result_retention_days is distinct from old.result_retention_days)
  execute function private.retention_change_moves_expiry();

-- Jobs finished before this migration.
update private.job_pipeline p set results_expire_at = private.results_expire_at(j)
  from public.generation_jobs j
 where p.job_id = j.id and j.results_removed_at is null and j.status in ('completed', 'failed');

create or replace function private.expire_results(at timestamptz default now(), max_jobs integer default 500)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  expired integer;
begin
  if max_jobs is null or max_jobs < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_jobs must be at least 1, got %s', max_jobs), null);
  end if;
  -- Only due jobs are read (job_pipeline_results_expire_at_idx); removing the results clears
  -- their expiry (track_results_expiry), so they leave the index.
  with due as (
    select p.job_id from private.job_pipeline p
     where p.results_expire_at <= at
     order by p.results_expire_at
     limit max_jobs
       for update of p skip locked
  ), removed as (
    update public.generation_jobs j
       set result_urls = '{}', results_removed_at = at
      from due
     where j.id = due.job_id and j.results_removed_at is null
    returning j.id, j.user_id
  )
  insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at)
  select removed.id, removed.user_id, 'expired', at, at from removed
  on conflict on constraint result_purges_pkey do nothing;
  get diagnostics expired = row_count;
  return expired;
end
$$;
comment on function private.expire_results(timestamptz, integer) is
  'API: Private. Tick: finished jobs whose stored expiry (job_pipeline.results_expire_at: completed_at + the owner''s plan result_retention_days) has passed lose their result_urls and get a purge row. Reads only due jobs. Returns how many.';

select private.pin_search_paths();
