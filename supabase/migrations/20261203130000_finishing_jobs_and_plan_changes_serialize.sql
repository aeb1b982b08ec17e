-- Why: a job that finished while its owner's plan changed kept its results for the old plan's
-- retention. The expiry is stored when a job finishes (track_results_expiry reads the owner's
-- plan then), and a plan change moves only the expiry already stored (plan_change_moves_expiry,
-- over the rows set_plan locked: those with an expiry). With the two at the same time, the job's
-- transition read the plan before the change committed, and the change, which had not seen the
-- job finished, moved nothing: a user upgraded to pro while a generation completed lost its images
-- after 30 days instead of 365 (and a downgrade kept them longer than the new plan allows). The
-- same held for an operator's change of a plan's result_retention_days, and for a user moved onto
-- a plan while that plan's retention changed.
--
-- Every transition that finishes a job locks its pipeline row first. So:
-- * set_plan now also locks the user's unfinished pipeline rows (with the kept ones, in job id
--   order, as before): a job finishing at the same time either finished first, and the change
--   moves its new expiry, or waits for the change and reads the new plan. Before that it
--   share-locks the new plan's row, so a change of that plan's retention and the move onto it
--   happen one after the other (the retention change takes that row first, then pipeline rows).
-- * a change of a plan's retention locks its users' unfinished pipeline rows too.
-- The lock order stays the one every pipeline transition takes: plan row, pipeline rows in job id
-- order, job, profile. Otherwise both functions are as in 20261203090100 and 20261203120000.

create or replace function public.set_plan(user_id uuid, plan text)
returns public.profiles
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  updated public.profiles;
begin
  -- The plan's row is held (shared) to commit: its retention cannot change under this move.
  perform from public.plans pl where pl.id = set_plan.plan for share;
  if not found then
    perform private.raise_error('KL025', 'unknown plan', format('plan %s does not exist', coalesce(set_plan.plan, 'null')),
      (select 'plans: ' || string_agg(id, ', ' order by rank) from public.plans));
  end if;
  -- The pipeline rows first, in the order the ticks and the account deletion take them: those
  -- whose expiry this moves, and those of jobs still running, which may finish (and store an
  -- expiry from the plan) while this runs.
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j where j.user_id = set_plan.user_id)
     and (p.results_expire_at is not null or p.stage not in ('completed', 'failed'))
   order by p.job_id
     for update of p;
  update public.profiles p set plan = set_plan.plan where p.id = set_plan.user_id returning * into updated;
  if not found then
    perform private.raise_error('KL025', 'unknown user', format('no profile %s', set_plan.user_id), null);
  end if;
  return updated;
end
$$;

create or replace function private.retention_change_moves_expiry()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  -- The kept results this moves, and the jobs still running, which may finish (and store an
  -- expiry from this plan) while this runs.
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j join public.profiles pr on pr.id = j.user_id
                       where pr.plan = new.id)
     and (p.results_expire_at is not null or p.stage not in ('completed', 'failed'))
   order by p.job_id
     for update of p;
  update private.job_pipeline p
     set results_expire_at = j.completed_at + new.result_retention_days * interval '1 day'
    from public.generation_jobs j
    join public.profiles pr on pr.id = j.user_id
   where pr.plan = new.id and p.job_id = j.id and p.results_expire_at is not null;
  return null;
end
$$;
