-- Why: retry_generation read the job without looking at deleted_at, so a user could retry a job
-- they had deleted and bring its prompt back. A deleted job is gone for its owner (the app no
-- longer lists it): retrying it answers KL021 job not found, as for any id that is not theirs.

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
comment on function public.retry_generation(uuid) is
  'Starts a new job with the same parameters as one of my failed jobs (charged again, linked by retry_of). Asking twice returns the same retry. A deleted job cannot be retried (KL021).';

select private.pin_search_paths();
