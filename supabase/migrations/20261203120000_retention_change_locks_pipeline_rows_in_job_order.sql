-- Why: an operator changing a plan's result_retention_days moves the expiry of every kept result
-- of its users (retention_change_moves_expiry), and the update locked those pipeline rows in
-- whatever order its plan read them (newest job first through the user's jobs index, say). A plan
-- change (set_plan) and an account deletion lock a user's pipeline rows in job id order: with a
-- tick holding one of the rows, the two could each hold a row the other waited for (40P01 for the
-- operator's statement or for the billing call).
--
-- The trigger now locks the rows in job id order first, as one statement, then moves them.
-- Otherwise as in 20261130192100.

create or replace function private.retention_change_moves_expiry()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j join public.profiles pr on pr.id = j.user_id
                       where pr.plan = new.id)
     and p.results_expire_at is not null
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
