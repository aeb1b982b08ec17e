-- Storage deletes that keep failing raise one operator alert, storage_purge_failing: an
-- unfinished purge of any kind, open longer than storage.purge_alert_after_seconds (15 minutes),
-- whose last visit failed. A retention run that finds none clears it. The setting is validated
-- like the other storage settings (KL053).
begin;
select plan(13);
\ir storage_purge_fixture.sql
delete from private.alerts where key = 'storage_purge_failing';

select is(private.setting('storage.purge_alert_after_seconds'), '900'::jsonb, 'the alert waits 15 minutes by default');

-- Not due again (next_attempt_at in the future), so the retention runs below only look at them.
select tests.create_supabase_user('pf_owner') as owner \gset
select pg_temp.job_listing('pf_owner', 'failed', '{}') as job \gset
insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at, attempts, last_error)
values (:'job', :'owner', 'deleted', now() - interval '20 minutes', now() + interval '1 hour', 4, null);
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at, last_error)
values ('user-uploads', :'owner' || '/young.png', :'owner', 'upload_expired', now() - interval '5 minutes', now() + interval '1 hour',
        'the Storage API answered 503');
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
select 'generated-images', gone.id::text || '/', gone.id, 'account_deleted', now() - interval '2 hours', now() + interval '1 hour'
  from (select gen_random_uuid() as id) gone;

select is((select purges from private.failing_storage_purges(now())), 0,
  'open for long without an error, or failing for less than the setting: not failing');
select private.results_retention_tick(now());
select is((select count(*)::int from private.alerts where key = 'storage_purge_failing'), 0, 'so no alert');

-- The account purge's last request was answered 403 (a rotated service key).
update private.storage_purges set last_error = 'the Storage API answered 403: {"statusCode":"403","error":"Unauthorized"}'
 where reason = 'account_deleted' and done_at is null;
select is((select purges from private.failing_storage_purges(now())), 1, 'open two hours, its last visit failed: failing');
select private.results_retention_tick(now());
select is((select message from private.alerts where key = 'storage_purge_failing' and cleared_at is null),
  format('Storage deletes are failing: 1 purge(s) unfinished, the oldest since %s; last error: the Storage API answered 403: {"statusCode":"403","error":"Unauthorized"}',
         (select requested_at from private.storage_purges where reason = 'account_deleted' and done_at is null)),
  'the retention run raises the alert: how many, since when, and the last error');
select is((select details ->> 'see' from private.alerts where key = 'storage_purge_failing'), 'private.pending_storage_purges',
  'and points at the view that lists them');
select is((select pauses_dispatch from private.alerts where key = 'storage_purge_failing'), false, 'it does not hold dispatch');

-- A job's results purge failing too: both count; the newest visit's error is named.
update private.result_purges set last_error = 'no answer from the Storage API within 30 s', next_attempt_at = now() + interval '2 hours'
 where job_id = :'job';
select private.results_retention_tick(now());
select is((select (details ->> 'purges')::int from private.alerts where key = 'storage_purge_failing'), 2, 'results and folder purges both count');
select is((select details ->> 'last_error' from private.alerts where key = 'storage_purge_failing'),
  'no answer from the Storage API within 30 s', 'the error of the purge visited last is named');

-- Requests go through again: the next run clears it.
update private.result_purges set last_error = null where job_id = :'job';
update private.storage_purges set last_error = null where done_at is null;
select private.results_retention_tick(now());
select isnt((select cleared_at from private.alerts where key = 'storage_purge_failing'), null, 'a run that finds no failing purge clears it');

-- The setting: a whole number of seconds from 60 to a week.
select throws_ok($$ update private.settings set value = '59' where key = 'storage.purge_alert_after_seconds' $$, 'KL053', 'invalid setting',
  'under a minute is refused');
select throws_ok($$ update private.settings set value = '"900"' where key = 'storage.purge_alert_after_seconds' $$, 'KL053', 'invalid setting',
  'so is a string');
select lives_ok($$ update private.settings set value = '604800' where key = 'storage.purge_alert_after_seconds' $$, 'a week is accepted');

select * from finish();
rollback;
