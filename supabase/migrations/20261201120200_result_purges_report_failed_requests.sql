-- Why: a job's result purge kept sending its delete request with growing backoff when the
-- Storage API refused it (a rotated service key, a 4xx), with last_error empty: operators saw
-- attempts grow and nothing else. It now sends through private.send_storage_delete, as the
-- account and upload purges do, and keeps how the previous request failed in last_error; its
-- backoff stops at 50 minutes instead of an hour, so that answer is still kept when it looks.
-- The no-argument private.storage_delete_target(), whose only caller this was, goes.

alter table private.result_purges add column last_request_at timestamptz;
comment on column private.result_purges.last_request_at is 'When the last delete request was queued (to read its answer in net._http_response).';
comment on column private.result_purges.last_error is 'Why the last visit could not send a request (missing Vault secrets), or how the previous request failed (its answer in net._http_response).';

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
  for purge in
    select r.job_id, r.user_id, r.attempts, r.last_request_id, r.last_request_at
      from private.result_purges r
     where r.done_at is null and r.next_attempt_at <= at
     order by r.next_attempt_at
     limit max_jobs
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
  'API: Private. Tick: for each due purge, finishes it when the job''s folder is empty, otherwise asks the Storage API (pg_net, service key) to delete what is left, keeping how the previous request failed in last_error. Returns the requests sent.';

drop function private.storage_delete_target();

select private.pin_search_paths();
