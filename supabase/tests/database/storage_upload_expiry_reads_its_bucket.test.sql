-- Upload expiry judges the user-uploads object by its own age. A generated image with the same
-- name (a user may upload under `<user>/<job>/d1/0.png`) is another object: its age does not
-- make a fresh upload expire.
begin;
select plan(2);
\ir storage_purge_fixture.sql

select tests.create_supabase_user('uer_owner') as owner \gset
select :'owner' || '/' || gen_random_uuid() || '/d1/0.png' as name \gset
select pg_temp.put_object('generated-images', :'name', '30 days');
select pg_temp.put_object('user-uploads', :'name', '1 day');
select pg_temp.put_object('user-uploads', :'owner' || '/old.png', '30 days');

select results_eq(
  format($$ select private.expired_uploads(array['%s', '%s/old.png'], now()) $$, :'name', :'owner'),
  format($$ values ('%s/old.png'::text) $$, :'owner'),
  'a fresh upload is not expired by an old generated image of the same name');
select private.expire_uploads(now());
select results_eq(
  format($$ select path from private.storage_purges where reason = 'upload_expired' and user_id = '%s' and done_at is null $$, :'owner'),
  format($$ values ('%s/old.png'::text) $$, :'owner'),
  'the walk records only the old upload');

select * from finish();
rollback;
