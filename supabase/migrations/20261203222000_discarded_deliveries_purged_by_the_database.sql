-- Why: the kie-callback function stores a delivery's images under
-- generated-images/<user_id>/<job_id>/<delivery>/ before it asks private.callback_complete to
-- complete the job. When the database does not take the delivery (the job had already finished
-- with another delivery, timed out, was deleted with delete_generation, or the task is not the
-- job's), the function deletes what it stored; should that delete fail, nothing else removed the
-- objects on time, and some were never removed:
--   * a job deleted while the delivery was downloading: its purge found the folder empty and was
--     done before the delivery stored anything; the delivery's images then stayed for good;
--   * an account deleted while a delivery was downloading: its jobs were gone, so
--     callback_complete raised KL040, the function answered 503 and deleted nothing at all; the
--     account's folder purge takes what arrives within storage.deleted_account_watch_seconds,
--     and nothing took what arrived after it was done;
--   * a job that finished (completed by another delivery, timed out, failed): the images waited
--     out the whole retention (up to a year on pro) for the job's own expiry purge.
--
-- The database now owns that clean-up. In the same transaction in which callback_complete
-- refuses or ignores a delivery that stored images, it records a purge of that delivery's folder
-- (private.storage_purges, reason delivery_discarded, path <user_id>/<job_id>/<delivery>/), and
-- the results-retention tick (private.purge_discarded_deliveries) deletes what is left there until
-- the folder is found empty. The function's own delete stays as the fast path: after it the first
-- visit finds the folder empty and finishes without a request. A delivery whose job went with its
-- account is answered duplicate (so the function deletes at once) instead of raising KL040, when
-- the account's deletion is on record (its account_deleted purge).
--
-- Guards: a purge is recorded only for paths that all lie in one delivery folder of that job under
-- its owner's folder (for a job gone with its account: under that deleted account's folder), never
-- for the folder a job's result_urls lists; at most one is open per folder. Each visit leaves out
-- every name the job's result_urls lists, and a delivery whose folder has an open purge cannot
-- complete the job (KL041), so the images a job keeps are never deleted. Only callback_complete
-- records these purges, and only the callback function's role (kiln_callback) and the owner may
-- call it.

alter table private.storage_purges drop constraint storage_purges_reason_valid;
alter table private.storage_purges add constraint storage_purges_reason_valid
  check (reason in ('account_deleted', 'upload_expired', 'delivery_discarded'));
-- The path is plain (uuid, uuid, a delivery name of letters, digits and dashes) so that it is a
-- LIKE prefix without escaping, and lies inside the user's own folder.
alter table private.storage_purges add constraint storage_purges_delivery_folder
  check (reason <> 'delivery_discarded'
         or (bucket_id = 'generated-images' and user_id is not null
             and path ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9A-Za-z-]{1,64}/$'
             and split_part(path, '/', 1) = user_id::text));
comment on table private.storage_purges is
  'API: Private. Storage objects to remove that no job row stands for: one row per target (a deleted account''s folder in a bucket, one expired upload, or the folder of a delivery of results the job did not take), until the target is found empty or gone. No foreign key: a row outlives the user.';
comment on column private.storage_purges.path is
  'account_deleted: the folder <user_id>/ (everything under it goes). upload_expired: the exact object name in user-uploads. delivery_discarded: the folder <user_id>/<job_id>/<delivery>/ in generated-images.';
comment on column private.storage_purges.reason is
  'account_deleted: the user''s profile was deleted (auth.admin.deleteUser cascades to it). upload_expired: an input photo past uploads.retention_days that no unfinished job lists. delivery_discarded: the callback function stored a delivery of results that private.callback_complete did not take (the job had finished, was deleted or is gone with its account, or the task is not the job''s).';
comment on view private.pending_storage_purges is
  'API: Private. Operators: Storage deletions not finished yet, one row per target: a job''s results (job_deleted, job_expired: the folder <user_id>/<job_id>/), a deleted account''s folder (account_deleted), an expired upload (upload_expired), a delivery of results the job did not take (delivery_discarded: the folder <user_id>/<job_id>/<delivery>/). attempts counts requests sent; last_error says why none could be sent (missing Vault secrets) or how the previous request failed, and failing_since since when the visits fail.';

-- The delivery folder all of these paths (bucket first, as callback_complete takes them) lie in,
-- under that user's folder of that job; null when they do not share one such folder.
create or replace function private.delivery_folder(user_id uuid, job_id uuid, object_paths text[])
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case
           when cardinality(object_paths) > 0
            and count(distinct d.folder) = 1
            and bool_and(d.folder is not null)
           then min(d.folder)
         end
    from unnest(object_paths) as o (path)
   cross join lateral (
     select user_id::text || '/' || job_id::text || '/'
            || (regexp_match(o.path, '^generated-images/' || user_id::text || '/' || job_id::text || '/([0-9A-Za-z-]{1,64})/[^/]+$'))[1]
            || '/' as folder
   ) d
$$;
comment on function private.delivery_folder(user_id uuid, job_id uuid, object_paths text[]) is
  'API: Private. The delivery folder <user_id>/<job_id>/<delivery>/ that every one of these object paths (generated-images/<user_id>/<job_id>/<delivery>/<name>) lies in, or null when they are not all in one such folder (or there are none). The delivery name is 1 to 64 letters, digits or dashes.';

create or replace function private.discard_delivery(job_id uuid, user_id uuid, object_paths text[], at timestamptz default now())
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  folder text := private.delivery_folder(user_id, job_id, object_paths);
begin
  if folder is null then
    return null;
  end if;
  -- Never the folder the job keeps (a replayed delivery that had completed it).
  if exists (select from public.generation_jobs j
              where j.id = discard_delivery.job_id
                and exists (select from unnest(j.result_urls) u where starts_with(u, 'generated-images/' || folder))) then
    return null;
  end if;
  insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
  values ('generated-images', folder, discard_delivery.user_id, 'delivery_discarded', at, at)
  on conflict (bucket_id, path, reason) where done_at is null do nothing;
  return folder;
end
$$;
comment on function private.discard_delivery(job_id uuid, user_id uuid, object_paths text[], at timestamptz) is
  'API: Private. private.callback_complete: records the purge (storage_purges, delivery_discarded) of the delivery folder these stored images lie in (private.delivery_folder), unless they are not all in one delivery folder of that job under that user, or the job''s result_urls lists that folder; one open purge per folder. Returns the folder, or null when nothing was recorded.';

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
  -- A delivery whose folder is being purged cannot become the job's result.
  if before_stage not in ('completed', 'failed') then
    folder := private.delivery_folder(owner, job_id, object_paths);
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
  'API: Private. Callback function: private.complete_job, answering applied (the job completed now), duplicate (it had already finished; recorded in late_results; or it is gone with its deleted account) or unknown_task (the task is not this job''s, private.is_job_task; recorded in late_results, nothing changed). A delivery it does not take gets a purge of its folder in the same transaction (private.discard_delivery), so its images go even if the function''s own delete fails; a delivery whose folder is being purged cannot complete the job (KL041). More images than image_count: KL041. KL040/KL041/KL042 like complete_job.';
grant execute on function private.callback_complete(uuid, integer, text, text[], timestamptz) to kiln_callback;

create or replace function private.purge_discarded_deliveries(at timestamptz default now(), max_folders integer default 200)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  purge record;
  names text[];
  batch_ids bigint[] := '{}';
  batch_names text[] := '{}';
  problems jsonb;
  request bigint;
begin
  if max_folders is null or max_folders < 1 or max_folders > 1000 then
    perform private.raise_error('KL052', 'invalid batch size',
      pg_catalog.format('max_folders must be from 1 to 1000, got %s', max_folders), null);
  end if;
  -- Finished ones are kept as long as the request log, then forgotten.
  delete from private.storage_purges p
   where p.id in (select d.id from private.storage_purges d
                   where d.done_at < at - pg_catalog.make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision)
                     and d.reason = 'delivery_discarded'
                   order by d.done_at limit max_folders);
  for purge in
    select p.id, p.path
      from private.storage_purges p
     where p.reason = 'delivery_discarded' and p.done_at is null and p.next_attempt_at <= at
     order by p.next_attempt_at, p.id
     limit max_folders
       for update skip locked
  loop
    -- A plain prefix (storage_purges_delivery_folder). Never a name the job keeps.
    names := array(
      select o.name from storage.objects o
       where o.bucket_id = 'generated-images' and o.name like purge.path || '%'
         and not exists (select from public.generation_jobs j
                          where j.id = pg_catalog.split_part(purge.path, '/', 2)::uuid
                            and 'generated-images/' || o.name = any (j.result_urls))
       order by o.name limit 1000);
    if pg_catalog.cardinality(names) = 0 then
      update private.storage_purges p set done_at = at, last_error = null where p.id = purge.id;
      continue;
    end if;
    -- One request a run, at most 1000 names (the Storage API's limit): the rest wait their turn.
    exit when pg_catalog.cardinality(batch_names) + pg_catalog.cardinality(names) > 1000;
    batch_ids := batch_ids || purge.id;
    batch_names := batch_names || names;
  end loop;
  if pg_catalog.cardinality(batch_ids) = 0 then
    return 0;
  end if;
  request := private.send_storage_delete('generated-images', batch_names);
  if request is null then
    update private.storage_purges p
       set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
           next_attempt_at = at + interval '1 minute'
     where p.id = any (batch_ids);
    return 0;
  end if;
  -- How each previous request failed, if it did, read once per request (the rows of a run share one).
  select coalesce(pg_catalog.jsonb_object_agg(r.last_request_id::text, private.storage_delete_problem(r.last_request_id, r.last_request_at)), '{}')
    into problems
    from (select distinct on (x.last_request_id) x.last_request_id, x.last_request_at
            from private.storage_purges x
           where x.id = any (batch_ids) and x.last_request_id is not null
           order by x.last_request_id, x.last_request_at desc
          offset 0) r;
  update private.storage_purges p
     set attempts = p.attempts + 1,
         last_error = problems ->> p.last_request_id::text,
         next_attempt_at = at + private.storage_purge_backoff(p.attempts),
         last_request_id = request,
         last_request_at = at
   where p.id = any (batch_ids);
  return 1;
end
$$;
comment on function private.purge_discarded_deliveries(at timestamptz, max_folders integer) is
  'API: Private. Tick: forgets up to max_folders finished delivery purges older than housekeeping.request_log_retention_seconds; then visits up to max_folders (1 to 1000) due delivery_discarded purges, finishes each whose folder holds nothing but what its job''s result_urls lists, and asks the Storage API (pg_net, service key) to delete the rest, never a name the job lists, in one request of at most 1000 names, backing off by each purge''s attempts and keeping how its previous request failed in last_error. Returns the requests sent (0 or 1).';

create or replace function private.results_retention_tick(at timestamptz default now())
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  part text;
  problem text;
  failures jsonb := '[]';
  failing record;
begin
  -- Each part in its own subtransaction: one that fails (a row or a setting it cannot read)
  -- rolls back only its own work, and the others still run, this minute and every next one.
  foreach part in array array['expire_results', 'purge_results', 'purge_discarded_deliveries', 'purge_account_storage',
                              'expire_uploads', 'purge_expired_uploads', 'failing_storage_purges'] loop
    begin
      case part
        when 'expire_results' then perform private.expire_results(at);
        when 'purge_results' then perform private.purge_results(at);
        when 'purge_discarded_deliveries' then perform private.purge_discarded_deliveries(at);
        when 'purge_account_storage' then perform private.purge_account_storage(at);
        when 'expire_uploads' then perform private.expire_uploads(at);
        when 'purge_expired_uploads' then perform private.purge_expired_uploads(at);
        when 'failing_storage_purges' then
          -- Each purge only backs off on its own; one alert says that deletes keep failing.
          select * into failing from private.failing_storage_purges(at);
          if failing.purges > 0 then
            perform private.raise_alert('storage_purge_failing',
              pg_catalog.format('Storage deletes are failing: %s purge(s), failing since %s; last error: %s',
                failing.purges, failing.failing_since, pg_catalog.left(failing.last_error, 200)),
              false,
              pg_catalog.jsonb_build_object('purges', failing.purges, 'failing_since', failing.failing_since,
                                            'last_error', failing.last_error, 'see', 'private.pending_storage_purges'),
              at);
          else
            update private.alerts a set cleared_at = at where a.key = 'storage_purge_failing' and a.cleared_at is null;
          end if;
      end case;
    exception when others then
      get stacked diagnostics problem = message_text;
      failures := failures || pg_catalog.jsonb_build_array(
        pg_catalog.jsonb_build_object('part', part, 'sqlstate', sqlstate, 'message', pg_catalog.left(problem, 300)));
    end;
  end loop;
  -- One alert for every part that failed this run; a run where all of them ran clears it.
  if pg_catalog.jsonb_array_length(failures) > 0 then
    perform private.raise_alert('retention_error',
      pg_catalog.format('Storage retention: %s failed: %s',
        (select pg_catalog.string_agg('private.' || (f ->> 'part'), ', ') from pg_catalog.jsonb_array_elements(failures) f),
        failures -> 0 ->> 'message'),
      false, pg_catalog.jsonb_build_object('parts', failures), at);
  else
    update private.alerts a set cleared_at = at where a.key = 'retention_error' and a.cleared_at is null;
  end if;
end
$$;
comment on function private.results_retention_tick(at timestamptz) is
  'API: Private. The scheduled job: expire results past retention and purge what is due, delete what deliveries the jobs did not take left in Storage, empty the folders of deleted accounts, find expired uploads and delete them, and raise storage_purge_failing while purges keep failing (cleared when none do). The parts that fail are named in the retention_error alert (details.parts) while the others run; a run where every part ran clears it.';
