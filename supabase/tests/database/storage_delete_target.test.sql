-- The Storage API's bulk delete endpoint is per bucket; an unknown bucket is refused; no row
-- while a secret is missing.
begin;
select plan(5);
\ir storage_purge_fixture.sql

select results_eq($$ select url, service_key from private.storage_delete_target('user-uploads') $$,
  $$ values ('https://project.example.test/storage/v1/object/user-uploads'::text, 'service-key-for-tests'::text) $$,
  'user-uploads: its endpoint (the project URL''s trailing slash dropped) and the service key');
select results_eq($$ select url from private.storage_delete_target('generated-images') $$,
  $$ values ('https://project.example.test/storage/v1/object/generated-images'::text) $$, 'generated-images: its endpoint');
select throws_ok($$ select * from private.storage_delete_target('avatars') $$, 'KL054', 'unknown bucket', 'a bucket that does not exist is refused');
select throws_ok($$ select * from private.storage_delete_target(null) $$, 'KL054', 'unknown bucket', 'so is a missing one');
delete from vault.secrets where name = 'project_url';
select is_empty($$ select * from private.storage_delete_target('user-uploads') $$, 'no target while the project URL is missing');

select * from finish();
rollback;
