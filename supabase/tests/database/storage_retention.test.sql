-- Retention: a finished job keeps its stored images for its owner's plan's result_retention_days
-- (from completed_at); then expire_results removes its references and queues a purge, once.
-- Time is a parameter: nothing sleeps.
begin;
select plan(11);

select tests.create_supabase_user('rt_free');
select tests.create_supabase_user('rt_pro');
select tests.authenticate_as_service_role();
select public.set_plan(tests.get_supabase_uid('rt_pro'), 'pro');

select tests.authenticate_as('rt_free');
select (public.start_generation(prompt => 'an old mill in fog')).id as free_job \gset
select public.cancel_generation(:'free_job');
select (public.start_generation(prompt => 'an old mill in rain')).id as free_running \gset
select tests.authenticate_as('rt_pro');
select (public.start_generation(prompt => 'an old mill in snow')).id as pro_job \gset
select public.cancel_generation(:'pro_job');
select tests.act_as_owner();

select completed_at as done_at from public.generation_jobs where id = :'free_job' \gset
select is((select result_retention_days from public.plans where id = 'free'), 30, 'the free plan keeps results 30 days');
select is((select result_retention_days from public.plans where id = 'pro'), 365, 'the pro plan keeps results 365 days');

-- Not yet
select private.expire_results(:'done_at'::timestamptz + interval '29 days 23 hours');
select is((select count(*)::int from private.result_purges where job_id in (:'free_job', :'pro_job')), 0,
  'nothing expires before the plan''s retention');

-- The free job expires after 30 days; the pro job (same age) does not; an unfinished job never does.
select private.expire_results(:'done_at'::timestamptz + interval '30 days 1 minute');
select results_eq(
  format($$ select result_urls, results_removed_at, deleted_at is null from public.generation_jobs where id = '%s' $$, :'free_job'),
  format($$ values ('{}'::text[], '%s'::timestamptz + interval '30 days 1 minute', true) $$, :'done_at'),
  'past retention: references removed, the time recorded, the job still listed');
select results_eq(
  format($$ select reason, requested_at, next_attempt_at from private.result_purges where job_id = '%s' $$, :'free_job'),
  format($$ values ('expired'::text, '%1$s'::timestamptz + interval '30 days 1 minute', '%1$s'::timestamptz + interval '30 days 1 minute') $$, :'done_at'),
  'a purge of its images is queued, due at once');
select is((select results_removed_at from public.generation_jobs where id = :'pro_job'), null, 'the pro job of the same age is kept');
select is((select count(*)::int from private.result_purges where job_id = :'free_running'), 0, 'an unfinished job never expires');

-- Once only
select private.expire_results(:'done_at'::timestamptz + interval '40 days');
select is((select count(*)::int from private.result_purges where job_id = :'free_job'), 1, 'a second run queues nothing new for it');
select is((select results_removed_at from public.generation_jobs where id = :'free_job'),
  :'done_at'::timestamptz + interval '30 days 1 minute', 'and does not touch it again');

-- The pro job after a year
select private.expire_results(:'done_at'::timestamptz + interval '365 days 1 minute');
select is((select reason from private.result_purges where job_id = :'pro_job'), 'expired', 'the pro job expires after 365 days');

select throws_ok($$ select private.expire_results(now(), 0) $$, 'KL052', null, 'a batch size below 1: KL052');

select * from finish();
rollback;
