-- Why: deleting an account (auth.admin.deleteUser, a delete on auth.users) cascades to the
-- profile, the jobs and with them their pending result purges, but nothing deleted the user's
-- Storage objects: generated-images/<uid>/... and the input photos in user-uploads/<uid>/...
-- stayed forever (the platform refuses direct deletes from storage.objects; only the Storage
-- API deletes files). A profile's deletion now records that both of the user's folders must be
-- emptied, in a table with no foreign key to the user, so the record survives the cascade; the
-- retention tick asks the Storage API to delete what is left in each folder through pg_net with
-- the service key from Vault, with the same backoff and "done only when the folder is found
-- empty" rule as private.purge_results. The Storage delete URL is now per bucket.

-- ---------------------------------------------------------------------------------------------
-- The Storage API's delete endpoint, per bucket
-- ---------------------------------------------------------------------------------------------
create function private.storage_delete_target(bucket text)
returns table (url text, service_key text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if bucket is null or not exists (select 1 from storage.buckets b where b.id = storage_delete_target.bucket) then
    perform private.raise_error('KL054', 'unknown bucket',
      pg_catalog.format('no Storage bucket %s', coalesce(pg_catalog.quote_literal(pg_catalog.left(bucket, 100)), 'null')), null);
  end if;
  return query
    select pg_catalog.rtrim(u.value, '/') || '/storage/v1/object/' || bucket, k.value
      from (select private.secret('project_url') as value) u, (select private.secret('service_role_key') as value) k
     where u.value is not null and k.value is not null;
end
$$;
comment on function private.storage_delete_target(text) is
  'API: Private. The Storage API''s bulk delete URL of a bucket (DELETE <project_url>/storage/v1/object/<bucket>) and the service key, from the Vault secrets project_url and service_role_key; no row while either is missing. KL054 for a bucket that does not exist.';

-- One bulk delete through pg_net; null (nothing sent) while the Vault secrets are missing.
create function private.send_storage_delete(bucket text, names text[])
returns bigint
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  target record;
begin
  if pg_catalog.cardinality(names) not between 1 and 1000 then
    perform private.raise_error('KL052', 'invalid batch size',
      pg_catalog.format('1 to 1000 names per Storage delete request, got %s', coalesce(pg_catalog.cardinality(names), 0)), null);
  end if;
  select * into target from private.storage_delete_target(bucket);
  if target.url is null then
    return null;
  end if;
  return net.http_delete(
    url := target.url,
    headers := pg_catalog.jsonb_build_object(
      'Authorization', 'Bearer ' || target.service_key, 'apikey', target.service_key,
      'Content-Type', 'application/json'),
    body := pg_catalog.jsonb_build_object('prefixes', names),
    timeout_milliseconds := 10000);
end
$$;
comment on function private.send_storage_delete(text, text[]) is
  'API: Private. Queues DELETE <project_url>/storage/v1/object/<bucket> with {"prefixes": names} (1 to 1000 names, the API''s limit; else KL052) through pg_net with the service key; returns the request id, or null while the Vault secrets project_url and service_role_key are missing.';

-- The wait after a delete request, by how many requests before it changed nothing: 30 s,
-- 1 min, 2 min ... at most 50 minutes, so the last request's answer is still in
-- net._http_response (kept an hour) when the next visit reads it for last_error.
create function private.storage_purge_backoff(unproductive_requests integer)
returns interval
language sql immutable strict
set search_path = pg_catalog, pg_temp
as $$
  select least(interval '50 minutes', interval '30 seconds' * power(2, least(greatest(unproductive_requests, 0), 10)))
$$;
comment on function private.storage_purge_backoff(integer) is
  'API: Private. The wait before a Storage purge looks again, after a request that followed that many unproductive ones: 30 s doubling, at most 50 minutes.';

-- What went wrong with an earlier delete request, read from pg_net's response (while it keeps
-- it): null when it succeeded or has no answer. The response must be newer than the request, so
-- an id that pg_net reused after a crash is not read as this request's.
create function private.storage_delete_problem(request_id bigint, sent_at timestamptz)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case
           when h.timed_out or h.error_msg is not null then
             pg_catalog.format('the last delete request failed: %s', pg_catalog.left(coalesce(h.error_msg, 'timed out'), 200))
           when h.status_code not between 200 and 299 then
             pg_catalog.format('the Storage API answered the last delete request with %s: %s', h.status_code, pg_catalog.left(h.content, 200))
           -- The API leaves out, with a 200, every name the key may not delete: with the anon
           -- key in service_role_key nothing would ever go, and nothing else would say so.
           when h.content ~ '^\s*\[\s*\]\s*$' then
             'the Storage API deleted none of the names it was sent (is service_role_key the service_role key?)'
         end
    from net._http_response h
   where h.id = request_id and h.created >= sent_at - interval '1 second'
   order by h.created desc
   limit 1
$$;
comment on function private.storage_delete_problem(bigint, timestamptz) is
  'API: Private. Why a Storage delete request sent at sent_at failed (an error, a timeout, a non-2xx answer, or a 2xx that deleted none of the names, from net._http_response), or null.';

-- ---------------------------------------------------------------------------------------------
-- Storage purges that outlive the user: one durable row per folder to empty
-- ---------------------------------------------------------------------------------------------
create table private.storage_purges (
  id bigint generated always as identity constraint storage_purges_pkey primary key,
  bucket_id text not null constraint storage_purges_bucket_valid check (bucket_id in ('generated-images', 'user-uploads')),
  path text not null,
  user_id uuid,
  reason text not null constraint storage_purges_reason_valid check (reason in ('account_deleted')),
  requested_at timestamptz not null,
  attempts integer not null default 0 constraint storage_purges_attempts_non_negative check (attempts >= 0),
  stalled_attempts integer not null default 0 constraint storage_purges_stalled_attempts_non_negative check (stalled_attempts >= 0),
  next_attempt_at timestamptz not null,
  last_request_id bigint,
  last_request_at timestamptz,
  last_first_name text,
  last_error text,
  done_at timestamptz,
  -- A deleted account's purge empties exactly that user's folder: a uuid and a slash, nothing a
  -- LIKE pattern could read as a wildcard.
  constraint storage_purges_account_folder check (reason <> 'account_deleted' or (user_id is not null and path = user_id::text || '/'))
);
comment on table private.storage_purges is
  'API: Private. Storage objects to remove that no job row stands for: one row per target (a deleted account''s folder in a bucket), until the target is found empty. No foreign key: a row outlives the user.';
comment on column private.storage_purges.bucket_id is 'The bucket: generated-images or user-uploads.';
comment on column private.storage_purges.path is 'account_deleted: the folder <user_id>/ (everything under it goes).';
comment on column private.storage_purges.user_id is 'Whose files these are (the user may no longer exist).';
comment on column private.storage_purges.reason is 'account_deleted: the user''s profile was deleted (auth.admin.deleteUser cascades to it).';
comment on column private.storage_purges.requested_at is 'When the purge was decided.';
comment on column private.storage_purges.attempts is 'Delete requests sent to the Storage API so far.';
comment on column private.storage_purges.stalled_attempts is 'Folders: requests sent since the folder last shrank; the backoff grows with these only, so a big folder that empties 1000 objects a visit is visited every 30 s. (A one-object purge backs off by attempts.)';
comment on column private.storage_purges.last_request_at is 'When the last delete request was queued (to read its answer in net._http_response).';
comment on column private.storage_purges.last_first_name is 'The first object name the last request asked for: another one at the next visit means that request deleted something.';
comment on column private.storage_purges.next_attempt_at is 'When the purge tick looks at this target next (backoff after each request).';
comment on column private.storage_purges.last_request_id is 'The pg_net request id of the last delete request (net._http_response, while pg_net keeps it).';
comment on column private.storage_purges.last_error is 'Why the last visit could not send a request (missing Vault secrets), or how the previous request failed (its answer in net._http_response).';
comment on column private.storage_purges.done_at is 'When the target was found empty.';
alter table private.storage_purges enable row level security;
revoke all on private.storage_purges from public;

-- One open purge per target and reason: a second decision about the same folder joins the first.
create unique index storage_purges_one_open_per_target on private.storage_purges (bucket_id, path, reason) where done_at is null;
-- The tick reads only due rows of one reason.
create index storage_purges_due_idx on private.storage_purges (reason, next_attempt_at) where done_at is null;

insert into private.settings (key, value, description) values
  ('storage.deleted_account_watch_seconds', '3600',
   'How long a deleted account''s folders are watched for late files (its access token works until it expires: set the project''s JWT expiry). A folder found empty before then is looked at again at its end.')
on conflict (key) do nothing;

-- ---------------------------------------------------------------------------------------------
-- A deleted profile leaves a purge of both of its folders
-- ---------------------------------------------------------------------------------------------
-- Security definer: the delete may come from any role (GoTrue's supabase_auth_admin deleting
-- auth.users, whose cascade reaches the profile; an operator deleting the profile), and none of
-- them may write private tables; this trigger is the one door.
create function private.purge_deleted_account()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  at timestamptz := pg_catalog.now();
begin
  insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
  select b.bucket_id, old.id::text || '/', old.id, 'account_deleted', at, at
    from (values ('generated-images'), ('user-uploads')) as b (bucket_id)
  on conflict (bucket_id, path, reason) where done_at is null do nothing;
  return null;
end
$$;
comment on function private.purge_deleted_account() is
  'API: Private. Trigger: a profile was deleted (directly, or by the cascade from auth.users): records the purge of the user''s folders in generated-images and user-uploads.';

create trigger profiles_purge_storage_on_delete after delete on public.profiles
  for each row execute function private.purge_deleted_account();

-- ---------------------------------------------------------------------------------------------
-- The tick's part: one delete request per due folder
-- ---------------------------------------------------------------------------------------------
create function private.purge_account_storage(at timestamptz default now(), max_folders integer default 50)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  purge record;
  names text[];
  request bigint;
  stalled integer;
  -- A deleted user's access token still works until it expires (the project's JWT expiry), so
  -- files may still arrive; a folder found empty before then is looked at again at its end.
  watch interval := pg_catalog.make_interval(secs => private.setting_number('storage.deleted_account_watch_seconds')::double precision);
  sent integer := 0;
begin
  if max_folders is null or max_folders < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_folders must be at least 1, got %s', max_folders), null);
  end if;
  for purge in
    select p.id, p.bucket_id, p.path, p.requested_at, p.stalled_attempts, p.last_request_id, p.last_request_at, p.last_first_name
      from private.storage_purges p
     where p.reason = 'account_deleted' and p.done_at is null and p.next_attempt_at <= at
     order by p.next_attempt_at, p.id
     limit max_folders
       for update skip locked
  loop
    -- The Storage API takes at most 1000 names per request; a bigger folder takes more visits.
    -- The path is a uuid and a slash (storage_purges_account_folder), so the pattern is a plain
    -- prefix, read through the Storage server's name_prefix_search index.
    select array_agg(f.name order by f.name) into names
      from (select o.name from storage.objects o
             where o.bucket_id = purge.bucket_id and o.name like purge.path || '%'
             order by o.name limit 1000) f;
    if names is null then
      update private.storage_purges p
         set done_at = case when at >= purge.requested_at + coalesce(watch, interval '0') then at end,
             next_attempt_at = greatest(at, purge.requested_at + coalesce(watch, interval '0')),
             last_error = null
       where p.id = purge.id;
      continue;
    end if;
    request := private.send_storage_delete(purge.bucket_id, names);
    if request is null then
      update private.storage_purges p
         set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
             next_attempt_at = at + interval '1 minute'
       where p.id = purge.id;
      continue;
    end if;
    -- The backoff counts from the last time the folder shrank: a first name other than the last
    -- request's means that request deleted something.
    stalled := case when purge.last_first_name is distinct from names[1] then 0 else purge.stalled_attempts end;
    update private.storage_purges p
       set attempts = p.attempts + 1,
           stalled_attempts = stalled + 1,
           last_first_name = names[1],
           last_error = private.storage_delete_problem(purge.last_request_id, purge.last_request_at),
           next_attempt_at = at + private.storage_purge_backoff(stalled),
           last_request_id = request,
           last_request_at = at
     where p.id = purge.id;
    sent := sent + 1;
  end loop;
  return sent;
end
$$;
comment on function private.purge_account_storage(timestamptz, integer) is
  'API: Private. Tick: for each due folder of a deleted account (at most max_folders), finishes the purge when the folder is empty and storage.deleted_account_watch_seconds have passed since the deletion, otherwise asks the Storage API (pg_net, service key) to delete up to 1000 of its objects, backing off while the folder does not shrink. Returns the requests sent.';

-- ---------------------------------------------------------------------------------------------
-- Operators: every purge still to do
-- ---------------------------------------------------------------------------------------------
create view private.pending_storage_purges with (security_invoker = true) as
  select 'generated-images'::text as bucket_id, r.user_id::text || '/' || r.job_id::text || '/' as path, r.user_id,
         'job_' || r.reason as reason, r.requested_at, r.attempts, r.next_attempt_at, r.last_request_id, r.last_error
    from private.result_purges r
   where r.done_at is null
  union all
  select p.bucket_id, p.path, p.user_id, p.reason, p.requested_at, p.attempts, p.next_attempt_at, p.last_request_id, p.last_error
    from private.storage_purges p
   where p.done_at is null;
comment on view private.pending_storage_purges is
  'API: Private. Operators: Storage deletions not finished yet, one row per target: a job''s results (job_deleted, job_expired: the folder <user_id>/<job_id>/), a deleted account''s folder (account_deleted); later migrations add expired uploads. attempts counts requests sent; last_error says why none could be sent (missing Vault secrets) or how the previous request failed.';

-- ---------------------------------------------------------------------------------------------
-- The scheduled job runs it after the result purges
-- ---------------------------------------------------------------------------------------------
create or replace function private.results_retention_tick(at timestamptz default now())
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform private.expire_results(at);
  perform private.purge_results(at);
  perform private.purge_account_storage(at);
end
$$;
comment on function private.results_retention_tick(timestamptz) is
  'API: Private. The scheduled job: expire results past retention, purge what is due, empty the folders of deleted accounts.';

update private.ticks
   set description = 'Expires stored results past their plan''s retention and purges them, and the Storage folders of deleted accounts, through the Storage API.'
 where name = 'kiln-results-retention';

select private.pin_search_paths();
