-- Why: a retry deadlocked with an account deletion. retry_generation locked the failed job and
-- then (create_generation_job) the profile; the deletion's cascade deletes the profile and then
-- the jobs. With the profile's lock held for a moment by another transaction (a start, a grant,
-- a refund), the deletion queued for it first and the retry, already holding the job, second:
-- when the lock was released Postgres aborted the retry with 40P01 instead of answering KL021.
--
-- The retry now locks the failed job's pipeline row before the job, in the order every pipeline
-- transition, cancel_generation, delete_generation and the account deletion (which locks the
-- account's pipeline rows before the cascade) take their locks: pipeline row, job, profile.
-- Otherwise the function is as in 20261130192300.

create or replace function public.retry_generation(job_id uuid)
returns public.generation_jobs
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  original public.generation_jobs;
  retry public.generation_jobs;
begin
  if auth.uid() is null then
    perform private.raise_error('KL001', 'not signed in', null, 'Sign in before generating.');
  end if;
  -- The pipeline row first, in the order every pipeline transition takes its locks.
  perform from private.job_pipeline p
   where p.job_id = retry_generation.job_id
     and exists (select from public.generation_jobs j where j.id = p.job_id and j.user_id = auth.uid())
     for update of p;
  -- Locked so that concurrent retries of one job wait here and then return the same retry.
  select * into original from public.generation_jobs j
   where j.id = retry_generation.job_id and j.user_id = auth.uid() and j.deleted_at is null
     for update;
  if not found then
    perform private.raise_error('KL021', 'job not found', format('no job %s of yours', retry_generation.job_id), null);
  end if;
  if original.status <> 'failed' then
    perform private.raise_error('KL022', 'only failed jobs can be retried', format('job is %s', original.status), null);
  end if;
  -- One retry per failed job: asking again returns it.
  select * into retry from public.generation_jobs j where j.retry_of = original.id;
  if found then
    return retry;
  end if;
  return private.create_generation_job(original.user_id, original.request, null, original.id);
end
$$;
