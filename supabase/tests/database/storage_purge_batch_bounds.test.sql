-- Work per tick is bounded: the walk over user-uploads reads at most max_objects objects and
-- goes on from where it stopped, wrapping at the end of the bucket; the upload purge sends at
-- most max_objects names; the folder purge visits at most max_folders folders. Bad batch sizes
-- are refused.
begin;
select plan(12);
\ir storage_purge_fixture.sql

-- Only this file's uploads in the bucket.
select pg_temp.storage_deletes('user-uploads', '%');
select tests.create_supabase_user('bb_owner') as owner \gset
select pg_temp.put_object('user-uploads', format('%s/%s.png', :'owner', g), '10 days') from generate_series(1, 5) g;
select now() as t0 \gset

select is(private.expire_uploads(:'t0', 2), 2, 'a run reads at most max_objects uploads');
select is((select after_name from private.upload_sweep), :'owner' || '/2.png', 'and remembers where it stopped');
select is(private.expire_uploads(:'t0', 2), 2, 'the next run goes on from there');
select is(private.expire_uploads(:'t0', 2), 1, 'the last run reaches the end of the bucket');
select results_eq($$ select after_name, last_pass_finished_at is not null from private.upload_sweep $$,
  $$ values (null::text, true) $$, 'and the walk starts over');
select is((select count(*)::int from private.storage_purges where user_id = :'owner' and done_at is null), 5, 'every upload was found once');

select is(private.purge_expired_uploads(:'t0', 3), 1, 'one request');
select is((select jsonb_array_length(convert_from(q.body, 'utf8')::jsonb -> 'prefixes') from net.http_request_queue q
            where q.id = (select max(last_request_id) from private.storage_purges where user_id = :'owner')), 3,
  'with at most max_objects names');

select tests.sign_up_as_auth_service('bb_gone_' || g) from generate_series(1, 3) g;
select pg_temp.put_object('generated-images', u.id || '/job/0.png')
  from auth.users u where u.raw_user_meta_data ->> 'test_identifier' like 'bb\_gone\_%';
select tests.delete_as_auth_service(u.id) from auth.users u where u.raw_user_meta_data ->> 'test_identifier' like 'bb\_gone\_%';
select private.purge_account_storage(:'t0', 2);
select is((select count(*)::int from private.storage_purges where reason = 'account_deleted' and requested_at = now()
             and next_attempt_at > requested_at), 2,
  'a run visits at most max_folders of the six due folders');

select throws_ok($$ select private.expire_uploads(now(), 0) $$, 'KL052', 'invalid batch size', 'the walk refuses a batch below 1');
select throws_ok($$ select private.purge_expired_uploads(now(), 1001) $$, 'KL052', 'invalid batch size',
  'the upload purge refuses more names than one Storage request takes');
select throws_ok($$ select private.purge_account_storage(now(), null) $$, 'KL052', 'invalid batch size', 'the folder purge refuses a missing batch size');

select * from finish();
rollback;
