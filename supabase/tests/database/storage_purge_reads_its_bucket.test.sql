-- A job's result purge reads the generated-images bucket only. A user may upload photos under a
-- folder named like their job (`<user>/<job>/...` in user-uploads): those are not the job's
-- results, are never sent in the generated-images delete, and do not keep the purge open.
begin;
select plan(3);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('service-key-for-tests', 'service_role_key');
update private.result_purges set done_at = now() where done_at is null;

select tests.create_supabase_user('prb_owner');
select tests.get_supabase_uid('prb_owner') as owner \gset
select tests.authenticate_as('prb_owner');
select (public.start_generation(prompt => 'a kiln at dusk')).id as job \gset
select public.cancel_generation(:'job');
select public.delete_generation(:'job');
select tests.act_as_owner();

insert into storage.objects (bucket_id, name) values
  ('generated-images', :'owner' || '/' || :'job' || '/0.png'),
  ('user-uploads', :'owner' || '/' || :'job' || '/photo.png');

select now() as t0 \gset
select private.purge_results(:'t0');
select is(
  (select convert_from(q.body, 'utf8')::jsonb from net.http_request_queue q
     join private.result_purges r on r.last_request_id = q.id where r.job_id = :'job'),
  format('{"prefixes": ["%s/%s/0.png"]}', :'owner', :'job')::jsonb,
  'the delete names only the job''s generated images, not an upload under the same folder');

-- The Storage API deleted the result; the upload stays where it is.
select set_config('storage.allow_delete_query', 'true', true);
delete from storage.objects where bucket_id = 'generated-images' and name like :'owner' || '/' || :'job' || '/%';
select set_config('storage.allow_delete_query', 'false', true);

select is(private.purge_results(:'t0'::timestamptz + interval '1 hour'), 0, 'no further request once the results are gone');
select isnt((select done_at from private.result_purges where job_id = :'job'), null,
  'and the purge is done, though an upload lives under a folder of the same name');

select * from finish();
rollback;
