-- Racing transitions on one job (deadline sweep, late callback, provider failure, poll result)
-- end in one outcome and at most one refund, in any order. (The same race over real concurrent
-- connections: supabase/tests/integration/dispatch-race.test.ts.)
begin;
select plan(5);
\ir dispatch_fixture.sql

create temp table jobs as select n, pg_temp.start_job('rc_user') as job_id from generate_series(1, 2) n;
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', n)) from jobs;
select private.reconcile_tick(now());
update private.job_pipeline set deadline_at = now() where job_id = (select job_id from jobs where n = 1);
update private.job_pipeline set deadline_at = now() + interval '1 day' where job_id = (select job_id from jobs where n = 2);
-- Job 1: a final poll is out, then deadline, failure report, success report, callback.
select private.deadline_tick(now());
select pg_temp.respond(job_id, 'poll', 200,
  '{"code": 200, "data": {"taskId": "task-1", "state": "success", "resultJson": "{\"resultUrls\":[\"https://kie.test/1.png\"]}"}}') from jobs where n = 1;
select private.deadline_tick(now() + interval '1 hour');
select (private.fail_job_from_provider(job_id, 1, 'task-1', '500', 'boom', now() + interval '1 hour')).status from jobs where n = 1;
select private.reconcile_tick(now() + interval '1 hour');
select (private.complete_job(job_id, 1, 'task-1', array['u/1.png'], now() + interval '1 hour')).status from jobs where n = 1;
select private.deadline_tick(now() + interval '2 hours');

-- Job 2: the callback wins, then everything else arrives.
select (private.complete_job(job_id, 1, 'task-2', array['u/2.png'])).status from jobs where n = 2;
select private.deadline_tick(now() + interval '2 days');
select (private.fail_job_from_provider(job_id, 1, 'task-2', '500', 'boom', now() + interval '1 hour')).status from jobs where n = 2;
select (private.complete_job(job_id, 1, 'task-2', array['u/2b.png'])).status from jobs where n = 2;

select results_eq(
  $$ select j.n, g.status, coalesce(g.error_code, '-'), g.result_urls from jobs j join public.generation_jobs g on g.id = j.job_id order by j.n $$,
  $$ values (1, 'failed'::text, 'timed_out'::text, '{}'::text[]), (2, 'completed', '-', '{u/2.png}') $$,
  'the first transition wins each race');
select results_eq(
  $$ select j.n, (select count(*)::int from public.credit_ledger l where l.job_id = j.job_id and l.kind = 'refund') from jobs j order by j.n $$,
  $$ values (1, 1), (2, 0) $$,
  'exactly one refund for the failed job, none for the completed one');
select is((select count(*)::int from private.requests r where r.job_id = (select job_id from jobs where n = 1) and r.kind = 'finalize'), 0,
  'a success polled after the job failed sends no finalize');
select results_eq(
  $$ select j.n, l.source, l.outcome from private.late_results l join jobs j using (job_id) order by j.n, l.id $$,
  $$ values (1, 'provider_failure'::text, 'failed'::text), (1, 'complete', 'success'), (2, 'provider_failure', 'failed'), (2, 'complete', 'success') $$,
  'the losing reports are recorded for operators');

-- A fast callback completes a job still in stage creating; then its createTask answer is an
-- error (at-least-once delivery: a re-sent request failed). The error changes nothing.
create temp table quick as select pg_temp.start_job('rc_user') as job_id;
select (private.complete_job(job_id, 1, 'task-quick', array['u/q.png'])).status from quick;
select pg_temp.respond(job_id, 'create', 200, '{"code": 400, "msg": "bad param"}') from quick;
select private.reconcile_tick(now());
select results_eq(
  $$ select g.status, p.stage, (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from quick q join public.generation_jobs g on g.id = q.job_id join private.job_pipeline p on p.job_id = q.job_id $$,
  $$ values ('completed'::text, 'completed'::text, 0) $$,
  'a createTask error that arrives after the job completed changes nothing');

select * from finish();
rollback;
