-- A run of the result purge sends at most max_jobs delete requests; the purges whose job folder is
-- already empty cost no request and do not use up the run. A user can make such purges for free
-- (start, cancel with its refund, delete: one a start), so counting them let a few accounts keep
-- every run busy finishing their own empty purges while other users' images waited.
begin;
select plan(4);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('service-key-for-tests', 'service_role_key');
-- Other purges in this database are not this file's business.
update private.result_purges set done_at = now() where done_at is null;

select tests.create_supabase_user('pe_flooder');
select tests.create_supabase_user('pe_owner');
select tests.get_supabase_uid('pe_flooder') as flooder \gset
select tests.get_supabase_uid('pe_owner') as owner \gset

-- The owner's deleted job still has its image.
select tests.authenticate_as('pe_owner');
select (public.start_generation(prompt => 'a lighthouse at dusk')).id as job \gset
select public.cancel_generation(:'job');
select public.delete_generation(:'job');
select tests.act_as_owner();
insert into storage.objects (bucket_id, name) values ('generated-images', :'owner' || '/' || :'job' || '/0.png');

-- Deleted jobs like it (cancelled, refunded), written here at once rather than started one by one.
create temporary table copies on commit drop as
select private.uuid_v7() as id, u.user_id
  from (values (:'flooder'::uuid, 30), (:'owner'::uuid, 5)) u (user_id, n), generate_series(1, u.n);
insert into public.generation_jobs (id, user_id, mode, prompt, aspect_ratio, model_key, quality, credits_charged, request,
                                    request_fingerprint, status, stage, error_code, error_message, completed_at,
                                    results_removed_at, deleted_at)
select c.id, c.user_id, j.mode, j.prompt, j.aspect_ratio, j.model_key, j.quality, 0, j.request, j.request_fingerprint,
       j.status, j.stage, j.error_code, j.error_message, j.completed_at, j.results_removed_at, j.deleted_at
  from copies c, public.generation_jobs j where j.id = :'job';

-- Ahead of it in the queue: the flooder's deleted jobs, with nothing stored, ten times the run's
-- batch (the purge rows as delete_generation writes them, a minute earlier).
insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at)
select c.id, c.user_id, 'deleted', now() - interval '1 minute', now() - interval '1 minute'
  from copies c where c.user_id = :'flooder';

select now() as t0 \gset
select is(private.purge_results(:'t0', 3), 1, 'the run sends the request for the job with an image');
select is((select count(*)::int from private.result_purges where user_id = :'flooder' and done_at is null), 0,
  'and finishes the empty purges ahead of it on the way, without a request');
select is((select attempts from private.result_purges where job_id = :'job'), 1, 'the owner''s purge was sent');

-- Folders with images share a request (storage_purge_shared_requests.test.sql).
insert into storage.objects (bucket_id, name)
select 'generated-images', c.user_id || '/' || c.id || '/0.png' from copies c where c.user_id = :'owner';
insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at)
select c.id, c.user_id, 'deleted', :'t0', :'t0' from copies c where c.user_id = :'owner';
select is(private.purge_results(:'t0', 3), 1, 'five more folders with an image each: one request');

select * from finish();
rollback;
