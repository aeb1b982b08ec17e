-- Why: private.callback_complete (executable by kiln_callback, the callback function's login)
-- completed a job with whatever object paths it was given. Whoever held the kiln_callback password
-- could put another user's object (or another job's) into a job's result_urls. The Storage read
-- policy still kept that image unreadable to the job's owner, but a completed job must list only
-- the images of its own delivery.
--
-- A completion that would complete the job now is refused (KL041) unless every path lies in one
-- delivery folder generated-images/<owner>/<job_id>/<delivery>/ of that job, which is where the
-- callback function stores a delivery (private.delivery_folder computes exactly this folder). A
-- duplicate or a foreign task's delivery changes no job and is answered as before; its purge is
-- still recorded only for a folder of that job (private.discard_delivery).

create or replace function private.callback_complete(job_id uuid, attempt integer, task_id text, object_paths text[], at timestamptz default now())
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  before_stage text;
  owner uuid;
  wanted integer;
  folder text;
  gone_owner uuid;
begin
  -- Held until commit, so the stage read here is the one complete_job sees.
  select p.stage into before_stage from private.job_pipeline p where p.job_id = callback_complete.job_id for update;
  if not found then
    -- The job went with its account while the delivery was on its way (the callback checked it
    -- before downloading). Its images lie in the deleted account's folder, whose purge may be
    -- done by now: the delivery's folder gets a purge of its own, and the delivery is a duplicate.
    gone_owner := case when split_part(object_paths[1], '/', 2) ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                       then split_part(object_paths[1], '/', 2)::uuid end;
    if gone_owner is not null
       and not exists (select from public.generation_jobs j where j.id = callback_complete.job_id)
       and not exists (select from public.profiles pr where pr.id = gone_owner)
       and exists (select from private.storage_purges sp
                    where sp.reason = 'account_deleted' and sp.bucket_id = 'generated-images'
                      and sp.path = gone_owner::text || '/')
       and private.discard_delivery(job_id, gone_owner, object_paths, at) is not null then
      return 'duplicate';
    end if;
    -- Otherwise complete_job raises KL040 below.
  end if;
  select j.image_count, j.user_id into wanted, owner from public.generation_jobs j where j.id = callback_complete.job_id;
  if before_stage is not null and not private.is_job_task(job_id, attempt, task_id) then
    perform private.record_late_result(job_id, attempt, task_id, 'complete', 'unknown_task',
      jsonb_build_object('object_paths', to_jsonb(object_paths), 'stage', before_stage), at);
    perform private.discard_delivery(job_id, owner, object_paths, at);
    return 'unknown_task';
  end if;
  if cardinality(object_paths) > wanted then
    perform private.raise_error('KL041', 'invalid result',
      format('%s images for a job of %s', cardinality(object_paths), wanted), null);
  end if;
  if before_stage not in ('completed', 'failed') then
    -- The job completes now: only with the images of one delivery of its own, stored under
    -- generated-images/<owner>/<job_id>/<delivery>/. An empty list is complete_job's to refuse.
    folder := private.delivery_folder(owner, job_id, object_paths);
    if folder is null and cardinality(object_paths) > 0 then
      perform private.raise_error('KL041', 'invalid result',
        format('the images must all lie in one delivery folder generated-images/%s/%s/<delivery>/ of this job', owner, job_id), null);
    end if;
    -- A delivery whose folder is being purged cannot become the job's result.
    if exists (select from private.storage_purges sp
                where sp.bucket_id = 'generated-images' and sp.path = folder
                  and sp.reason = 'delivery_discarded' and sp.done_at is null) then
      perform private.raise_error('KL041', 'invalid result',
        format('the images in %s were discarded and are being deleted', folder), null);
    end if;
  end if;
  perform private.complete_job(job_id, attempt, task_id, object_paths, at);
  if before_stage in ('completed', 'failed') then
    perform private.discard_delivery(job_id, owner, object_paths, at);
    return 'duplicate';
  end if;
  return 'applied';
end
$$;
comment on function private.callback_complete(job_id uuid, attempt integer, task_id text, object_paths text[], at timestamptz) is
  'API: Private. Callback function: private.complete_job, answering applied (the job completed now), duplicate (it had already finished; recorded in late_results; or it is gone with its deleted account) or unknown_task (the task is not this job''s, private.is_job_task; recorded in late_results, nothing changed). A delivery it does not take gets a purge of its folder in the same transaction (private.discard_delivery), so its images go even if the function''s own delete fails; a delivery whose folder is being purged cannot complete the job (KL041). More images than image_count, or images that are not all in one delivery folder generated-images/<owner>/<job_id>/<delivery>/ of this job (private.delivery_folder) when the job would complete now: KL041. KL040/KL041/KL042 like complete_job.';
grant execute on function private.callback_complete(uuid, integer, text, text[], timestamptz) to kiln_callback;
