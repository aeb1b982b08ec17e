-- A deleted account's folder purge is done only when the folder is found empty once the watch
-- for late files (storage.deleted_account_watch_seconds) is over: while objects remain (a lost
-- request, a Storage outage) it asks again after a backoff that grows only while the folder does
-- not shrink; a folder that empties 1000 objects a visit is visited every 30 s.
begin;
select plan(13);
\ir storage_purge_fixture.sql

select tests.sign_up_as_auth_service('apb_gone') as gone \gset
select pg_temp.put_object('generated-images', :'gone' || '/job/d/0.png');
select pg_temp.put_object('generated-images', :'gone' || '/job/d/1.png');
select tests.delete_as_auth_service(:'gone');
select now() as t0 \gset
create function pg_temp.purge_of(bucket text) returns table (attempts integer, next_attempt_at timestamptz, done_at timestamptz)
language sql as $$ select attempts, next_attempt_at, done_at from private.storage_purges where user_id = current_setting('apb.gone')::uuid and bucket_id = bucket $$;
select set_config('apb.gone', :'gone', true);

select is(private.purge_account_storage(:'t0'), 1, 'the folder with objects gets a request; the empty one none');
select results_eq($$ select * from pg_temp.purge_of('user-uploads') $$,
  format($$ values (0, '%s'::timestamptz + interval '1 hour', null::timestamptz) $$, :'t0'),
  'the empty folder is not done yet: it is looked at again when the hour of watching is over');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '29 seconds'), 0, 'nothing before the backoff ends');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '30 seconds'), 1, 'objects still there after the backoff: it asks again');
select results_eq($$ select attempts, next_attempt_at from pg_temp.purge_of('generated-images') $$,
  format($$ values (2, '%s'::timestamptz + interval '30 seconds' + interval '60 seconds') $$, :'t0'),
  'the folder did not shrink: the backoff doubles');

-- The last request deleted the first object: the folder shrank, so the backoff starts over.
select pg_temp.storage_deletes('generated-images', :'gone' || '/job/d/0.png');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '90 seconds'), 1, 'objects left: it asks again');
select results_eq($$ select attempts, next_attempt_at from pg_temp.purge_of('generated-images') $$,
  format($$ values (3, '%s'::timestamptz + interval '90 seconds' + interval '30 seconds') $$, :'t0'),
  'a shrinking folder is visited again after 30 s');

-- The Storage API deleted the rest, but the watch is not over: a late file still gets deleted.
select pg_temp.storage_deletes('generated-images', :'gone' || '/%');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '2 minutes'), 0, 'nothing left to ask for');
select is((select done_at from pg_temp.purge_of('generated-images')), null, 'an empty folder is not done before the watch is over');
select pg_temp.put_object('user-uploads', :'gone' || '/late.png');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '1 hour'), 1,
  'a file uploaded after the deletion (the token still worked) is asked for when the watch ends');
select pg_temp.storage_deletes('user-uploads', :'gone' || '/%');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '2 hours'), 0, 'found empty after the watch');
select is((select count(*)::int from private.pending_storage_purges where user_id = :'gone'), 0,
  'both purges are done once their folders are found empty after the watch');

-- The wait itself: 30 s doubling, at most 50 minutes (pg_net keeps an answer an hour, and the
-- next visit reads the last one for last_error).
select is(array[private.storage_purge_backoff(0), private.storage_purge_backoff(1), private.storage_purge_backoff(6),
                private.storage_purge_backoff(7), private.storage_purge_backoff(100)],
  array[interval '30 seconds', interval '1 minute', interval '32 minutes', interval '50 minutes', interval '50 minutes'],
  'the backoff: 30 s, 1 min ... 32 min, then 50 minutes at most');

select * from finish();
rollback;
