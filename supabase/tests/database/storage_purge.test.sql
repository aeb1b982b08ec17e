-- The purge tick: while objects remain under a purged job's folder it asks the Storage API to
-- delete them (pg_net DELETE with the service key, from Vault) with backoff; when the folder is
-- empty the purge is done; how the previous request failed is kept in last_error. pg_net never
-- sends from a rolled-back transaction: the queued request rows are asserted instead.
begin;
select plan(14);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('service-key-for-tests', 'service_role_key');
-- Other purges in this database are not this file's business.
update private.result_purges set done_at = now() where done_at is null;

select tests.create_supabase_user('pu_owner');
select tests.get_supabase_uid('pu_owner') as owner \gset
select tests.authenticate_as('pu_owner');
select (public.start_generation(prompt => 'a harbour at night')).id as job \gset
select public.cancel_generation(:'job');
select (public.start_generation(prompt => 'a harbour at noon')).id as empty_job \gset
select public.cancel_generation(:'empty_job');
select public.delete_generation(:'job');
select public.delete_generation(:'empty_job');
select tests.act_as_owner();

insert into storage.objects (bucket_id, name) values
  ('generated-images', :'owner' || '/' || :'job' || '/1.png'),
  ('generated-images', :'owner' || '/' || :'job' || '/0.png'),
  ('generated-images', :'owner' || '/' || gen_random_uuid() || '/0.png'); -- another job's: stays

select now() as t0 \gset
select is(private.purge_results(:'t0'), 1, 'one request for the one job with objects');
select results_eq(
  format($$ select q.method::text, q.url, q.headers, convert_from(q.body, 'utf8')::jsonb, q.timeout_milliseconds
              from net.http_request_queue q join private.result_purges r on r.last_request_id = q.id
             where r.job_id = '%s' $$, :'job'),
  format($$ values ('DELETE'::text, 'https://project.example.test/storage/v1/object/generated-images'::text,
                    '{"Authorization": "Bearer service-key-for-tests", "apikey": "service-key-for-tests", "Content-Type": "application/json"}'::jsonb,
                    '{"prefixes": ["%1$s/%2$s/0.png", "%1$s/%2$s/1.png"]}'::jsonb, 10000) $$, :'owner', :'job'),
  'the request deletes exactly the job''s objects through the Storage API, with the service key');
select results_eq(
  format($$ select attempts, next_attempt_at, done_at from private.result_purges where job_id = '%s' $$, :'job'),
  format($$ values (1, '%s'::timestamptz + interval '30 seconds', null::timestamptz) $$, :'t0'),
  'one attempt, next visit after 30 seconds');
select results_eq(
  format($$ select attempts, done_at, last_request_id from private.result_purges where job_id = '%s' $$, :'empty_job'),
  format($$ values (0, '%s'::timestamptz, null::bigint) $$, :'t0'),
  'a job with no objects left is done without a request');

-- Not due yet: nothing is sent.
select is(private.purge_results(:'t0'::timestamptz + interval '29 seconds'), 0, 'no request before the backoff ends');

-- The objects are still there (the request was lost): a second request, longer backoff.
select is(private.purge_results(:'t0'::timestamptz + interval '30 seconds'), 1, 'after the backoff, it asks again');
select results_eq(
  format($$ select attempts, next_attempt_at from private.result_purges where job_id = '%s' $$, :'job'),
  format($$ values (2, '%s'::timestamptz + interval '30 seconds' + interval '60 seconds') $$, :'t0'),
  'the backoff doubles');

-- The Storage API refused the second request (a rotated service key): the next visit says so.
insert into net._http_response (id, status_code, content, created)
select last_request_id, 403, '{"statusCode":"403","error":"Unauthorized","message":"invalid signature"}', :'t0'::timestamptz + interval '31 seconds'
  from private.result_purges where job_id = :'job';
select is(private.purge_results(:'t0'::timestamptz + interval '90 seconds'), 1, 'objects still there: it asks again');
select is((select last_error from private.result_purges where job_id = :'job'),
  'the Storage API answered the last delete request with 403: {"statusCode":"403","error":"Unauthorized","message":"invalid signature"}',
  'and keeps how the previous request failed');

-- The Storage API deleted them: the next visit finishes the purge.
select set_config('storage.allow_delete_query', 'true', true);
delete from storage.objects where name like :'owner' || '/' || :'job' || '/%';
select is(private.purge_results(:'t0'::timestamptz + interval '4 minutes'), 0, 'nothing left to ask for');
select results_eq(
  format($$ select done_at from private.result_purges where job_id = '%s' $$, :'job'),
  format($$ values ('%s'::timestamptz + interval '4 minutes') $$, :'t0'),
  'the purge is done once the folder is empty');
select is((select count(*)::int from storage.objects where name like :'owner' || '/%'), 1, 'another job''s object is untouched');

-- Without the Vault secrets it cannot call Storage: it says so and tries again later.
update private.result_purges set done_at = null, next_attempt_at = :'t0' where job_id = :'job';
insert into storage.objects (bucket_id, name) values ('generated-images', :'owner' || '/' || :'job' || '/0.png');
delete from vault.secrets where name = 'service_role_key';
select is(private.purge_results(:'t0'), 0, 'no request without the service key');
select results_eq(
  format($$ select last_error is not null, next_attempt_at from private.result_purges where job_id = '%s' $$, :'job'),
  format($$ values (true, '%s'::timestamptz + interval '1 minute') $$, :'t0'),
  'the purge records why and waits a minute');

select * from finish();
rollback;
