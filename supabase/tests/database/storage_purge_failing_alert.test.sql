-- Storage deletes that keep failing raise one operator alert, storage_purge_failing: an
-- unfinished purge of any kind whose visits have been failing (failing_since, kept with
-- last_error) for longer than storage.purge_alert_after_seconds (15 minutes). One failed visit of
-- a long purge raises nothing; a run that finds none clears it. The setting is validated like the
-- other storage settings (KL053), and a missing one counts as 15 minutes; pg_net's answers are
-- kept long enough for the purges to read them.
begin;
select plan(19);
\ir storage_purge_fixture.sql
delete from private.alerts where key = 'storage_purge_failing';

select is(private.setting('storage.purge_alert_after_seconds'), '900'::jsonb, 'the alert waits 15 minutes by default');

-- failing_since follows last_error.
select tests.create_supabase_user('pf_owner') as owner \gset
select pg_temp.job_listing('pf_owner', 'failed', '{}') as job \gset
insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at, attempts)
values (:'job', :'owner', 'deleted', now() - interval '20 minutes', now() + interval '1 hour', 4);
select is((select failing_since from private.result_purges where job_id = :'job'), null, 'no error: not failing');
update private.result_purges set last_error = 'the Storage API answered the last delete request with 503: busy' where job_id = :'job';
select is((select failing_since from private.result_purges where job_id = :'job'), now(), 'an error after none: failing since this visit');
update private.result_purges set failing_since = now() - interval '3 minutes' where job_id = :'job';
update private.result_purges set last_error = 'the last delete request failed: timed out' where job_id = :'job';
select is((select failing_since from private.result_purges where job_id = :'job'), now() - interval '3 minutes',
  'another error: still failing since the first');
update private.result_purges set last_error = null where job_id = :'job';
select is((select failing_since from private.result_purges where job_id = :'job'), null, 'a visit without an error ends it');

-- Not due again (next_attempt_at in the future), so the retention runs below only look at them.
-- An account's folder, watched for two hours, whose last visit failed once; an upload failing
-- for five minutes.
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
select 'generated-images', gone.id::text || '/', gone.id, 'account_deleted', now() - interval '2 hours', now() + interval '1 hour'
  from (select gen_random_uuid() as id) gone;
update private.storage_purges set last_error = 'the Storage API answered the last delete request with 504: gateway timeout'
 where reason = 'account_deleted' and done_at is null;
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at, last_error)
values ('user-uploads', :'owner' || '/young.png', :'owner', 'upload_expired', now() - interval '5 minutes', now() + interval '1 hour',
        'the Storage API answered the last delete request with 503: busy');
update private.storage_purges set failing_since = now() - interval '5 minutes' where reason = 'upload_expired' and done_at is null;

select is((select purges from private.failing_storage_purges(now())), 0,
  'one failed visit of an old purge, and failures younger than the setting: not failing');
select private.results_retention_tick(now());
select is((select count(*)::int from private.alerts where key = 'storage_purge_failing'), 0, 'so no alert');

-- The account purge's requests have been refused for 20 minutes (a rotated service key).
update private.storage_purges
   set last_request_at = now() - interval '1 minute',
       last_error = 'the Storage API answered the last delete request with 403: {"statusCode":"403","error":"Unauthorized"}'
 where reason = 'account_deleted' and done_at is null;
update private.storage_purges set failing_since = now() - interval '20 minutes' where reason = 'account_deleted' and done_at is null;
select is((select purges from private.failing_storage_purges(now())), 1, 'failing for 20 minutes: failing');
select private.results_retention_tick(now());
select is((select message from private.alerts where key = 'storage_purge_failing' and cleared_at is null),
  format('Storage deletes are failing: 1 purge(s), failing since %s; last error: the Storage API answered the last delete request with 403: {"statusCode":"403","error":"Unauthorized"}',
         now() - interval '20 minutes'),
  'the retention run raises the alert: how many, since when, and the error');
select is((select details ->> 'see' from private.alerts where key = 'storage_purge_failing'), 'private.pending_storage_purges',
  'and points at the view that lists them');
select is((select pauses_dispatch from private.alerts where key = 'storage_purge_failing'), false, 'it does not hold dispatch');

-- The job's results purge fails too, its last request sent later: both count, its error is named.
update private.result_purges
   set last_error = 'the last delete request failed: timed out', last_request_at = now() - interval '10 seconds'
 where job_id = :'job';
update private.result_purges set failing_since = now() - interval '30 minutes' where job_id = :'job';
select private.results_retention_tick(now());
select results_eq(
  $$ select (details ->> 'purges')::int, details ->> 'last_error', (details ->> 'failing_since')::timestamptz
       from private.alerts where key = 'storage_purge_failing' $$,
  $$ values (2, 'the last delete request failed: timed out', now() - interval '30 minutes') $$,
  'results and folder purges both count; the error of the latest request, the earliest start of failure');

-- Without the setting row, 15 minutes still apply: deleting it does not silence the alert.
delete from private.settings where key = 'storage.purge_alert_after_seconds';
select is((select purges from private.failing_storage_purges(now())), 2, 'a missing setting counts as 15 minutes');

-- Requests go through again: the next run clears it.
update private.result_purges set last_error = null where job_id = :'job';
update private.storage_purges set last_error = null where done_at is null;
select private.results_retention_tick(now());
select isnt((select cleared_at from private.alerts where key = 'storage_purge_failing'), null, 'a run that finds no failing purge clears it');

-- The setting: a whole number of seconds from 60 to a week.
insert into private.settings (key, value, description) values ('storage.purge_alert_after_seconds', '900', 'test');
select throws_ok($$ update private.settings set value = '59' where key = 'storage.purge_alert_after_seconds' $$, 'KL053', 'invalid setting',
  'under a minute is refused');
select throws_ok($$ update private.settings set value = '"900"' where key = 'storage.purge_alert_after_seconds' $$, 'KL053', 'invalid setting',
  'so is a string');
select lives_ok($$ update private.settings set value = '604800' where key = 'storage.purge_alert_after_seconds' $$, 'a week is accepted');

-- pg_net's answers are kept longer than the purges' longest backoff (50 minutes, plus a tick),
-- so the next visit finds the answer to the last request instead of reading it as lost.
select throws_ok($$ update private.settings set value = '3599' where key = 'housekeeping.net_response_retention_seconds' $$,
  'KL053', 'invalid setting', 'net responses kept under an hour are refused');
select lives_ok($$ update private.settings set value = '3600' where key = 'housekeeping.net_response_retention_seconds' $$,
  'an hour is accepted');

select * from finish();
rollback;
