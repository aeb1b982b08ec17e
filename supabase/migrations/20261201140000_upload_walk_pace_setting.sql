-- Why: the retention tick walked user-uploads at a fixed 1000 names a minute, so a bucket of a
-- million uploads took about 17 hours a pass, and that is how late a photo could outlive its
-- retention. Walking faster meant scheduling a pg_cron job of one's own.
--
-- - uploads.walk_per_run (1000) is how many names each run of the walk reads. The tick's runs and
--   a call without max_objects use it. Its values are checked with every other setting's, in the
--   next migration (100 to 20000: with 200,000 uploads, a fifth of them expired, a run of 20,000
--   takes about a second).
-- - A call with max_objects (an operator's own job) still reads exactly that many.

insert into private.settings (key, value, description) values
  ('uploads.walk_per_run', '1000',
   'How many user-uploads names the retention tick reads per run (once a minute) looking for expired uploads: a pass over N uploads takes N / walk_per_run minutes. A whole number from 100 to 20000.')
on conflict (key) do nothing;

-- max_objects now defaults to null, read as the setting (1000 while the row is missing).
create or replace function private.expire_uploads(at timestamptz default now(), max_objects integer default null)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  batch integer := coalesce(max_objects, private.setting_number('uploads.walk_per_run')::integer, 1000);
  cursor_name text;
  started timestamptz;
  read_count integer;
  last_name text;
  queued integer;
begin
  if batch < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_objects must be at least 1, got %s', batch), null);
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
  -- cursor, stopping after batch entries.
  with slice as (
    select o.name
      from storage.objects o
     where o.bucket_id = 'user-uploads' and o.name > coalesce(cursor_name, '')
     order by o.name
     limit batch
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
  if read_count < batch then
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
  'API: Private. Tick: reads the next max_objects uploads of user-uploads (by default uploads.walk_per_run, 1000 when unset) in name order, from where the last run stopped and wrapping at the end, and records a purge for each one that is expired (private.expired_uploads). Returns how many purges it recorded.';

select private.pin_search_paths();
