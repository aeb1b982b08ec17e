-- Why: deleting an account (auth.admin.deleteUser, a delete on auth.users) deadlocked with a tick
-- finishing one of the account's jobs. The cascade locks the profile, then the jobs, then their
-- pipeline rows; every pipeline transition takes the pipeline row first, then the job, then (for
-- a refund) the profile. A deadline sweep timing out the job while the account was deleted made
-- Postgres abort one side after deadlock_timeout: the auth service's delete failed with 40P01, or
-- the sweep's refund did.
--
-- The account's pipeline rows are now locked before the cascade starts, by a trigger before the
-- delete on auth.users (the one row lock taken before them is that auth.users row, which no tick
-- touches). A tick holding one of them finishes first, refund included, and the delete then goes
-- ahead; a tick that comes later skips the rows (ticks claim with skip locked) or waits and then
-- finds them gone. The rows are taken in job id order, as one statement.

-- Security definer: the auth service deletes users and has no rights on private.
create function private.lock_pipeline_of_deleted_user()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
   order by p.job_id
     for update of p;
  return old;
end
$$;
comment on function private.lock_pipeline_of_deleted_user() is
  'API: Private. Trigger before a delete on auth.users: locks the user''s pipeline rows first, in the ticks'' lock order (pipeline row, job, profile), so the cascade cannot deadlock with a tick.';

create trigger on_auth_user_deleted before delete on auth.users
  for each row execute function private.lock_pipeline_of_deleted_user();
