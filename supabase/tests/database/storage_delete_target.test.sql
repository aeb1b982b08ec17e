-- The Storage API's bulk delete endpoint is per bucket; the original no-argument form still
-- names generated-images (no row, no error, while that bucket is gone); an unknown bucket is
-- refused; no row while a secret is missing.
begin;
select plan(7);
\ir storage_purge_fixture.sql

select results_eq($$ select url, service_key from private.storage_delete_target('user-uploads') $$,
  $$ values ('https://project.example.test/storage/v1/object/user-uploads'::text, 'service-key-for-tests'::text) $$,
  'user-uploads: its endpoint (the project URL''s trailing slash dropped) and the service key');
select results_eq($$ select url from private.storage_delete_target('generated-images') $$,
  $$ values ('https://project.example.test/storage/v1/object/generated-images'::text) $$, 'generated-images: its endpoint');
select results_eq($$ select url, service_key from private.storage_delete_target() $$,
  $$ select url, service_key from private.storage_delete_target('generated-images') $$,
  'the no-argument form, which purge_results calls, still names generated-images');
select throws_ok($$ select * from private.storage_delete_target('avatars') $$, 'KL054', 'unknown bucket', 'a bucket that does not exist is refused');
select throws_ok($$ select * from private.storage_delete_target(null) $$, 'KL054', 'unknown bucket', 'so is a missing one');
-- A bucket an operator removed: the no-argument form gives no row (purge_results waits), it does not fail.
create temporary table kept_bucket on commit drop as select * from storage.buckets where id = 'generated-images';
set local storage.allow_delete_query = 'true';
delete from storage.objects where bucket_id = 'generated-images';
delete from storage.buckets where id = 'generated-images';
select is_empty($$ select * from private.storage_delete_target() $$, 'no target, and no error, while generated-images is gone');
insert into storage.buckets select * from kept_bucket;
delete from vault.secrets where name = 'project_url';
select is_empty($$ select * from private.storage_delete_target('user-uploads') $$, 'no target while the project URL is missing');

select * from finish();
rollback;
