-- Why: a Storage delete that keeps failing (a rotated service key answers 403 to every request,
-- the Vault secrets are gone, Storage is down, pg_net is stuck) only made each purge back off, up
-- to every 50 minutes, with the reason in its last_error. Nobody was told, and deleted accounts,
-- deleted generations and expired uploads stayed in Storage.
--
-- - Each purge records since when its visits fail (failing_since, kept with last_error).
-- - A request that got no answer now counts as failed (still queued, or lost), where it used to
--   read as a success. pg_net's answers are kept at least an hour
--   (housekeeping.net_response_retention_seconds), longer than the 50-minute backoff.
-- - The retention tick raises one alert, storage_purge_failing, while any unfinished purge has
--   been failing for over storage.purge_alert_after_seconds (15 minutes), and clears it when none
--   is. One failed visit of a long purge raises nothing.

insert into private.settings (key, value, description) values
  ('storage.purge_alert_after_seconds', '900',
   'Seconds a Storage purge (results, a deleted account''s folder, an expired upload) may stay unfinished with a failed last visit before the storage_purge_failing alert is raised. A whole number from 60 to 604800.')
on conflict (key) do nothing;

-- The storage settings' validation, with the new key, and pg_net's answers kept long enough for
-- the purges to read them.
create or replace function private.check_storage_setting()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  -- uploads.retention_days: 1 day to 10 years; storage.deleted_account_watch_seconds: up to a
  -- week, GoTrue's longest JWT expiry; storage.purge_alert_after_seconds: a minute to a week;
  -- housekeeping.net_response_retention_seconds: an hour (longer than the purges' 50-minute
  -- backoff plus a tick) to a week.
  low numeric := case new.key when 'uploads.retention_days' then 1
                              when 'storage.purge_alert_after_seconds' then 60
                              when 'housekeeping.net_response_retention_seconds' then 3600
                              else 0 end;
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
  'API: Private. Trigger: refuses (KL053) a value that is not a whole number within its bounds: uploads.retention_days 1 to 3650, storage.deleted_account_watch_seconds 0 to 604800, storage.purge_alert_after_seconds 60 to 604800, housekeeping.net_response_retention_seconds 3600 to 604800.';

drop trigger settings_storage_values_valid on private.settings;
create trigger settings_storage_values_valid before insert or update on private.settings
  for each row when (new.key in ('uploads.retention_days', 'storage.deleted_account_watch_seconds', 'storage.purge_alert_after_seconds',
                                 'housekeeping.net_response_retention_seconds'))
  execute function private.check_storage_setting();

-- What went wrong with an earlier delete request, read from pg_net: its answer (an error, a
-- timeout, a non-2xx status, a 2xx that deleted nothing), or no answer at all. The first answer
-- after the request was sent is read: pg_net's ids restart after a crash, so an earlier answer
-- under the id is another request's (a later one may be too, for as long as that lasts). An answer
-- older than pg_net's answer retention may already be deleted: unknown, not a failure.
create or replace function private.storage_delete_problem(request_id bigint, sent_at timestamptz)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case
           when request_id is null then null
           when h.id is null then
             case when exists (select from net.http_request_queue q where q.id = request_id)
                    then 'the last delete request is still waiting in pg_net''s queue'
                  when sent_at < pg_catalog.now() - pg_catalog.make_interval(
                         secs => coalesce(private.setting_number('housekeeping.net_response_retention_seconds'), 3600)::double precision)
                    then null
                  else 'the last delete request got no answer (pg_net lost it)' end
           when h.timed_out or h.error_msg is not null then
             pg_catalog.format('the last delete request failed: %s', pg_catalog.left(coalesce(h.error_msg, 'timed out'), 200))
           when h.status_code not between 200 and 299 then
             pg_catalog.format('the Storage API answered the last delete request with %s: %s', h.status_code, pg_catalog.left(h.content, 200))
           -- The API leaves out, with a 200, every name the key may not delete: with the anon
           -- key in service_role_key nothing would ever go, and nothing else would say so.
           when h.content ~ '^\s*\[\s*\]\s*$' then
             'the Storage API deleted none of the names it was sent (is service_role_key the service_role key?)'
         end
    from (select) one
    left join lateral (select r.id, r.timed_out, r.error_msg, r.status_code, r.content
                         from net._http_response r
                        where r.id = request_id and r.created >= sent_at - interval '1 second'
                        order by r.created
                        limit 1) h on true
$$;
comment on function private.storage_delete_problem(bigint, timestamptz) is
  'API: Private. Why a Storage delete request sent at sent_at failed (an error, a timeout, a non-2xx answer, a 2xx that deleted none of the names, from net._http_response; or no answer: still queued, or lost), or null when it succeeded, none was sent, or its answer is older than pg_net''s answer retention.';

comment on column private.result_purges.last_error is
  'Why the last visit could not send a request (missing Vault secrets), or how the previous request failed or that it got no answer (from net._http_response and pg_net''s queue).';
comment on column private.storage_purges.last_error is
  'Why the last visit could not send a request (missing Vault secrets), or how the previous request failed or that it got no answer (from net._http_response and pg_net''s queue).';

-- Since when a purge's visits fail, kept by a trigger so that every place that sets last_error
-- (the three purge functions, the missing-secrets path) keeps it without knowing about it.
alter table private.result_purges add column failing_since timestamptz;
alter table private.storage_purges add column failing_since timestamptz;
comment on column private.result_purges.failing_since is 'Since when the visits fail: set when last_error is set, cleared with it.';
comment on column private.storage_purges.failing_since is 'Since when the visits fail: set when last_error is set, cleared with it.';
update private.result_purges set failing_since = now() where done_at is null and last_error is not null;
update private.storage_purges set failing_since = now() where done_at is null and last_error is not null;

-- An audit time, like updated_at: the time of the visit that set last_error (a tick passes now()).
create function private.track_purge_failing_since()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  new.failing_since := case when new.last_error is null then null
                            when tg_op = 'UPDATE' and old.last_error is not null then old.failing_since
                            else pg_catalog.now() end;
  return new;
end
$$;
comment on function private.track_purge_failing_since() is
  'API: Private. Trigger on private.result_purges and private.storage_purges: failing_since is when last_error was set after a visit without one, null while last_error is null.';

create trigger result_purges_failing_since before insert or update of last_error on private.result_purges
  for each row execute function private.track_purge_failing_since();
create trigger storage_purges_failing_since before insert or update of last_error on private.storage_purges
  for each row execute function private.track_purge_failing_since();
comment on trigger result_purges_failing_since on private.result_purges is 'Keeps failing_since with last_error.';
comment on trigger storage_purges_failing_since on private.storage_purges is 'Keeps failing_since with last_error.';

-- The operators' view, with both new facts at the end.
create or replace view private.pending_storage_purges with (security_invoker = true) as
  select 'generated-images'::text as bucket_id, r.user_id::text || '/' || r.job_id::text || '/' as path, r.user_id,
         'job_' || r.reason as reason, r.requested_at, r.attempts, r.next_attempt_at, r.last_request_id, r.last_error,
         r.last_request_at, r.failing_since
    from private.result_purges r
   where r.done_at is null
  union all
  select p.bucket_id, p.path, p.user_id, p.reason, p.requested_at, p.attempts, p.next_attempt_at, p.last_request_id, p.last_error,
         p.last_request_at, p.failing_since
    from private.storage_purges p
   where p.done_at is null;
comment on view private.pending_storage_purges is
  'API: Private. Operators: Storage deletions not finished yet, one row per target: a job''s results (job_deleted, job_expired: the folder <user_id>/<job_id>/), a deleted account''s folder (account_deleted), an expired upload (upload_expired). attempts counts requests sent; last_error says why none could be sent (missing Vault secrets) or how the previous request failed, and failing_since since when the visits fail.';

-- The purges failing at `at` for longer than the setting (15 minutes when it is missing: deleting
-- the setting must not silence the alert).
create function private.failing_storage_purges(at timestamptz default now())
returns table (purges integer, failing_since timestamptz, last_error text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select pg_catalog.count(*)::integer, pg_catalog.min(p.failing_since),
         (pg_catalog.array_agg(p.last_error order by coalesce(p.last_request_at, p.failing_since) desc))[1]
    from private.pending_storage_purges p
   where p.failing_since < at - pg_catalog.make_interval(
           secs => (select coalesce(private.setting_number('storage.purge_alert_after_seconds'), 900))::double precision)
$$;
comment on function private.failing_storage_purges(timestamptz) is
  'API: Private. Operators: how many unfinished Storage purges have been failing for longer than storage.purge_alert_after_seconds (900 when unset), since when the first of them, and the error of the one that sent its last request latest.';

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
              pg_catalog.format('Storage deletes are failing: %s purge(s), failing since %s; last error: %s',
                failing.purges, failing.failing_since, pg_catalog.left(failing.last_error, 200)),
              false,
              pg_catalog.jsonb_build_object('purges', failing.purges, 'failing_since', failing.failing_since,
                                            'last_error', failing.last_error, 'see', 'private.pending_storage_purges'),
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
