-- recordInfo echoes the createTask body (param), callback URL and token included: once a poll
-- response is read, its content leaves net._http_response; createTask responses are untouched.
begin;
select plan(3);
\ir dispatch_fixture.sql

create temp table jobs as select pg_temp.start_job('pr_user') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-pr"}}') from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00' where job_id in (select job_id from jobs);
select private.poll_tick('2030-01-01 00:00:15+00');
select pg_temp.respond(job_id, 'poll', 200, jsonb_build_object('code', 200, 'data', jsonb_build_object('taskId', 'task-pr', 'state', 'generating',
         'param', '{"callBackUrl": "https://fn.test/functions/v1/kie-callback?token=secret-token"}'))::text) from jobs;
select private.reconcile_tick('2030-01-01 00:00:16+00');

select is((select count(*)::int from net._http_response where content like '%secret-token%'), 0,
  'no stored response holds the callback token once the poll is reconciled');
select results_eq(
  $$ select r.outcome, r.body_code from private.requests r where r.job_id = (select job_id from jobs) and r.kind = 'poll' $$,
  $$ values ('report'::text, 200) $$,
  'the request log keeps what the response said');
select is((select count(*)::int from net._http_response where content like '%task-pr%'), 1,
  'the createTask response is left to housekeeping');

select * from finish();
rollback;
