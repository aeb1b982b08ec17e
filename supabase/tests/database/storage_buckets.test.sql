-- The two buckets and the policy set on storage.objects, pinned: private buckets with image
-- allowlists and size limits, one policy per command, all for authenticated.
begin;
select plan(10);

select results_eq(
  $$ select id, public, file_size_limit, allowed_mime_types from storage.buckets
      where id in ('generated-images', 'user-uploads') order by id $$,
  $$ values ('generated-images'::text, false, 20000000::bigint, array['image/png', 'image/jpeg', 'image/webp']),
            ('user-uploads'::text, false, 10000000::bigint, array['image/png', 'image/jpeg', 'image/webp']) $$,
  'both buckets are private, with an image allowlist and a size limit in bytes');

select policies_are('storage', 'objects', array[
  'Users can read their own uploads',
  'Users can read the images of their completed jobs',
  'Users can upload into their own folder',
  'Users can replace their own uploads',
  'Users can delete their own uploads'],
  'storage.objects has exactly our five policies');
select policy_cmd_is('storage', 'objects', 'Users can read their own uploads', 'select', 'reading uploads is a select policy');
select policy_cmd_is('storage', 'objects', 'Users can read the images of their completed jobs', 'select', 'reading results is a select policy');
select policy_cmd_is('storage', 'objects', 'Users can upload into their own folder', 'insert', 'uploading is an insert policy');
select policy_cmd_is('storage', 'objects', 'Users can replace their own uploads', 'update', 'replacing is an update policy');
select policy_cmd_is('storage', 'objects', 'Users can delete their own uploads', 'delete', 'deleting is a delete policy');
select is(
  (select count(*)::int from pg_policies where schemaname = 'storage' and tablename = 'objects' and roles <> '{authenticated}'),
  0, 'every policy is for authenticated only (anon gets nothing)');
select is(
  (select count(*)::int from pg_policies where schemaname = 'storage' and tablename = 'objects'
     and (coalesce(qual, '') || coalesce(with_check, '')) !~ 'foldername\(name\)\)\[1\] = \(\( SELECT auth\.uid\(\) AS uid\)\)::text'),
  0, 'every policy checks the first folder against (select auth.uid())');
select is(
  (select count(*)::int from pg_policies where schemaname = 'storage' and tablename = 'objects'
     and cmd <> 'SELECT' and coalesce(qual, with_check) ~ 'generated-images'),
  0, 'no insert, update or delete policy names generated-images: only the service writes results');

select * from finish();
rollback;
