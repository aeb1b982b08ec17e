-- Why: a run of the result purge visited at most max_jobs (50) due purges, whether or not a visit
-- sent anything. A purge whose job folder is already empty is finished with one index probe and
-- no request, yet it used up one of the run's 50 places. A user makes such purges for nothing:
-- start a generation, cancel it (refunded), delete it; each start of the plan's minute (free: 5,
-- pro: 30) is one more. A few accounts doing so kept every run busy finishing their empty purges,
-- in queue order ahead of everyone else's: other users' deleted and expired images stayed in
-- Storage, readable through any signed URL still valid, for as long as it went on. It costs
-- honest work too: a job with images takes two visits (the request, then the check that finds
-- the folder empty), so a run finished 25 such jobs, not 50.
--
-- max_jobs now bounds the requests a run sends, as its result always counted; a run visits at
-- most 1000 due purges, so the empty ones ahead are finished on the way without using it up.

create or replace function private.purge_results(at timestamptz default now(), max_jobs integer default 50)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  purge record;
  names text[];
  request bigint;
  sent integer := 0;
begin
  if max_jobs is null or max_jobs < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_jobs must be at least 1, got %s', max_jobs), null);
  end if;
  -- At most 1000 visits a run (an empty folder costs an index probe and an update); at most
  -- max_jobs of them send a request. The cursor locks each row as it reads it, so the rows past
  -- the last one visited stay free.
  for purge in
    select r.job_id, r.user_id, r.attempts, r.last_request_id, r.last_request_at
      from private.result_purges r
     where r.done_at is null and r.next_attempt_at <= at
     order by r.next_attempt_at
     limit greatest(max_jobs, 1000)
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
    -- This run's requests are all sent: the rest of the due purges with objects wait for the next.
    exit when sent >= max_jobs;
    request := private.send_storage_delete('generated-images', names);
    if request is null then
      update private.result_purges r
         set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
             next_attempt_at = at + interval '1 minute'
       where r.job_id = purge.job_id;
      continue;
    end if;
    -- private.storage_purge_backoff: at most 50 minutes (it was an hour); the next visit checks
    -- the folder again.
    update private.result_purges r
       set attempts = r.attempts + 1,
           last_error = private.storage_delete_problem(purge.last_request_id, purge.last_request_at),
           next_attempt_at = at + private.storage_purge_backoff(purge.attempts),
           last_request_id = request,
           last_request_at = at
     where r.job_id = purge.job_id;
    sent := sent + 1;
  end loop;
  return sent;
end
$$;
comment on function private.purge_results(timestamptz, integer) is
  'API: Private. Tick: visits at most 1000 due purges; finishes each whose job''s folder is empty, and for at most max_jobs of the others asks the Storage API (pg_net, service key) to delete what is left, keeping how the previous request failed in last_error. Returns the requests sent.';

select private.pin_search_paths();
