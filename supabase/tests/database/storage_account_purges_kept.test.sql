-- The upload purge forgets its own finished rows once the request log is past them; finished
-- folder purges of deleted accounts are a different record and are kept.
begin;
select plan(2);
\ir storage_purge_fixture.sql

select tests.sign_up_as_auth_service('apk_gone') as gone \gset
delete from auth.users where id = :'gone';
select now() as t0 \gset
select private.purge_account_storage(:'t0'::timestamptz + interval '1 day');
select is((select count(*)::int from private.storage_purges where user_id = :'gone' and done_at is not null), 2,
  'both folders of the deleted account are purged');

insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at, done_at)
values ('user-uploads', :'gone' || '/expired.png', :'gone', 'upload_expired', :'t0', :'t0', :'t0');
select private.purge_expired_uploads(:'t0'::timestamptz + interval '40 days');
select results_eq(
  format($$ select reason, count(*)::int from private.storage_purges where user_id = '%s' group by reason $$, :'gone'),
  $$ values ('account_deleted'::text, 2) $$,
  'long after, the finished upload purge is forgotten and the account''s folder purges are kept');

select * from finish();
rollback;
