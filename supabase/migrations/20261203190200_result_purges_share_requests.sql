-- Why: a run of the result purge sent one Storage request per job folder, at most 50 a run (a
-- minute), so about 50 jobs' images were deleted a minute: fewer than the default create budget
-- can complete (108 a minute). Results expire as fast as jobs complete, so a project running near
-- that budget for days built a backlog of purges that only grew, and expired images outlived
-- their retention.
--
-- A Storage delete takes up to 1000 object names, from any folders: a request now carries the
-- names of as many due job folders as fit, and every purge it carries records that request (its
-- attempts, backoff and last_error as before, each purge on its own). max_jobs still bounds the
-- requests a run sends (the bursts that share pg_net's queue with createTask stay as they were);
-- with a job's few images each, one request now empties a few hundred folders. A purge is still
-- done only when its folder is found empty on a later visit.

-- One Storage delete for the named objects of these purges' folders, recorded on each purge. Many
-- purges share a previous request: pg_net's answer to it is read once per request, not once per
-- purge (a request with no answer costs a walk over every answer since it was sent; measured on
-- the 2-core machine, 1000 purges sharing one unanswered request beside 200,000 answers took
-- 13.8 s a run read per purge, 0.31 s read once).
create function private.send_result_purge(job_ids uuid[], names text[], at timestamptz)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  request bigint := private.send_storage_delete('generated-images', names);
  problems jsonb;
begin
  if request is null then
    update private.result_purges r
       set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
           next_attempt_at = at + interval '1 minute'
     where r.job_id = any (job_ids);
    return 0;
  end if;
  -- How each previous request failed, if it did, read once per request (many purges share one).
  select coalesce(pg_catalog.jsonb_object_agg(p.last_request_id::text, private.storage_delete_problem(p.last_request_id, p.last_request_at)), '{}')
    into problems
    from (select distinct on (x.last_request_id) x.last_request_id, x.last_request_at
            from private.result_purges x
           where x.job_id = any (job_ids) and x.last_request_id is not null
           order by x.last_request_id, x.last_request_at desc
          offset 0) p;
  -- private.storage_purge_backoff: at most 50 minutes; the next visit checks the folder again.
  -- The right-hand sides read each row as it was (its previous request, its attempts).
  update private.result_purges r
     set attempts = r.attempts + 1,
         last_error = problems ->> r.last_request_id::text,
         next_attempt_at = at + private.storage_purge_backoff(r.attempts),
         last_request_id = request,
         last_request_at = at
   where r.job_id = any (job_ids);
  return 1;
end
$$;
comment on function private.send_result_purge(uuid[], text[], timestamptz) is
  'API: Private. Result purge: sends one Storage delete for the given object names and records it on each given purge (attempts, backoff, the previous request''s problem in last_error, read once per previous request); without the Storage secrets, puts them off a minute. Returns the requests sent (1 or 0).';

create or replace function private.purge_results(at timestamptz default now(), max_jobs integer default 50)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  purge record;
  names text[];
  batch_jobs uuid[] := '{}';
  batch_names text[] := '{}';
  sent integer := 0;
begin
  if max_jobs is null or max_jobs < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_jobs must be at least 1, got %s', max_jobs), null);
  end if;
  -- At most 1000 visits a run (an empty folder costs an index probe and an update); the others'
  -- names fill at most max_jobs requests. The cursor locks each row as it reads it, so the rows
  -- past the last one visited stay free.
  for purge in
    select r.job_id, r.user_id
      from private.result_purges r
     where r.done_at is null and r.next_attempt_at <= at
     order by r.next_attempt_at
     limit 1000
       for update skip locked
  loop
    -- A job's folder holds a few images per delivery; 1000 is the Storage API's limit per request.
    select array_agg(f.name order by f.name) into names
      from (select o.name from storage.objects o
             where o.bucket_id = 'generated-images' and o.name like purge.user_id::text || '/' || purge.job_id::text || '/%'
             order by o.name limit 1000) f;
    if names is null then
      update private.result_purges r set done_at = at, last_error = null where r.job_id = purge.job_id;
      continue;
    end if;
    -- This folder's names do not fit in the request being filled: send that one first.
    if cardinality(batch_names) + cardinality(names) > 1000 then
      sent := sent + private.send_result_purge(batch_jobs, batch_names, at);
      batch_jobs := '{}';
      batch_names := '{}';
    end if;
    -- This run's requests are all sent: the rest of the due purges with objects wait for the next.
    exit when sent >= max_jobs;
    batch_jobs := batch_jobs || purge.job_id;
    batch_names := batch_names || names;
  end loop;
  if cardinality(batch_jobs) > 0 then
    sent := sent + private.send_result_purge(batch_jobs, batch_names, at);
  end if;
  return sent;
end
$$;
comment on function private.purge_results(timestamptz, integer) is
  'API: Private. Tick: visits at most 1000 due purges; finishes each whose job''s folder is empty, and asks the Storage API (pg_net, service key) to delete what is left in the others, as many folders per request as fit in its 1000 names and at most max_jobs requests, keeping how each purge''s previous request failed in last_error. Returns the requests sent.';

select private.pin_search_paths();
