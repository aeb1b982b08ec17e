-- Why: a Storage delete that keeps failing (a rotated service key answers 403 to every request,
-- the Vault secrets are gone, Storage is down) only made each purge back off, up to every 50
-- minutes, with the reason in its last_error. Nobody was told, and deleted accounts, deleted
-- generations and expired uploads stayed in Storage. The retention tick now raises one alert,
-- storage_purge_failing, while any unfinished purge has been open for more than
-- storage.purge_alert_after_seconds (15 minutes) and its last visit failed. The alert names how
-- many and the newest reason. A run that finds none clears it.

insert into private.settings (key, value, description) values
  ('storage.purge_alert_after_seconds', '900',
   'Seconds a Storage purge (results, a deleted account''s folder, an expired upload) may stay unfinished with a failed last visit before the storage_purge_failing alert is raised. A whole number from 60 to 604800.')
on conflict (key) do nothing;

-- The storage settings' validation, with the new key.
create or replace function private.check_storage_setting()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  -- uploads.retention_days: 1 day to 10 years; storage.deleted_account_watch_seconds: up to a
  -- week, GoTrue's longest JWT expiry; storage.purge_alert_after_seconds: a minute to a week.
  low numeric := case new.key when 'uploads.retention_days' then 1 when 'storage.purge_alert_after_seconds' then 60 else 0 end;
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
  'API: Private. Trigger: refuses (KL053) a value of uploads.retention_days that is not a whole number from 1 to 3650, of storage.deleted_account_watch_seconds that is not one from 0 to 604800, or of storage.purge_alert_after_seconds that is not one from 60 to 604800.';

drop trigger settings_storage_values_valid on private.settings;
create trigger settings_storage_values_valid before insert or update on private.settings
  for each row when (new.key in ('uploads.retention_days', 'storage.deleted_account_watch_seconds', 'storage.purge_alert_after_seconds'))
  execute function private.check_storage_setting();

-- The purges that are failing at `at`: unfinished, open longer than the setting, last visit failed.
create function private.failing_storage_purges(at timestamptz default now())
returns table (purges integer, oldest_requested_at timestamptz, newest_error text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select pg_catalog.count(*)::integer, pg_catalog.min(p.requested_at),
         (pg_catalog.array_agg(p.last_error order by p.next_attempt_at desc))[1]
    from private.pending_storage_purges p
   where p.last_error is not null
     and p.requested_at < at - pg_catalog.make_interval(secs => private.setting_number('storage.purge_alert_after_seconds')::double precision)
$$;
comment on function private.failing_storage_purges(timestamptz) is
  'API: Private. Operators: how many unfinished Storage purges have been open longer than storage.purge_alert_after_seconds with a failed last visit (last_error), the oldest request time, and the reason of the one visited last.';

create or replace function private.results_retention_tick(at timestamptz default now())
returns void
language plpgsql volatile
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
  foreach part in array array['expire_results', 'purge_results', 'purge_account_storage', 'expire_uploads', 'purge_expired_uploads',
                              'failing_storage_purges'] loop
    begin
      case part
        when 'expire_results' then perform private.expire_results(at);
        when 'purge_results' then perform private.purge_results(at);
        when 'purge_account_storage' then perform private.purge_account_storage(at);
        when 'expire_uploads' then perform private.expire_uploads(at);
        when 'purge_expired_uploads' then perform private.purge_expired_uploads(at);
        when 'failing_storage_purges' then
          -- Each purge only backs off on its own; one alert says that deletes keep failing.
          select * into failing from private.failing_storage_purges(at);
          if failing.purges > 0 then
            perform private.raise_alert('storage_purge_failing',
              pg_catalog.format('Storage deletes are failing: %s purge(s) unfinished, the oldest since %s; last error: %s',
                failing.purges, failing.oldest_requested_at, pg_catalog.left(failing.newest_error, 200)),
              false,
              pg_catalog.jsonb_build_object('purges', failing.purges, 'oldest_requested_at', failing.oldest_requested_at,
                                            'last_error', failing.newest_error, 'see', 'private.pending_storage_purges'),
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
comment on function private.results_retention_tick(timestamptz) is
  'API: Private. The scheduled job: expire results past retention and purge what is due, empty the folders of deleted accounts, find expired uploads and delete them, and raise storage_purge_failing while purges keep failing (cleared when none do). The parts that fail are named in the retention_error alert (details.parts) while the others run; a run where every part ran clears it.';

comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error, retention_error, storage_purge_failing). Active while cleared_at is null; clear with private.clear_alert(key).';

select private.pin_search_paths();
