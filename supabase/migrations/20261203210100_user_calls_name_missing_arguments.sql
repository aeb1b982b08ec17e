-- Why: a user call sent without its argument (an app bug: PostgREST passes {"job_id": null} as
-- SQL null) was refused with the right code but a detail with a blank where the value goes:
-- cancel_generation and retry_generation answered KL021 "no job  of yours", delete_generation
-- KL050 "no generation  of yours", recent_prompts KL025 "got ". The detail now says what is
-- missing ("no job id was given", "got no limit"); the codes and messages are unchanged, and
-- nothing is read or locked for a missing id. Otherwise cancel_generation and delete_generation
-- are as in 20261203080100, retry_generation as in 20261203090200 and recent_prompts as in
-- 20261201150200.

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
  -- A call without its id (PostgREST passes a JSON null as SQL null) finds nothing; say so
  -- rather than name an empty id.
  if cancel_generation.job_id is null then
    perform private.raise_error('KL021', 'job not found', 'no job id was given', null);
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
  -- A call without its id (PostgREST passes a JSON null as SQL null) finds nothing; say so
  -- rather than name an empty id.
  if delete_generation.job_id is null then
    perform private.raise_error('KL050', 'generation not found', 'no job id was given', null);
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
  -- A call without its id (PostgREST passes a JSON null as SQL null) finds nothing; say so
  -- rather than name an empty id.
  if retry_generation.job_id is null then
    perform private.raise_error('KL021', 'job not found', 'no job id was given', null);
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

create or replace function public.recent_prompts("limit" integer default 20)
returns table (prompt text, style text, quality text, aspect_ratio text, last_used_at timestamptz)
language plpgsql stable
set search_path = ''
as $$
begin
  if auth.uid() is null then
    raise exception using errcode = 'KL001', message = 'not signed in', hint = 'Sign in first.';
  end if;
  if "limit" is null or "limit" not between 1 and 100 then
    raise exception using errcode = 'KL025', message = 'limit must be between 1 and 100',
      detail = case when "limit" is null then 'got no limit' else format('got %s', "limit") end;
  end if;
  return query
    select latest.prompt, latest.style, latest.quality, latest.aspect_ratio, latest.created_at
      from (select distinct on (recent.prompt) recent.*
              from (select j.request ->> 'prompt' as prompt, j.style, j.quality, j.aspect_ratio, j.created_at
                      from public.generation_jobs j
                     where j.user_id = auth.uid() and j.mode = 'text-to-image' and j.deleted_at is null
                     order by j.created_at desc
                     limit 1000) recent
             order by recent.prompt, recent.created_at desc) latest
     order by latest.created_at desc
     limit "limit";
end
$$;

select private.pin_search_paths();
