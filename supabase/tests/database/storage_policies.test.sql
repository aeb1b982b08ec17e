-- The storage.objects policies, command by command, for two users, anon and the service role:
-- a user reads only their own folder in either bucket, writes only their own uploads, and never
-- writes generated images. Rows are written here directly (as the Storage server would).
begin;
select plan(18);

select tests.create_supabase_user('sp_a');
select tests.create_supabase_user('sp_b');
select tests.get_supabase_uid('sp_a') as a, tests.get_supabase_uid('sp_b') as b \gset

select tests.authenticate_as('sp_a');
select (public.start_generation(prompt => 'a lighthouse at dusk')).id as job_a \gset
select (public.start_generation(prompt => 'a lighthouse at dawn')).id as job_a2 \gset
select tests.authenticate_as('sp_b');
select (public.start_generation(prompt => 'a lighthouse at noon')).id as job_b \gset
select tests.act_as_owner();

-- Each delivery of a result writes its own folder under the job; only the listed one counts.
insert into storage.objects (bucket_id, name, owner, owner_id) values
  ('generated-images', :'a' || '/' || :'job_a' || '/d1/0.png', null, null),
  ('generated-images', :'a' || '/' || :'job_a' || '/d2/0.png', null, null),
  ('generated-images', :'a' || '/' || :'job_a2' || '/d1/0.png', null, null),
  ('generated-images', :'b' || '/' || :'job_b' || '/d1/0.png', null, null),
  ('user-uploads', :'a' || '/photo.png', :'a', :'a'),
  ('user-uploads', :'b' || '/photo.png', :'b', :'b');
update public.generation_jobs
   set status = 'completed', stage = 'completed', completed_at = now(),
       result_urls = array['generated-images/' || user_id || '/' || id || '/d1/0.png']
 where id in (:'job_a', :'job_b');
-- The Storage server sets this for its deletes; storage.protect_delete refuses them otherwise.
select set_config('storage.allow_delete_query', 'true', true);

-- Reads
select tests.authenticate_as('sp_a');
select results_eq(
  $$ select bucket_id, name from storage.objects where name like (select auth.uid())::text || '/%' order by bucket_id $$,
  format($$ values ('generated-images'::text, '%s/%s/d1/0.png'::text), ('user-uploads', '%s/photo.png') $$, :'a', :'job_a', :'a'),
  'a user reads the image their completed job lists and their own upload: not a losing delivery''s, not an unfinished job''s');
select is_empty(
  format($$ select 1 from storage.objects where name like '%s/%%' $$, :'b'),
  'a user reads nothing in another user''s folders');
select tests.act_as_owner();
-- A completion that lost the race: the job failed (and was refunded) while images were stored.
update public.generation_jobs set status = 'failed', stage = 'failed', error_code = 'timed_out', error_message = 'late'
 where id = :'job_a';
select tests.authenticate_as('sp_a');
select is_empty($$ select 1 from storage.objects where bucket_id = 'generated-images' $$,
  'the images of a job that is not completed are unreadable, even when listed');
select tests.act_as_owner();
update public.generation_jobs set status = 'completed', stage = 'completed', error_code = null, error_message = null
 where id = :'job_a';
update public.generation_jobs set deleted_at = now(), results_removed_at = now(), result_urls = '{}' where id = :'job_a2';
select tests.authenticate_as('sp_a');

select tests.act_as_anon();
select is_empty($$ select 1 from storage.objects where bucket_id in ('generated-images', 'user-uploads') $$, 'anon reads nothing');

select tests.authenticate_as_service_role();
select is((select count(*)::int from storage.objects where name like any (array[:'a' || '/%', :'b' || '/%'])), 6,
  'the service role reads everything');

-- Writes: uploads only, into one's own folder
select tests.authenticate_as('sp_a');
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name) values ('generated-images', '%s/job-x/0.png') $$, :'a'),
  '42501', null, 'a user cannot write a result, not even in their own folder');
select lives_ok(
  format($$ insert into storage.objects (bucket_id, name, owner) values ('user-uploads', '%s/new.png', '%s') $$, :'a', :'a'),
  'a user uploads into their own folder');
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name) values ('user-uploads', '%s/new.png') $$, :'b'),
  '42501', null, 'a user cannot upload into another user''s folder');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name) values ('user-uploads', 'loose.png') $$,
  '42501', null, 'a user cannot upload outside any folder');

-- Updates (upsert): own uploads only, and they stay in the user's folder
select is_empty(
  format($$ update storage.objects set version = 'x' where name = '%s/photo.png' returning 1 $$, :'b'),
  'a user cannot replace another user''s upload');
select is_empty(
  format($$ update storage.objects set version = 'x' where name = '%s/%s/d1/0.png' returning 1 $$, :'a', :'job_a'),
  'a user cannot replace their own result');
select results_eq(
  format($$ update storage.objects set version = 'v2' where bucket_id = 'user-uploads' and name = '%s/photo.png' returning version $$, :'a'),
  $$ values ('v2'::text) $$,
  'a user replaces their own upload');
select throws_ok(
  format($$ update storage.objects set name = '%s/moved.png' where bucket_id = 'user-uploads' and name = '%s/photo.png' $$, :'b', :'a'),
  '42501', null, 'a user cannot move an upload into another user''s folder');

-- Deletes: own uploads only
select is_empty(
  format($$ delete from storage.objects where name = '%s/photo.png' returning 1 $$, :'b'),
  'a user cannot delete another user''s upload');
select is_empty(
  format($$ delete from storage.objects where name = '%s/%s/d1/0.png' returning 1 $$, :'a', :'job_a'),
  'a user cannot delete their own result (delete_generation does that)');
select results_eq(
  format($$ delete from storage.objects where bucket_id = 'user-uploads' and name = '%s/photo.png' returning name $$, :'a'),
  format($$ values ('%s/photo.png'::text) $$, :'a'),
  'a user deletes their own upload');

select tests.act_as_anon();
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name) values ('user-uploads', '%s/anon.png') $$, :'a'),
  '42501', null, 'anon cannot upload');

-- Without the Storage server's setting, direct deletes are refused (as on the platform).
select tests.act_as_owner();
select set_config('storage.allow_delete_query', 'false', true);
select throws_ok(
  format($$ delete from storage.objects where name = '%s/photo.png' $$, :'b'),
  '42501', 'Direct deletion from storage tables is not allowed. Use the Storage API instead.',
  'direct deletes from storage.objects are refused');

select * from finish();
rollback;
