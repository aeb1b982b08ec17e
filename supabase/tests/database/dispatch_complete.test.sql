-- The functions the callback function calls: complete_job and fail_job_from_provider, guarded
-- so that duplicate, late or out-of-order calls change nothing; a duplicate task (libcurl
-- re-sent the createTask) with a valid token: the first result wins.
begin;
select plan(16);
\ir dispatch_fixture.sql

create temp table jobs as select pg_temp.start_job('co_user') as job_id;
select job_id as job from jobs \gset
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-a"}}') from jobs;
select private.reconcile_tick();

select throws_ok(format('select private.complete_job(%L, 1, %L, array[]::text[])', :'job', 'task-a'), 'KL041', null, 'no object paths: refused');
select throws_ok(format('select private.complete_job(%L, 1, null, array[%L])', :'job', 'p.png'), 'KL041', null, 'no task id: refused');
select throws_ok(format('select private.complete_job(%L, 1, %L, array[%L])', gen_random_uuid(), 'task-a', 'p.png'), 'KL040', null, 'unknown job: refused');
select throws_ok(format('select private.complete_job(%L, 2, %L, array[%L])', :'job', 'task-a', 'p.png'), 'KL042', null, 'an attempt never sent: refused');
select throws_ok(format('select private.fail_job_from_provider(%L, 0, %L, %L, %L)', :'job', 'task-a', '500', 'x'), 'KL042', null, 'attempt 0: refused');

-- libcurl re-sent the POST: KIE made task-b too. Its callback carries the same valid token.
select results_eq(
  format('select status, result_urls from private.complete_job(%L, 1, %L, array[%L, %L])', :'job', 'task-b', 'u/1.png', 'u/2.png'),
  $$ values ('completed'::text, array['u/1.png', 'u/2.png']) $$,
  'the duplicate task''s result arrives first and completes the job');
select results_eq(
  format('select status, result_urls from private.complete_job(%L, 1, %L, array[%L])', :'job', 'task-a', 'u/other.png'),
  $$ values ('completed'::text, array['u/1.png', 'u/2.png']) $$,
  'the first result wins: the original task''s later result changes nothing');
select results_eq(
  format('select status from private.fail_job_from_provider(%L, 1, %L, %L, %L)', :'job', 'task-a', '500', 'late failure'),
  $$ values ('completed'::text) $$,
  'a failure after completion changes nothing');
select results_eq(
  $$ select source, outcome, task_id from private.late_results where job_id = (select job_id from jobs) order by id $$,
  $$ values ('complete'::text, 'success'::text, 'task-a'::text), ('provider_failure', 'failed', 'task-a') $$,
  'late results are recorded for operators');
select results_eq(
  $$ select stage, task_id from private.job_pipeline where job_id = (select job_id from jobs) $$,
  $$ values ('completed'::text, 'task-b'::text) $$,
  'the pipeline keeps the task whose result won');
select is((select count(*)::int from public.credit_ledger where job_id = (select job_id from jobs) and kind = 'refund'), 0,
  'a completed job is never refunded');

-- Provider failure: only the current task may fail the job.
create temp table second as select pg_temp.start_job('co_user') as job_id;
select job_id as job2 from second \gset
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-c"}}') from second;
select private.reconcile_tick();
select results_eq(
  format('select status from private.fail_job_from_provider(%L, 1, %L, %L, %L)', :'job2', 'task-dup', '500', 'duplicate failed'),
  $$ values ('generating'::text) $$,
  'a failure of a task that is not the current one changes nothing');
select results_eq(
  format('select status, error_code, error_message from private.fail_job_from_provider(%L, 1, %L, %L, %L)', :'job2', 'task-c', '400', 'content policy'),
  $$ values ('failed'::text, 'provider_failed'::text, 'The image could not be generated.'::text) $$,
  'the current task''s failure fails the job with our message (KIE''s reason is for operators)');
select is((select count(*)::int from public.credit_ledger where job_id = (select job_id from second) and kind = 'refund'), 1, 'and refunds it once');

-- A failure callback that beats the reconcile of its createTask (task id not known yet).
create temp table fast as select pg_temp.start_job('co_user') as job_id;
select results_eq(
  format('select status, error_code from private.fail_job_from_provider(%L, 1, %L, %L, %L)',
         (select job_id from fast), 'task-fast', '400', 'content policy'),
  $$ values ('failed'::text, 'provider_failed'::text) $$,
  'a failure for the current attempt counts even before its createTask response is reconciled');
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-fast"}}') from fast;
select private.reconcile_tick();
select results_eq(
  $$ select g.status, l.source, l.outcome from fast f join public.generation_jobs g on g.id = f.job_id
       join private.late_results l on l.job_id = f.job_id $$,
  $$ values ('failed'::text, 'create'::text, 'accepted'::text) $$,
  'the createTask answer that arrives afterwards is recorded only');

select * from finish();
rollback;
