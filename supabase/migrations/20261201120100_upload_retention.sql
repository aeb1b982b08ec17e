-- Why: input photos in user-uploads were kept forever. An upload is needed only until the jobs
-- that read it have been sent and finished (KIE fetches it while the task runs), so uploads
-- older than uploads.retention_days (default 7) are now deleted, except one that an unfinished
-- job (pending or generating) lists in input_image_urls. The decision is a durable purge row
-- per object, and the retention tick asks the Storage API to delete the due ones, with the same
-- backoff and "done only when it is found gone" rule as the other purges.
--
-- Finding old uploads: storage.objects has no index on its timestamps, and the platform does
-- not let a migration add one (the Storage server owns the table). The tick walks the bucket in
-- name order through the (bucket_id, name) unique index, at most max_objects index entries per
-- run from where the previous run stopped, so a run costs the same however many uploads are
-- kept; a full pass over N uploads takes N / max_objects runs (1,000,000 uploads: about 17
-- hours at 1000 a minute), which is how much later than its retention an upload may go.

-- ---------------------------------------------------------------------------------------------
-- The setting, validated when written (with the deleted accounts' watch)
-- ---------------------------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('uploads.retention_days', '7',
   'Days an input photo in user-uploads is kept after it was uploaded (or last replaced); then it is deleted, unless an unfinished job lists it. A whole number from 1 to 3650.')
on conflict (key) do nothing;

create function private.check_storage_setting()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  -- uploads.retention_days: 1 day to 10 years; storage.deleted_account_watch_seconds: up to a
  -- week, GoTrue's longest JWT expiry.
  low numeric := case new.key when 'uploads.retention_days' then 1 else 0 end;
  high numeric := case new.key when 'uploads.retention_days' then 3650 else 604800 end;
begin
  if pg_catalog.jsonb_typeof(new.value) is distinct from 'number'
     or (new.value #>> '{}')::numeric not between low and high
     or (new.value #>> '{}')::numeric <> pg_catalog.trunc((new.value #>> '{}')::numeric) then
    perform private.raise_error('KL053', 'invalid setting',
      pg_catalog.format('%s must be a whole number from %s to %s, got %s', new.key, low, high, pg_catalog.left(new.value::text, 100)), null);
  end if;
  return new;
end
$$;
comment on function private.check_storage_setting() is
  'API: Private. Trigger: refuses (KL053) a value of uploads.retention_days that is not a whole number from 1 to 3650, or of storage.deleted_account_watch_seconds that is not one from 0 to 604800.';

create trigger settings_storage_values_valid before insert or update on private.settings
  for each row when (new.key in ('uploads.retention_days', 'storage.deleted_account_watch_seconds'))
  execute function private.check_storage_setting();

-- ---------------------------------------------------------------------------------------------
-- Which uploads unfinished jobs still need
-- ---------------------------------------------------------------------------------------------
-- %XX escapes decoded to bytes; any other character kept as its UTF-8 bytes.
create function private.percent_decode(encoded text)
returns bytea
language sql immutable strict
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(pg_catalog.string_agg(
           case when m[1] is not null then pg_catalog.decode(pg_catalog.substr(m[1], 2), 'hex') else pg_catalog.convert_to(m[2], 'UTF8') end,
           ''::bytea order by n), ''::bytea)
    from pg_catalog.regexp_matches(encoded, '(%[0-9A-Fa-f]{2})|([^%]+|%)', 'g') with ordinality as r (m, n)
$$;
comment on function private.percent_decode(text) is
  'API: Private. The bytes a percent-encoded string stands for (%XX decoded, everything else as UTF-8).';

-- What follows the first /user-uploads/ in the URL's path (a signed, public or authenticated
-- Storage URL of the bucket), still percent-encoded; null when the path has none.
create function private.upload_path_in_url(url text)
returns text
language sql immutable strict
set search_path = pg_catalog, pg_temp
as $$
  select pg_catalog.substring(p.path, '/user-uploads/(.*)$')
    from (select pg_catalog.substring(pg_catalog.regexp_replace(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '^[^?#]*') as path) p
$$;
comment on function private.upload_path_in_url(text) is
  'API: Private. The user-uploads object path in a Storage URL (after /user-uploads/, before ? or #), not decoded; null if the URL names none.';

-- Object names as UTF-8 bytes, compared for equality only (no LIKE: a name may hold % or _).
-- Both the decoded path and the path as written count, so a name with a literal % is matched
-- either way. Only a path in the job owner's own folder counts: a job cannot keep another
-- user's upload alive. Reads the unfinished jobs through generation_jobs_user_active_idx
-- (partial on pending/generating), so it costs the active jobs, not the job history.
create function private.upload_keys_in_use()
returns setof bytea
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select k.key
    from public.generation_jobs j
   cross join lateral pg_catalog.unnest(j.input_image_urls) as u (url)
   cross join lateral (select private.upload_path_in_url(u.url) as path) p
   cross join lateral (values (private.percent_decode(p.path)), (pg_catalog.convert_to(p.path, 'UTF8'))) as k (key)
   where j.status in ('pending', 'generating') and p.path is not null
     -- Compared as bytes: a decoded %FF is no UTF-8, and converting it would fail the tick.
     and pg_catalog.substr(k.key, 1, 37) = pg_catalog.convert_to(j.user_id::text || '/', 'UTF8')
$$;
comment on function private.upload_keys_in_use() is
  'API: Private. The user-uploads object names (UTF-8 bytes, decoded and as written) that pending or generating jobs list in input_image_urls, each in its job owner''s folder.';

-- Of these names, the uploads that are expired at `at`: older than uploads.retention_days
-- (counted from the last write: created_at, or updated_at once replaced) and not in use.
create function private.expired_uploads(names text[], at timestamptz)
returns setof text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select o.name
    from storage.objects o
   where o.bucket_id = 'user-uploads' and o.name = any (names)
     and greatest(o.created_at, o.updated_at)
           < at - private.setting_number('uploads.retention_days') * interval '1 day'
     and not (pg_catalog.convert_to(o.name, 'UTF8') = any (array(select private.upload_keys_in_use())))
$$;
comment on function private.expired_uploads(text[], timestamptz) is
  'API: Private. Which of these user-uploads objects are expired at that time: last written more than uploads.retention_days ago and listed by no pending or generating job. None while the setting is missing.';

-- ---------------------------------------------------------------------------------------------
-- Purge rows for single uploads
-- ---------------------------------------------------------------------------------------------
alter table private.storage_purges drop constraint storage_purges_reason_valid;
alter table private.storage_purges add constraint storage_purges_reason_valid check (reason in ('account_deleted', 'upload_expired'));
alter table private.storage_purges add constraint storage_purges_upload_object
  check (reason <> 'upload_expired' or (bucket_id = 'user-uploads' and path <> ''));
comment on table private.storage_purges is
  'API: Private. Storage objects to remove that no job row stands for: one row per target (a deleted account''s folder in a bucket, or one expired upload), until the target is found empty or gone. No foreign key: a row outlives the user.';
comment on column private.storage_purges.path is
  'account_deleted: the folder <user_id>/ (everything under it goes). upload_expired: the exact object name in user-uploads.';
comment on column private.storage_purges.reason is
  'account_deleted: the user''s profile was deleted (auth.admin.deleteUser cascades to it). upload_expired: an input photo past uploads.retention_days that no unfinished job lists.';
comment on view private.pending_storage_purges is
  'API: Private. Operators: Storage deletions not finished yet, one row per target: a job''s results (job_deleted, job_expired: the folder <user_id>/<job_id>/), a deleted account''s folder (account_deleted), an expired upload (upload_expired). attempts counts requests sent; last_error says why none could be sent (missing Vault secrets) or how the previous request failed.';
-- Finished upload purges are forgotten after a while (there is one per upload).
create index storage_purges_done_idx on private.storage_purges (done_at) where done_at is not null;

-- Where the walk over the bucket stopped.
create table private.upload_sweep (
  id boolean not null default true constraint upload_sweep_pkey primary key constraint upload_sweep_one_row check (id),
  after_name text,
  pass_started_at timestamptz,
  last_pass_finished_at timestamptz
);
comment on table private.upload_sweep is
  'API: Private. The walk over user-uploads that finds expired uploads: one row, where the last run stopped.';
comment on column private.upload_sweep.id is 'Always true: the table has one row.';
comment on column private.upload_sweep.after_name is 'The last object name read; the next run reads the names after it (null: from the first).';
comment on column private.upload_sweep.pass_started_at is 'When the current pass over the bucket started.';
comment on column private.upload_sweep.last_pass_finished_at is 'When the last complete pass over the bucket ended.';
alter table private.upload_sweep enable row level security;
revoke all on private.upload_sweep from public;
insert into private.upload_sweep (id) values (true);

-- ---------------------------------------------------------------------------------------------
-- The tick's parts: find expired uploads, then delete the due ones
-- ---------------------------------------------------------------------------------------------
create function private.expire_uploads(at timestamptz default now(), max_objects integer default 1000)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  cursor_name text;
  started timestamptz;
  read_count integer;
  last_name text;
  queued integer;
begin
  if max_objects is null or max_objects < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_objects must be at least 1, got %s', max_objects), null);
  end if;
  if private.setting('uploads.retention_days') is null then
    return 0;
  end if;
  -- One walker at a time; a run that finds it taken leaves the walk to the other.
  select s.after_name, s.pass_started_at into cursor_name, started from private.upload_sweep s for update skip locked;
  if not found then
    return 0;
  end if;
  -- An index range scan of objects_bucket_id_name_key (hosted: bucketid_objname) from the
  -- cursor, stopping after max_objects entries.
  with slice as (
    select o.name
      from storage.objects o
     where o.bucket_id = 'user-uploads' and o.name > coalesce(cursor_name, '')
     order by o.name
     limit max_objects
  ), queued_rows as (
    insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
    select 'user-uploads', e.name,
           case when pg_catalog.split_part(e.name, '/', 1) ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                then pg_catalog.split_part(e.name, '/', 1)::uuid end,
           'upload_expired', at, at
      from private.expired_uploads(array(select s.name from slice s), at) e (name)
    on conflict (bucket_id, path, reason) where done_at is null do nothing
    returning 1
  )
  select (select count(*) from slice), (select max(s.name) from slice s), (select count(*) from queued_rows)
    into read_count, last_name, queued;
  if read_count < max_objects then
    -- The end of the bucket: the next run starts a new pass.
    update private.upload_sweep s
       set after_name = null, pass_started_at = null, last_pass_finished_at = at
     where s.id;
  else
    update private.upload_sweep s
       set after_name = last_name, pass_started_at = coalesce(started, at)
     where s.id;
  end if;
  return queued;
end
$$;
comment on function private.expire_uploads(timestamptz, integer) is
  'API: Private. Tick: reads the next max_objects uploads of user-uploads in name order (from where the last run stopped, wrapping at the end) and records a purge for each one that is expired (private.expired_uploads). Returns how many purges it recorded.';

create function private.purge_expired_uploads(at timestamptz default now(), max_objects integer default 1000)
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
  'API: Private. Tick: for the due upload purges (at most max_objects, at most 1000), finishes those whose object is gone, drops those no longer expired, and asks the Storage API (pg_net, service key) to delete the rest in one request. Returns the requests sent (0 or 1).';

create or replace function private.results_retention_tick(at timestamptz default now())
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  part text;
  problem text;
  failures jsonb := '[]';
begin
  -- Each part in its own subtransaction: one that fails (a row or a setting it cannot read)
  -- rolls back only its own work, and the others still run, this minute and every next one.
  foreach part in array array['expire_results', 'purge_results', 'purge_account_storage', 'expire_uploads', 'purge_expired_uploads'] loop
    begin
      case part
        when 'expire_results' then perform private.expire_results(at);
        when 'purge_results' then perform private.purge_results(at);
        when 'purge_account_storage' then perform private.purge_account_storage(at);
        when 'expire_uploads' then perform private.expire_uploads(at);
        when 'purge_expired_uploads' then perform private.purge_expired_uploads(at);
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
comment on function private.results_retention_tick(timestamptz) is
  'API: Private. The scheduled job: expire results past retention and purge what is due, empty the folders of deleted accounts, find expired uploads and delete them. The parts that fail are named in the retention_error alert (details.parts) while the others run; a run where every part ran clears it.';

comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error, retention_error). Active while cleared_at is null; clear with private.clear_alert(key).';

update private.ticks
   set description = 'Expires stored results past their plan''s retention and input uploads past uploads.retention_days, and deletes them and the Storage folders of deleted accounts through the Storage API.'
 where name = 'kiln-results-retention';

select private.pin_search_paths();
