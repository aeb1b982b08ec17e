-- Why: an expired upload could be deleted under a job that had just started with it. The purge
-- checked "no unfinished job lists it" and queued the Storage delete, and a start that committed
-- in between, or before pg_net sent the request, still listed the photo. KIE then failed the task
-- and the user was refunded but lost the image.
--
-- - Purge and start meet on the owner's profile row, which a start locks (for update) from its
--   first statement to its commit. The purge share-locks the owners' rows before it checks which
--   uploads are in use, skipping an owner whose row is locked now (a start in progress, a grant
--   left open): that owner's uploads wait for the next run. So nothing waits or deadlocks.
-- - A start after the purge is refused (KL013) an upload in the owner's folder that an open purge
--   has decided to delete. The check is a trigger on the job's insert, so retries get it too.
-- - The Storage API deletes by name, not by version: a request still in flight also deletes a
--   photo uploaded again under that name. So a purge stays open until its last request is
--   settled, also when its photo is gone or was replaced, and a start is refused that name
--   meanwhile.
-- A URL into another user's folder neither keeps an upload alive nor is refused: a start tells a
-- user nothing about another user's uploads.

-- The user-uploads object names a URL stands for: the path as written, and percent-decoded when
-- that decodes to UTF-8 (a name that is no UTF-8 cannot exist in storage.objects).
create function private.upload_names_in_url(url text)
returns text[]
language plpgsql stable strict
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
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  expiring_index bigint;
begin
  -- For each name in the owner's folder, an open purge (found by its unique index) refuses it
  -- while the object there is the one it decided on (written before the decision) or is gone,
  -- and, whatever is there now, while a request it sent can still act. A photo uploaded again
  -- under the name after the decision is accepted once no request can touch it; the purge's
  -- next visit then withdraws.
  select u.position into expiring_index
    from pg_catalog.unnest(new.input_image_urls) with ordinality as u (url, position)
   where exists (select from private.storage_purges p
                  where p.bucket_id = 'user-uploads' and p.reason = 'upload_expired' and p.done_at is null
                    and p.path = any (private.upload_names_in_url(u.url))
                    and pg_catalog.starts_with(p.path, new.user_id::text || '/')
                    and (not private.storage_request_settled(p.last_request_id, p.last_request_at, pg_catalog.now())
                         or not exists (select from storage.objects o
                                         where o.bucket_id = 'user-uploads' and o.name = p.path
                                           and greatest(o.created_at, o.updated_at) >= p.requested_at)))
   order by u.position
   limit 1;
  if found then
    perform private.raise_error('KL013', 'image URL not accepted',
      pg_catalog.format('image %s: the upload is past its retention and is being deleted', expiring_index),
      'Upload the photo again, under a new name, and start with its URL.');
  end if;
  return new;
end
$$;
comment on function private.refuse_expiring_uploads() is
  'API: Private. Trigger on public.generation_jobs (insert of a job with images): refuses (KL013) an image URL that names an object in the owner''s user-uploads folder with an open upload_expired purge, while that object is the one the purge decided on (or is gone) or a delete request it sent can still act.';

create trigger generation_jobs_refuse_expiring_uploads before insert on public.generation_jobs
  for each row when (pg_catalog.cardinality(new.input_image_urls) > 0)
  execute function private.refuse_expiring_uploads();
comment on trigger generation_jobs_refuse_expiring_uploads on public.generation_jobs is
  'A job may not list an upload of its owner''s that an open purge is deleting (private.refuse_expiring_uploads).';

-- Whether a Storage delete request can still act. pg_net removes a request from its queue in the
-- transaction that stores its answer, so a queued request may still run. A timed-out or failed
-- request may still be finishing at the Storage server. The minute after sending covers both, and
-- a request lost with the unlogged queue in a crash.
create function private.storage_request_settled(request_id bigint, sent_at timestamptz, at timestamptz)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select request_id is null
      or exists (select from net._http_response h
                  where h.id = request_id and h.created >= sent_at - interval '1 second' and h.status_code is not null)
      or (not exists (select from net.http_request_queue q where q.id = request_id)
          and sent_at < at - interval '1 minute')
$$;
comment on function private.storage_request_settled(bigint, timestamptz, timestamptz) is
  'API: Private. True when that Storage delete request (pg_net id, queued at sent_at) can no longer delete anything at `at`: none was sent, the Storage API answered it, or it is out of pg_net''s queue and was sent over a minute ago.';

-- The purge: as before, except for the owners' profile rows, share-locked before the check of
-- which uploads are still in use, and done or withdrawn only once its last request is settled.
create or replace function private.purge_expired_uploads(at timestamptz default now(), max_objects integer default 1000)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  due_ids bigint[];
  due_names text[];
  settled_requests bigint[];
  locked_owners uuid[];
  names text[];
  problems jsonb;
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
  -- The last requests that can no longer act, worked out once per request: the rows of one run
  -- share one, and each lookup reads pg_net's answers by time.
  -- (Materialized, or the planner pushes the check below the distinct: once per row again.)
  settled_requests := array(
    with requests as materialized (
      select distinct p.last_request_id, p.last_request_at from private.storage_purges p
       where p.id = any (due_ids) and p.last_request_id is not null)
    select r.last_request_id from requests r
     where private.storage_request_settled(r.last_request_id, r.last_request_at, at));
  -- Gone: done, once no request sent for it can still act (it would delete a photo uploaded
  -- again under the name, which a start may then list). Until then it is visited again below.
  update private.storage_purges p set done_at = at, last_error = null
   where p.id = any (due_ids)
     and not exists (select 1 from storage.objects o where o.bucket_id = 'user-uploads' and o.name = p.path)
     and (p.last_request_id is null or p.last_request_id = any (settled_requests));
  -- A start holds its user's profile row until it commits (create_generation_job locks it for
  -- update). With the owner's row share-locked here, a start that could list these uploads has
  -- either committed its job, which the check below sees, or starts after this purge commits and
  -- is refused by private.refuse_expiring_uploads. Key share: balance updates are not held up.
  -- Skip locked: an owner whose row is locked now (a start in progress, a grant left open) keeps
  -- that owner's uploads for the next run, so this run neither waits nor deadlocks.
  locked_owners := array(
    select pr.id from public.profiles pr
     where pr.id in (select p.user_id from private.storage_purges p where p.id = any (due_ids) and p.done_at is null)
       for key share of pr skip locked);
  select pg_catalog.array_agg(p.id), pg_catalog.array_agg(p.path) into due_ids, due_names
    from private.storage_purges p
   where p.id = any (due_ids) and p.done_at is null
     and (p.user_id is null or p.user_id = any (locked_owners)
          or not exists (select from public.profiles pr where pr.id = p.user_id));
  if due_ids is null then
    return 0;
  end if;
  names := array(select private.expired_uploads(due_names, at) order by 1);
  -- Still there but no longer expired (replaced since, or a job started with it before the walk
  -- saw it): the decision is withdrawn, and the walk records it again once it expires; not while
  -- the request sent before can still act, since it would delete the name a job may list. Those,
  -- and the gone ones waiting for their request, are visited again in 30 s.
  delete from private.storage_purges p
   where p.id = any (due_ids) and p.done_at is null and not (p.path = any (names))
     and (p.last_request_id is null or p.last_request_id = any (settled_requests));
  update private.storage_purges p set next_attempt_at = at + interval '30 seconds'
   where p.id = any (due_ids) and p.done_at is null and not (p.path = any (names));
  if pg_catalog.cardinality(names) = 0 then
    return 0;
  end if;
  request := private.send_storage_delete('user-uploads', names);
  if request is null then
    update private.storage_purges p
       set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
           next_attempt_at = at + interval '1 minute'
     where p.id = any (due_ids) and p.done_at is null and p.path = any (names);
    return 0;
  end if;
  -- How each previous request failed, if it did, read once per request.
  select coalesce(pg_catalog.jsonb_object_agg(r.last_request_id::text, private.storage_delete_problem(r.last_request_id, r.last_request_at)), '{}')
    into problems
    from (select distinct on (x.last_request_id) x.last_request_id, x.last_request_at
            from private.storage_purges x
           where x.id = any (due_ids) and x.done_at is null and x.path = any (names) and x.last_request_id is not null
           order by x.last_request_id, x.last_request_at desc
          offset 0) r;
  -- Each row backs off by its own attempts (its target is one object: no request before this
  -- one deleted anything of it), and keeps how its previous request failed.
  update private.storage_purges p
     set attempts = p.attempts + 1,
         last_error = problems ->> p.last_request_id::text,
         next_attempt_at = at + private.storage_purge_backoff(p.attempts),
         last_request_id = request,
         last_request_at = at
   where p.id = any (due_ids) and p.done_at is null and p.path = any (names);
  return 1;
end
$$;
comment on function private.purge_expired_uploads(timestamptz, integer) is
  'API: Private. Tick: for the due upload purges (at most max_objects, at most 1000), finishes those whose object is gone, leaves those whose owner has a start in progress for the next run, drops those no longer expired, and asks the Storage API (pg_net, service key) to delete the rest in one request; a purge is done or dropped only once the request it sent before is settled. Returns the requests sent (0 or 1).';

select private.pin_search_paths();
