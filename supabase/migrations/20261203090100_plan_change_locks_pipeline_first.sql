-- Why: a plan change deadlocked with an account deletion. set_plan updates the profile (its row
-- lock first) and then, through profiles_plan_moves_results_expiry, the pipeline rows of the
-- user's kept results. Since 20261202190000 the deletion takes the other order: a trigger before
-- the delete on auth.users locks the account's pipeline rows, then the cascade deletes the
-- profile. With a tick holding one of those rows for a moment (the retention sweep claiming it),
-- the deletion queued for it first and the plan change, already holding the profile, second; when
-- the tick committed Postgres aborted one of them with 40P01: the auth service's deleteUser, or
-- the billing call that changed the plan.
--
-- set_plan now locks the user's pipeline rows whose expiry it is about to move before it updates
-- the profile, in job id order and as one statement, like the account deletion and every tick
-- (pipeline row, job, profile). A direct update of profiles.plan still takes the profile first:
-- set_plan is the way to change a plan. Otherwise set_plan is as in 20261125090500.

create or replace function public.set_plan(user_id uuid, plan text)
returns public.profiles
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  updated public.profiles;
begin
  if not exists (select 1 from public.plans where id = set_plan.plan) then
    perform private.raise_error('KL025', 'unknown plan', format('plan %s does not exist', coalesce(set_plan.plan, 'null')),
      (select 'plans: ' || string_agg(id, ', ' order by rank) from public.plans));
  end if;
  -- The pipeline rows first, in the order the ticks and the account deletion take them.
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j where j.user_id = set_plan.user_id)
     and p.results_expire_at is not null
   order by p.job_id
     for update of p;
  update public.profiles p set plan = set_plan.plan where p.id = set_plan.user_id returning * into updated;
  if not found then
    perform private.raise_error('KL025', 'unknown user', format('no profile %s', set_plan.user_id), null);
  end if;
  return updated;
end
$$;
