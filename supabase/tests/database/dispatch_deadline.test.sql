-- Deadlines: past it a task at KIE gets one final poll, then the job fails timed_out with one
-- refund; a job never accepted fails at once. Terminal is terminal: a later result is recorded
-- for operators only.
begin;
select plan(9);
\ir dispatch_fixture.sql

create temp table jobs as select 'at-kie' as label, pg_temp.start_job('dl_user') as job_id;
insert into jobs select 'finishes', pg_temp.start_job('dl_user');
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
insert into jobs select 'waiting', pg_temp.start_job('dl_user');
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', label)) from jobs where label <> 'waiting';
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-01 00:15:00+00' where job_id in (select job_id from jobs);

select is(private.deadline_tick('2030-01-01 00:14:59+00'), 0, 'nothing happens before the deadline');
select is(private.deadline_tick('2030-01-01 00:15:00+00'), 1, 'at the deadline the never-sent job fails at once');
select is((select count(*)::int from private.requests r where r.job_id in (select job_id from jobs) and r.is_final_poll), 2,
  'each task at KIE gets one final poll');
select is(private.deadline_tick('2030-01-01 00:15:30+00'), 0, 'the final poll''s answer is awaited for deadline.final_grace_seconds');
select is((select count(*)::int from private.requests r where r.job_id in (select job_id from jobs) and r.is_final_poll), 2,
  'and not repeated');

select pg_temp.respond(job_id, 'poll', 200,
  '{"code": 200, "data": {"taskId": "task-finishes", "state": "success", "resultJson": "{\"resultUrls\":[\"https://kie.test/f.png\"]}"}}')
  from jobs where label = 'finishes';
select private.reconcile_tick('2030-01-01 00:15:01+00');
select (private.complete_job(job_id, 1, 'task-finishes', array['u/f.png'], '2030-01-01 00:15:10+00')).status from jobs where label = 'finishes';

select is(private.deadline_tick('2030-01-01 00:16:00+00'), 1, 'after the grace period the still-running job fails');
select results_eq(
  $$ select j.label, g.status, coalesce(g.error_code, '-'),
            (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from jobs j join public.generation_jobs g on g.id = j.job_id order by j.label $$,
  $$ values ('at-kie'::text, 'failed'::text, 'timed_out'::text, 1), ('finishes', 'completed', '-', 0), ('waiting', 'failed', 'timed_out', 1) $$,
  'timed_out with one refund each; the job whose final poll found the result completed');

select (private.complete_job(job_id, 1, 'task-at-kie', array['u/late.png'], '2030-01-01 00:20:00+00')).status from jobs where label = 'at-kie';
select results_eq(
  $$ select g.status, g.result_urls, (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from jobs j join public.generation_jobs g on g.id = j.job_id where j.label = 'at-kie' $$,
  $$ values ('failed'::text, '{}'::text[], 1) $$,
  'a result after the job timed out changes nothing for the user');
select is((select count(*)::int from private.late_results where job_id = (select job_id from jobs where label = 'at-kie')), 1,
  'it is recorded for operators');

select * from finish();
rollback;
