-- Why: one user could hold up every other user's expired uploads, for as long as they liked. The
-- upload purge takes the due rows in queue order (next_attempt_at, then id), at most max_objects
-- a run, and leaves those whose owner's profile row is locked now (a start in progress) for the
-- next run, untouched. Untouched, they were due again at the next run and still at the head of
-- the queue. A user with a batch's worth of expired uploads (1000 small photos, a week old) who
-- keeps their profile row locked (start_generation takes it for update until commit; replaying an
-- idempotency key is cheap, never refused and never limited, so a few clients calling it in a loop
-- hold it nearly all the time) filled every run's batch with rows the run then skipped: no other
-- owner's expired upload was deleted, past its retention, while it lasted.
--
-- The rows of a skipped owner now go back in the queue 30 seconds on, as the rows whose request
-- can still act already do: the next run (a minute later) takes the other owners' due rows first,
-- and visits them again after those. Nothing else changes: they are not counted as attempts, keep
-- their last error, and a start that was in progress is seen by that next visit as before.

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
  -- The skipped owners' rows are visited again in 30 s: left due, they would head the queue at the
  -- next run too, and a whole batch of them would keep every other owner's uploads waiting.
  update private.storage_purges p set next_attempt_at = at + interval '30 seconds'
   where p.id = any (due_ids) and p.done_at is null
     and p.user_id is not null and not (p.user_id = any (locked_owners))
     and exists (select from public.profiles pr where pr.id = p.user_id);
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
  'API: Private. Tick: for the due upload purges (at most max_objects, at most 1000), finishes those whose object is gone, leaves those whose owner has a start in progress for a visit 30 s later, drops those no longer expired, and asks the Storage API (pg_net, service key) to delete the rest in one request; a purge is done or dropped only once the request it sent before is settled. Returns the requests sent (0 or 1).';

select private.pin_search_paths();
