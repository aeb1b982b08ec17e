-- Why: a job the user deleted is gone from their jobs, and every call but one said so with "not
-- found" (retry_generation KL021, delete_generation KL050). cancel_generation answered KL023
-- ("can no longer be cancelled"), which tells an app to refresh a job it no longer lists; it now
-- answers KL021 like retry. delete_generation without a user in the token (the authenticated
-- role, no sub) answered KL050 "not found"; it now answers KL001 like the other calls.
-- Otherwise both functions are as in 20261202170000 (pipeline row locked first).

create or replace function public.cancel_generation(job_id uuid)
returns public.generation_jobs
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  job public.generation_jobs;
begin
  if auth.uid() is null then
    perform private.raise_error('KL001', 'not signed in', null, null);
  end if;
  -- The pipeline row first, in the order every pipeline transition takes its locks.
  perform from private.job_pipeline p
   where p.job_id = cancel_generation.job_id
     and exists (select from public.generation_jobs j where j.id = p.job_id and j.user_id = auth.uid())
     for update of p;
  -- Guarded transition: only a job still waiting to be sent can be cancelled, exactly once.
  update public.generation_jobs j
     set status = 'failed', stage = 'cancelled', error_code = 'cancelled',
         error_message = 'Cancelled before it was sent.', completed_at = now()
   where j.id = cancel_generation.job_id and j.user_id = auth.uid() and j.stage = 'queued'
  returning * into job;
  if not found then
    if exists (select 1 from public.generation_jobs j
                where j.id = cancel_generation.job_id and j.user_id = auth.uid() and j.deleted_at is null) then
      perform private.raise_error('KL023', 'this job can no longer be cancelled', 'it was already sent or has finished', null);
    end if;
    perform private.raise_error('KL021', 'job not found', format('no job %s of yours', cancel_generation.job_id), null);
  end if;
  perform private.refund_job(job.id, 'Refund: generation cancelled');
  return job;
end
$$;

create or replace function public.delete_generation(job_id uuid)
returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  job record;
  at timestamptz := pg_catalog.now();
begin
  if auth.uid() is null then
    perform private.raise_error('KL001', 'not signed in', null, null);
  end if;
  -- The pipeline row first, in the order every pipeline transition takes its locks (the job
  -- update below moves the row's results expiry).
  perform from private.job_pipeline p
   where p.job_id = delete_generation.job_id
     and exists (select from public.generation_jobs j where j.id = p.job_id and j.user_id = auth.uid())
     for update of p;
  select j.id, j.user_id, j.status into job
    from public.generation_jobs j
   where j.id = delete_generation.job_id and j.user_id = auth.uid() and j.deleted_at is null
     for update;
  if not found then
    perform private.raise_error('KL050', 'generation not found',
      pg_catalog.format('no generation %s of yours', delete_generation.job_id), null);
  end if;
  if job.status not in ('completed', 'failed') then
    perform private.raise_error('KL051', 'this generation has not finished',
      pg_catalog.format('its status is %s', job.status), 'Cancel it, or delete it once it has finished.');
  end if;
  update public.generation_jobs j
     set deleted_at = at, result_urls = '{}', results_removed_at = coalesce(j.results_removed_at, at)
   where j.id = job.id;
  insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at)
  values (job.id, job.user_id, 'deleted', at, at)
  on conflict on constraint result_purges_pkey do update
    set reason = 'deleted', next_attempt_at = excluded.next_attempt_at, done_at = null;
end
$$;
