-- A deleted account's folder purge is done only when the folder is found empty: while objects
-- remain (a lost request, a Storage outage) it asks again after a growing backoff; an empty
-- folder finishes without a request.
begin;
select plan(7);
\ir storage_purge_fixture.sql

select tests.sign_up_as_auth_service('apb_gone') as gone \gset
select pg_temp.put_object('generated-images', :'gone' || '/job/d/0.png');
select tests.delete_as_auth_service(:'gone');
select now() as t0 \gset

select is(private.purge_account_storage(:'t0'), 1, 'the folder with an object gets a request; the empty one none');
select results_eq(
  format($$ select attempts, done_at, last_request_id from private.storage_purges where user_id = '%s' and bucket_id = 'user-uploads' $$, :'gone'),
  format($$ values (0, '%s'::timestamptz, null::bigint) $$, :'t0'),
  'the empty folder is done at once, without a request');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '29 seconds'), 0, 'nothing before the backoff ends');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '30 seconds'), 1, 'objects still there after the backoff: it asks again');
select results_eq(
  format($$ select attempts, next_attempt_at from private.storage_purges where user_id = '%s' and bucket_id = 'generated-images' $$, :'gone'),
  format($$ values (2, '%s'::timestamptz + interval '30 seconds' + interval '60 seconds') $$, :'t0'),
  'the backoff doubles');

-- The Storage API deleted them: the next visit finishes the purge.
select pg_temp.storage_deletes('generated-images', :'gone' || '/%');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '2 minutes'), 0, 'nothing left to ask for');
select is((select count(*)::int from private.pending_storage_purges where user_id = :'gone'), 0,
  'both purges are done once their folders are empty');

select * from finish();
rollback;
