-- A finished task whose result URL is off results.allowed_hosts reports the same URL on every
-- poll, so the poll path fails the job at once as the provider outcome "unusable" (one refund, the
-- reason private) instead of polling it until the deadline; another task's such report changes
-- nothing. The operator is told, with the host (result_host_refused), since a move of KIE's files to
-- a new host would fail every job this way.
begin;
select plan(11);
\ir dispatch_fixture.sql

update private.settings set value = '["files.kie.test"]' where key = 'results.allowed_hosts';
create temp table jobs as select n, pg_temp.start_job('off_host_user') as job_id from generate_series(1, 2) n;
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', n)) from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-01 00:15:00+00' where job_id in (select job_id from jobs);
select private.poll_tick('2030-01-01 00:00:15+00');

create function pg_temp.report(task text) returns text language sql as $$
  select format('{"code": 200, "msg": "success", "data": {"taskId": "%s", "state": "success", "resultJson": "{\"resultUrls\": [\"https://files.kie.test/a.png\", \"https://elsewhere.test/b.png?sig=1\"]}"}}', task)
$$;

select results_eq(
  $$ select kind, fail_code, fail_message, result_urls from private.interpret_task_report(pg_temp.report('t')::jsonb) $$,
  $$ values ('failed'::text, 'unusable'::text,
             'result URL 2 of 2 is not on an accepted result host (results.allowed_hosts): the host is not an accepted result host (host elsewhere.test)'::text,
             null::text[]) $$,
  'a result URL off the list is read as an unusable result, naming which, why and its host, but not the URL');
select results_eq(
  $$ select fail_message from private.interpret_task_report(
       '{"code": 200, "data": {"taskId": "t", "state": "success", "resultJson": "{\"resultUrls\": [\"https://user:secret@files.kie.test/a.png\"]}"}}') $$,
  $$ values ('result URL 1 of 1 is not on an accepted result host (results.allowed_hosts): the host or port is malformed (user info and IPv6 are not accepted)'::text) $$,
  'a URL with user info is not quoted in part: no host is named');
select is_empty($$ select 1 from private.alerts where key = 'result_host_refused' $$, 'no alert before a job fails this way');

-- Job 1's task reports it; job 2's poll answer names a task that is not job 2's.
select pg_temp.respond(job_id, 'poll', 200, pg_temp.report('task-1')) from jobs where n = 1;
select pg_temp.respond(job_id, 'poll', 200, pg_temp.report('task-other')) from jobs where n = 2;
select private.reconcile_tick('2030-01-01 00:00:16+00');

select results_eq(
  $$ select g.status, g.error_code, g.error_message, p.stage, p.retries, g.completed_at,
            (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from public.generation_jobs g join private.job_pipeline p on p.job_id = g.id
      where g.id = (select job_id from jobs where n = 1) $$,
  $$ values ('failed'::text, 'provider_failed'::text, 'The image could not be generated.'::text, 'failed'::text, 0,
             '2030-01-01 00:00:16+00'::timestamptz, 1) $$,
  'the job fails at the poll that read it, not retried, with one refund and the generic message');
select matches((select last_error from private.job_pipeline where job_id = (select job_id from jobs where n = 1)),
  'unusable result URL 2 of 2 is not on an accepted result host', 'the reason is kept for operators');
select is_empty(
  $$ select 1 from private.requests r join jobs j on j.job_id = r.job_id where r.kind = 'finalize' $$,
  'nothing is sent to the callback function to download');
select is((select stage from private.job_pipeline where job_id = (select job_id from jobs where n = 2)), 'generating',
  'a report naming another task changes nothing');
select results_eq(
  $$ select cleared_at, occurrences, pauses_dispatch, details ->> 'host', (details ->> 'job_id')::uuid, details ->> 'task_id'
       from private.alerts where key = 'result_host_refused' $$,
  $$ select null::timestamptz, 1, false, 'elsewhere.test'::text, job_id, 'task-1'::text from jobs where n = 1 $$,
  'the operator is alerted, with the host to accept if it is KIE''s, the job and the task; dispatch goes on');
select is((select count(*)::int from private.active_alerts where key = 'result_host_refused'), 1, 'it shows in active_alerts');

-- A second answer with the same report (a poll already on its way) finds the job failed.
select private.send_poll((select job_id from jobs where n = 1), '2030-01-01 00:00:17+00');
select pg_temp.respond(job_id, 'poll', 200, pg_temp.report('task-1')) from jobs where n = 1;
select private.reconcile_tick('2030-01-01 00:00:18+00');
select is((select count(*)::int from public.credit_ledger l where l.job_id = (select job_id from jobs where n = 1) and l.kind = 'refund'), 1,
  'refunded exactly once');
select is((select occurrences from private.alerts where key = 'result_host_refused'), 1,
  'a report that changes nothing raises nothing again');

select * from finish();
rollback;
