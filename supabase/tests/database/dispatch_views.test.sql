-- The operator views: queue depth per stage, work in flight, rate against the budget, outcomes
-- by model with p50/p95, failures with reasons.
begin;
select plan(5);
\ir dispatch_fixture.sql
delete from private.job_pipeline;

update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
create temp table jobs as select n, pg_temp.start_job('vw_user') as job_id from generate_series(1, 5) n;
update private.rate_slots set available_at = '-infinity' where bucket = 'create';
select private.dispatch_tick(now());
-- 1, 2 accepted; 3 rejected (permanent); 4, 5 still creating.
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', n)) from jobs where n <= 2;
select pg_temp.respond(job_id, 'create', 200, '{"code": 422, "msg": "content rejected"}') from jobs where n = 3;
select private.reconcile_tick(now());
-- Job 1 completes after 10 s, job 2 after 30 s.
select (private.complete_job(job_id, 1, 'task-' || n, array['u/' || n || '.png'], now() + make_interval(secs => case n when 1 then 10 else 30 end))).status
  from jobs where n <= 2;

select results_eq($$ select stage, jobs from private.queue_depth order by stage $$, $$ values ('creating'::text, 2) $$,
  'queue depth counts active jobs per stage');
select results_eq($$ select tasks_at_kie, creates_in_pg_net, waiting from private.in_flight $$, $$ values (0, 2, 0) $$,
  'in flight: createTasks awaiting their answer');
select results_eq($$ select creates_in_window, create_budget, dispatch_paused from private.dispatch_rate $$, $$ values (5, 18, false) $$,
  'dispatch rate against the budget');
select results_eq($$ select model_key, completed, failed, p50_seconds, p95_seconds from private.model_stats_24h $$,
  $$ values ('imagen-fast'::text, 2, 1, 20::double precision, 29::double precision) $$,
  'success and failure by model with p50/p95 of completed jobs');
select results_eq($$ select error_code, error_message, last_error like 'create body 422%' from private.recent_failures $$,
  $$ values ('provider_rejected'::text, 'The image service refused this request (invalid input or content policy).'::text, true) $$,
  'recent failures with the user''s message and the technical reason');

select * from finish();
rollback;
