-- The tick asks the Storage API to delete what is left in each due folder of a deleted account:
-- one DELETE per folder, to that bucket's endpoint, with the service key, naming exactly the
-- folder's objects (not a neighbour's whose name merely starts the same way).
begin;
select plan(5);
\ir storage_purge_fixture.sql

select tests.sign_up_as_auth_service('apr_gone') as gone \gset
select tests.sign_up_as_auth_service('apr_stays') as stays \gset
select pg_temp.put_object('generated-images', :'gone' || '/job-1/d/0.png');
select pg_temp.put_object('generated-images', :'gone' || '/job-2/d/0.png');
select pg_temp.put_object('user-uploads', :'gone' || '/portrait.png');
select pg_temp.put_object('user-uploads', :'stays' || '/portrait.png');
-- A neighbour whose folder name begins with the deleted user's id.
select pg_temp.put_object('user-uploads', :'gone' || 'x/portrait.png');
select tests.delete_as_auth_service(:'gone');

select now() as t0 \gset
select is(private.purge_account_storage(:'t0'), 2, 'one request per due folder with objects');
select results_eq(
  format($$ select (pg_temp.queued(p.last_request_id)).* from private.storage_purges p
             where p.user_id = '%s' and p.bucket_id = 'generated-images' $$, :'gone'),
  format($$ values ('DELETE'::text, 'https://project.example.test/storage/v1/object/generated-images'::text,
                    '{"Authorization": "Bearer service-key-for-tests", "apikey": "service-key-for-tests", "Content-Type": "application/json"}'::jsonb,
                    '{"prefixes": ["%1$s/job-1/d/0.png", "%1$s/job-2/d/0.png"]}'::jsonb, 10000) $$, :'gone'),
  'generated-images: its own endpoint, the service key, every object of the folder');
select results_eq(
  format($$ select (pg_temp.queued(p.last_request_id)).url, (pg_temp.queued(p.last_request_id)).body
              from private.storage_purges p where p.user_id = '%s' and p.bucket_id = 'user-uploads' $$, :'gone'),
  format($$ values ('https://project.example.test/storage/v1/object/user-uploads'::text, '{"prefixes": ["%s/portrait.png"]}'::jsonb) $$, :'gone'),
  'user-uploads: its own endpoint, only the user''s folder (not a neighbour whose name starts the same)');
select results_eq(
  format($$ select attempts, next_attempt_at, last_error from private.storage_purges where user_id = '%s' order by bucket_id $$, :'gone'),
  format($$ values (1, '%1$s'::timestamptz + interval '30 seconds', null::text), (1, '%1$s'::timestamptz + interval '30 seconds', null) $$, :'t0'),
  'each folder: one attempt, next visit after 30 seconds');

-- A folder of more than 1000 objects: the first 1000 by name, the rest on later visits.
select tests.sign_up_as_auth_service('apr_big') as big \gset
select pg_temp.put_object('generated-images', format('%s/job/%s.png', :'big', lpad(g::text, 4, '0'))) from generate_series(1, 1001) g;
select tests.delete_as_auth_service(:'big');
select private.purge_account_storage(:'t0');
select results_eq(
  format($$ select jsonb_array_length((pg_temp.queued(p.last_request_id)).body -> 'prefixes'),
                   (pg_temp.queued(p.last_request_id)).body -> 'prefixes' ->> 999
              from private.storage_purges p where p.user_id = '%s' and p.bucket_id = 'generated-images' $$, :'big'),
  format($$ values (1000, '%s/job/1000.png') $$, :'big'),
  'one request names at most 1000 objects (the Storage API''s limit)');

select * from finish();
rollback;
