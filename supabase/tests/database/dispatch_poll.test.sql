-- Polling: late tasks get recordInfo on KIE's cadence within the poll budget; success sends the
-- finalize request to the callback function, failure fails + refunds, "recordInfo is null" is
-- transient within its grace period.
begin;
select plan(17);
\ir dispatch_fixture.sql

select is(array[private.poll_interval_seconds(0), private.poll_interval_seconds(45), private.poll_interval_seconds(600)],
  array[3, 10, 30]::numeric[], 'cadence: every 3 s for 30 s, every 10 s until 2 min, every 30 s after');

create temp table jobs as select n, pg_temp.start_job('po_user') as job_id from generate_series(1, 10) n;
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', n)) from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00' where job_id in (select job_id from jobs);
-- All ten are first due at 00:00:15. The tick takes due jobs by next_run_at and nothing else, so
-- among equal times its order follows where the rows happen to sit (autovacuum reuses space):
-- a millisecond apart, jobs 1-8 are the eight the budget lets through, every run.
update private.job_pipeline p set next_run_at = p.next_run_at - make_interval(secs => (11 - j.n) / 1000.0)
  from jobs j where j.job_id = p.job_id;

select is(private.poll_tick('2030-01-01 00:00:14+00'), 0, 'no poll before poll.first_after_seconds (the callback usually comes first)');
select is(private.poll_tick('2030-01-01 00:00:15+00'), 8, 'ten tasks due, eight polls: the poll budget');
select is(private.poll_tick('2030-01-01 00:00:15.5+00'), 0, 'the budget is spent for this second');
select is(private.poll_tick('2030-01-01 00:00:16+00'), 0, 'a second later the eight polls are unanswered: their tokens are still taken');
select results_eq(
  $$ select q.method::text, q.url, q.headers
       from net.http_request_queue q join private.requests r on r.net_request_id = q.id
      where r.job_id = (select job_id from jobs where n = 1) and r.kind = 'poll' $$,
  $$ values ('GET', 'https://kie.test/api/v1/jobs/recordInfo?taskId=task-1',
             '{"Authorization": "Bearer test-kie-key", "User-Agent": "Mozilla/5.0 (compatible; kiln/0.1)"}'::jsonb) $$,
  'recordInfo names the task and carries the key');
select is((select next_run_at from private.job_pipeline where job_id = (select job_id from jobs where n = 1)),
  '2030-01-01 00:00:18+00'::timestamptz, 'the next poll follows the cadence (3 s at age 15 s)');

-- Answers: running, null within grace, null past grace, failure, success.
select pg_temp.respond(job_id, 'poll', 200, '{"code": 200, "data": {"taskId": "task-1", "state": "generating"}}') from jobs where n = 1;
select pg_temp.respond(job_id, 'poll', 200, '{"code": 422, "msg": "recordInfo is null", "data": null}') from jobs where n = 2;
select pg_temp.respond(job_id, 'poll', 200, format('{"code": 200, "data": {"taskId": "task-4", "state": "fail", "failCode": "422", "failMsg": "nsfw"}}')) from jobs where n = 4;
select pg_temp.respond(job_id, 'poll', 200,
  '{"code": 200, "msg": "success", "data": {"taskId": "task-5", "state": "success", "resultJson": "{\"resultUrls\":[\"https://kie.test/r5.png\"]}"}}') from jobs where n = 5;
select pg_temp.respond(job_id, 'poll', 200, '{"code": 200, "data": {"taskId": "task-other", "state": "success", "resultJson": "{\"resultUrls\":[\"https://kie.test/x.png\"]}"}}') from jobs where n = 6;
select pg_temp.respond(job_id, 'poll', 200, format('{"code": 200, "data": {"taskId": "task-%s", "state": "generating"}}', n)) from jobs where n in (3, 7, 8);
select private.reconcile_tick('2030-01-01 00:00:17+00');

select is((select stage from private.job_pipeline where job_id = (select job_id from jobs where n = 1)), 'generating', 'running: nothing changes');
select is((select stage from private.job_pipeline where job_id = (select job_id from jobs where n = 2)), 'generating',
  'recordInfo is null within the grace period: transient');
select results_eq(
  $$ select j.status, j.error_code, j.error_message, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund')
       from public.generation_jobs j where j.id = (select job_id from jobs where n = 4) $$,
  $$ values ('failed'::text, 'provider_failed'::text, 'The image could not be generated.'::text, 1) $$,
  'a failed task fails the job with our message and one refund');
select is((select stage from private.job_pipeline where job_id = (select job_id from jobs where n = 6)), 'generating',
  'a report naming another task changes nothing');
select is((select stage from private.job_pipeline where job_id = (select job_id from jobs where n = 5)), 'finalizing',
  'success: the job is finalizing');
select results_eq(
  $$ select q.method::text, q.url, q.headers, convert_from(q.body, 'UTF8')::jsonb #>> '{data,taskId}', q.timeout_milliseconds
       from net.http_request_queue q join private.requests r on r.net_request_id = q.id
      where r.job_id = (select job_id from jobs where n = 5) and r.kind = 'finalize' $$,
  format($$ values ('POST', 'https://fn.test/functions/v1/kie-callback?job=%s&source=poll&attempt=1',
             '{"Authorization": "Bearer test-finalize-credential", "Content-Type": "application/json", "User-Agent": "Mozilla/5.0 (compatible; kiln/0.1)"}'::jsonb,
             'task-5', 15000) $$, (select job_id from jobs where n = 5)),
  'the finalize request goes to the callback function with the credential from Vault and the report as body');

-- The eight were answered at 00:00:17: their tokens are back one window later.
select private.poll_tick('2030-01-01 00:00:18+00') as sent_at_18 \gset
select ok(:sent_at_18 >= 2 and (select count(distinct r.job_id)::int from private.requests r join jobs j on j.job_id = r.job_id
                                  where r.kind = 'poll' and j.n in (9, 10)) = 2,
  'the other two go out a window after the first answers');
-- From here on the budget is not the subject.
update private.settings set value = '100' where key = 'poll.per_window';

-- A failed finalize: poll (and finalize) again soon.
select pg_temp.respond(job_id, 'finalize', 503, 'unavailable') from jobs where n = 5;
select private.reconcile_tick('2030-01-01 00:00:20+00');
select ok((select next_run_at < '2030-01-01 00:00:24+00' and last_error like 'finalize http 503%' from private.job_pipeline
            where job_id = (select job_id from jobs where n = 5)),
  'a failed finalize brings the next poll forward');
select private.poll_tick('2030-01-01 00:00:23+00') + private.poll_tick('2030-01-01 00:00:24+00');
select ok(exists (select 1 from private.requests r where r.job_id = (select job_id from jobs where n = 5) and r.kind = 'poll' and r.resolved_at is null),
  'and the finalizing job is polled again');

-- Past the grace period the missing task counts as lost: a new attempt.
select private.poll_tick('2030-01-01 00:02:00+00');
select pg_temp.respond(job_id, 'poll', 200, '{"code": 422, "msg": "recordInfo is null", "data": null}') from jobs where n = 2;
select private.reconcile_tick('2030-01-01 00:02:01+00');
select results_eq(
  $$ select stage, retries, task_id from private.job_pipeline where job_id = (select job_id from jobs where n = 2) $$,
  $$ values ('waiting'::text, 1, null::text) $$,
  'recordInfo is null past the grace period: the task is lost and a new attempt is scheduled');

select * from finish();
rollback;
