-- Requests whose response never comes (the pg_net queue was lost in a restart) and pg_net ids
-- reused after a crash: a response is matched only to the request it belongs to; lost
-- createTasks are unknown outcomes, counted and retried within the attempt budget.
begin;
select plan(7);
\ir dispatch_fixture.sql

create temp table jobs as select pg_temp.start_job('lr_user') as job_id;
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00' where job_id = (select job_id from jobs);
-- The request was queued an hour ago (before a crash): its pg_net id is 1.
update private.requests set queued_at = now() - interval '1 hour', sent_at = '2030-01-01 00:00:00+00', net_request_id = 1
 where job_id = (select job_id from jobs);
-- After the crash pg_net's ids restart: someone else's request got id 1 and its response is here.
insert into net._http_response (id, status_code, content, created)
values (1, 200, '{"code": 200, "data": {"taskId": "not-ours"}}', now() - interval '2 hours');

select is(private.reconcile_tick('2030-01-01 00:00:30+00'), 0, 'a response stored before our request was queued is not ours');
select is(private.reconcile_tick('2030-01-01 00:01:08+00'), 0, 'within timeout + reconcile.lost_after_seconds the request is awaited');
select is(private.reconcile_tick('2030-01-01 00:01:09+00'), 1, 'after that it is lost');
select results_eq(
  $$ select r.outcome, r.maybe_accepted, p.stage, p.retries, p.unknown_outcomes
       from private.requests r join private.job_pipeline p using (job_id) where r.job_id = (select job_id from jobs) $$,
  $$ values ('lost'::text, true, 'waiting'::text, 1, 1) $$,
  'a lost createTask is an unknown outcome, counted, and retried');
select is((select in_log from private.unknown_outcomes), 1, 'the operator view counts unknown outcomes');

-- Two of our requests share pg_net id 2 (before and after a crash): the response belongs to the newer.
select private.dispatch_tick('2030-01-01 00:10:00+00');
insert into private.requests (job_id, attempt, kind, net_request_id, queued_at, sent_at, timeout_ms)
select job_id, 1, 'create', 2, now() - interval '1 hour', '2030-01-01 00:00:00+00', 8000 from jobs;
update private.requests set net_request_id = 2 where job_id = (select job_id from jobs) and attempt = 2;
insert into net._http_response (id, status_code, content) values (2, 200, '{"code": 200, "data": {"taskId": "task-new"}}');
select private.reconcile_tick('2030-01-01 00:10:01+00');
select results_eq(
  $$ select attempt, outcome, task_id from private.requests where job_id = (select job_id from jobs) and net_request_id = 2 order by attempt $$,
  $$ values (1, 'lost'::text, null::text), (2, 'accepted', 'task-new') $$,
  'a reused id: the response goes to the newer request, the older one is lost');
select is((select task_id from private.job_pipeline where job_id = (select job_id from jobs)), 'task-new', 'and the job has its task');

select * from finish();
rollback;
