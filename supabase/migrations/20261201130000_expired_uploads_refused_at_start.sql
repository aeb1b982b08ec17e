-- Why: an upload past uploads.retention_days could be lost by a job that started with it just
-- before its delete went out. The purge decided "no unfinished job lists it", queued the Storage
-- delete (pg_net sends it after the commit), and a start that committed in between, or in the
-- second before pg_net sent it, still listed the photo. KIE then found the photo gone, the task
-- failed, and the user got the credits back but not the image.
--
-- Both sides now meet on the owner's profile row. A start locks that row first thing (for update).
-- - The purge share-locks the owners' profile rows before it checks which of its uploads are in
--   use. A start that got there first has committed its job by then, so the purge sees the job and
--   keeps the photo.
-- - A start that comes after finds the purge committed. A job may not list an upload that has an
--   open purge (KL013): the app is asked to upload the photo again.
--   The check runs on the job's insert, so it covers start_generation and retry_generation alike.
--
-- A URL in another user's folder does not keep an upload alive (private.upload_keys_in_use). No
-- lock protects it either; a job that lists one of those can still lose it.

-- The user-uploads object names a URL stands for: the path as written, and percent-decoded when
-- that decodes to UTF-8 (a name that is no UTF-8 cannot exist in storage.objects).
create function private.upload_names_in_url(url text)
returns text[]
language plpgsql immutable strict
set search_path = pg_catalog, pg_temp
as $$
declare
  path text := private.upload_path_in_url(url);
  decoded text;
begin
  if path is null then
    return '{}';
  end if;
  begin
    decoded := pg_catalog.convert_from(private.percent_decode(path), 'UTF8');
  exception when character_not_in_repertoire then
    decoded := null;
  end;
  return array_remove(array[path, decoded], null);
end
$$;
comment on function private.upload_names_in_url(text) is
  'API: Private. The user-uploads object names a Storage URL can stand for: its path as written and, when that is UTF-8, percent-decoded. Empty if the URL names no user-uploads object.';

create function private.refuse_expiring_uploads()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  expiring_index bigint;
begin
  -- Through storage_purges_one_open_per_target: one index probe per name.
  select u.position into expiring_index
    from pg_catalog.unnest(new.input_image_urls) with ordinality as u (url, position)
   where exists (select from private.storage_purges p
                  where p.bucket_id = 'user-uploads' and p.reason = 'upload_expired' and p.done_at is null
                    and p.path = any (private.upload_names_in_url(u.url)))
   order by u.position
   limit 1;
  if found then
    perform private.raise_error('KL013', 'image URL not accepted',
      pg_catalog.format('image %s: the upload is past its retention and is being deleted', expiring_index),
      'Upload the photo again and send the new URL.');
  end if;
  return new;
end
$$;
comment on function private.refuse_expiring_uploads() is
  'API: Private. Trigger on public.generation_jobs (insert of a job with images): refuses (KL013) an image URL that names a user-uploads object with an open upload_expired purge, whose delete is decided and may already be on its way.';

create trigger generation_jobs_refuse_expiring_uploads before insert on public.generation_jobs
  for each row when (pg_catalog.cardinality(new.input_image_urls) > 0)
  execute function private.refuse_expiring_uploads();

-- The purge: unchanged, except for the owners' profile rows, share-locked before the check of
-- which uploads are still in use.
create or replace function private.purge_expired_uploads(at timestamptz default now(), max_objects integer default 1000)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  due_ids bigint[];
  due_names text[];
  names text[];
  request bigint;
begin
  if max_objects is null or max_objects < 1 or max_objects > 1000 then
    perform private.raise_error('KL052', 'invalid batch size',
      pg_catalog.format('max_objects must be from 1 to 1000 (the Storage API deletes at most 1000 names per request), got %s', max_objects), null);
  end if;
  -- Finished upload purges are kept as long as the request log, then forgotten.
  delete from private.storage_purges p
   where p.id in (select d.id from private.storage_purges d
                   where d.done_at < at - pg_catalog.make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision)
                     and d.reason = 'upload_expired'
                   order by d.done_at limit max_objects);

  select pg_catalog.array_agg(d.id), pg_catalog.array_agg(d.path) into due_ids, due_names
    from (select p.id, p.path from private.storage_purges p
           where p.reason = 'upload_expired' and p.done_at is null and p.next_attempt_at <= at
           order by p.next_attempt_at, p.id
           limit max_objects
             for update skip locked) d;
  if due_ids is null then
    return 0;
  end if;
  -- Gone: done.
  update private.storage_purges p set done_at = at, last_error = null
   where p.id = any (due_ids)
     and not exists (select 1 from storage.objects o where o.bucket_id = 'user-uploads' and o.name = p.path);
  -- A start holds its user's profile row until it commits (create_generation_job locks it for
  -- update). Waiting here for the owners' rows means every start that could list these uploads
  -- has either committed its job, which the check below then sees, or will start after this
  -- purge commits, and then private.refuse_expiring_uploads refuses the upload. Key share: plain
  -- balance updates are not held up. In id order, so two runs cannot deadlock.
  perform 1 from public.profiles pr
   where pr.id in (select p.user_id from private.storage_purges p where p.id = any (due_ids) and p.done_at is null)
   order by pr.id
     for key share of pr;
  -- Still there but no longer expired (replaced since, or a job started with it): the decision
  -- is withdrawn; the walk records it again once it expires.
  names := array(select private.expired_uploads(due_names, at) order by 1);
  delete from private.storage_purges p
   where p.id = any (due_ids) and p.done_at is null and not (p.path = any (names));
  if pg_catalog.cardinality(names) = 0 then
    return 0;
  end if;
  request := private.send_storage_delete('user-uploads', names);
  if request is null then
    update private.storage_purges p
       set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
           next_attempt_at = at + interval '1 minute'
     where p.id = any (due_ids) and p.done_at is null;
    return 0;
  end if;
  -- Each row backs off by its own attempts (its target is one object: no request before this
  -- one deleted anything of it), and keeps how its previous request failed, if it did.
  update private.storage_purges p
     set attempts = p.attempts + 1,
         last_error = private.storage_delete_problem(p.last_request_id, p.last_request_at),
         next_attempt_at = at + private.storage_purge_backoff(p.attempts),
         last_request_id = request,
         last_request_at = at
   where p.id = any (due_ids) and p.done_at is null;
  return 1;
end
$$;
comment on function private.purge_expired_uploads(timestamptz, integer) is
  'API: Private. Tick: for the due upload purges (at most max_objects, at most 1000), finishes those whose object is gone, waits for the starts of their owners in progress, drops those no longer expired, and asks the Storage API (pg_net, service key) to delete the rest in one request. Returns the requests sent (0 or 1).';

select private.pin_search_paths();
