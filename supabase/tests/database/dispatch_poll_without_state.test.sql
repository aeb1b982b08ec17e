-- A recordInfo reply always carries data.state (kie-api.md §3); one without it is a malformed or
-- truncated answer, not a finished task. Without a usable result it changes nothing: the job is
-- polled again on the cadence, and the deadline still bounds it (timed_out, one refund). With
-- result URLs it is read as a success, as a callback without state is. Callbacks read as before.
begin;
select plan(9);
\ir dispatch_fixture.sql
update private.settings set value = '100' where key = 'poll.per_window';

create temp table cases (label text primary key, data text, expected text, job_id uuid);
insert into cases (label, data, expected) values
  ('no state, no result', '{"taskId": "%s"}', 'generating|generating|0'),
  ('blank state, empty resultJson', '{"taskId": "%s", "state": " ", "resultJson": ""}', 'generating|generating|0'),
  ('no state, malformed resultJson', '{"taskId": "%s", "resultJson": "{oops", "failCode": ""}', 'generating|generating|0'),
  ('no state, a result URL', '{"taskId": "%s", "resultJson": "{\"resultUrls\":[\"https://kie.test/s.png\"]}"}', 'finalizing|generating|0');
update cases set job_id = pg_temp.start_job('ps_user');
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', job_id)) from cases;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-01 00:10:00+00' where job_id in (select job_id from cases);

select is(private.poll_tick('2030-01-01 00:00:15+00'), 4, 'every task is polled');
select pg_temp.respond(job_id, 'poll', 200, format('{"code": 200, "msg": "success", "data": %s}', format(data, 'task-' || job_id)))
  from cases;
select private.reconcile_tick('2030-01-01 00:00:16+00');

select is(
  (select format('%s|%s|%s', p.stage, j.status,
                 (select count(*) from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund'))
     from private.job_pipeline p join public.generation_jobs j on j.id = p.job_id where p.job_id = c.job_id),
  c.expected, c.label)
from cases c order by c.label;

select is((select count(*)::int from private.requests r join cases c using (job_id)
            where r.kind = 'poll' and c.label like '%, no result' and r.error like '%without data.state%'), 1,
  'the poll request records why its answer was not used');
select is(private.poll_tick('2030-01-01 00:00:30+00'), 3, 'the three answers without state are polled again on the cadence');

-- The deadline still bounds a task that never answers with a state: one final poll, then
-- timed_out with one refund, as for a task that keeps running.
select pg_temp.respond(job_id, 'poll', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', job_id))
  from cases where label = 'no state, no result';
select private.reconcile_tick('2030-01-01 00:00:31+00');
select private.deadline_tick('2030-01-01 00:10:00+00');
select pg_temp.respond(job_id, 'poll', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', job_id))
  from cases where label = 'no state, no result';
select private.reconcile_tick('2030-01-01 00:10:01+00');
select private.deadline_tick('2030-01-01 00:11:01+00');
select results_eq(
  $$ select j.status, j.error_code, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund')
       from public.generation_jobs j where j.id = (select job_id from cases where label = 'no state, no result') $$,
  $$ values ('failed'::text, 'timed_out'::text, 1) $$,
  'past the deadline and its final poll the job times out with one refund');

select results_eq(
  $$ select kind, fail_code from private.interpret_task_report('{"code": 200, "data": {"taskId": "cb"}}') $$,
  $$ values ('failed'::text, 'unusable'::text) $$,
  'a callback without state or result is still read as a success without a usable URL');

select * from finish();
rollback;
