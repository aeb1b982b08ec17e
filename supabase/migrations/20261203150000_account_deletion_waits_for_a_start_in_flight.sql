-- Why: deleting an account deadlocked with a start of the same account's in flight. The trigger
-- before the delete on auth.users (on_auth_user_deleted) locks the account's unanswered requests
-- and pipeline rows that exist when it runs. A start (start_generation, or a retry) holds the
-- profile row for update while it inserts its job and that job's pipeline row, which the trigger
-- cannot see before the start commits. The cascade queued for the profile behind the start and,
-- once the start had committed, held the profile without the new job's pipeline row. A call
-- finishing the new job with a refund (cancel_generation while it waits, the deadline or
-- reconcile tick, a failure callback) takes that pipeline row, then the job, then waits for the
-- profile; the cascade, holding the profile, waited for the job: Postgres aborted one side with
-- 40P01 (the auth service's delete failed, or the cancel or the refund did).
--
-- The trigger now waits for a start in flight before the cascade begins. After locking the rows it
-- can see (as before: a retry holds a failed job's pipeline row when it locks the profile, so
-- those come first), it takes the profile row for key share: the one row lock a start's (and a
-- grant's) "for update" excludes, while a refund's "for no key update" and a plan change's update
-- go on beside it. It then locks the account's unanswered requests and pipeline rows again, in
-- the same order, which now include the job the start made; a start that comes later waits for
-- the delete and finds no profile. So the cascade again holds every pipeline row of the account
-- before the profile, and a call finishing the new job either finishes first (its refund passes
-- the key-share lock) or waits for the delete and finds the job gone.
--
-- One interleaving is left: a retry of that new job which took its pipeline row (after a tick
-- failed the job) before the trigger's second pass; it waits for the profile the trigger holds
-- while the trigger waits for the row. Before this change the same interleaving deadlocked too,
-- with the tick's refund already.

create or replace function private.lock_pipeline_of_deleted_user()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- The account's unanswered requests, then its pipeline rows (the ticks' order): those of the
  -- jobs committed so far.
  perform from private.requests r
   where r.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
     and r.resolved_at is null
   order by r.id
     for update of r;
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
   order by p.job_id
     for update of p;
  -- A start (or retry, or grant) in flight holds the profile for update: wait for it to commit,
  -- and keep later ones out until the delete commits. Key share does not wait for a refund.
  perform from public.profiles pr where pr.id = old.id for key share;
  -- Again, now with the job (request, pipeline row) a start that was in flight made.
  perform from private.requests r
   where r.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
     and r.resolved_at is null
   order by r.id
     for update of r;
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
   order by p.job_id
     for update of p;
  return old;
end
$$;
comment on function private.lock_pipeline_of_deleted_user() is
  'API: Private. Trigger before a delete on auth.users: locks the user''s unanswered request rows, then pipeline rows, in the ticks'' lock order (request row, pipeline row, job, profile); then waits for a start in flight (the profile, for key share) and locks the rows of the job it made, so the cascade cannot deadlock with a tick, a callback or a cancel.';
