-- A task at KIE past its deadline waits for a poll token for its final poll at most
-- deadline.final_grace_seconds: with the poll budget kept spent by regular polling, the job then
-- fails timed_out with one refund, unpolled, instead of staying generating (its credits held).
begin;
select plan(6);
\ir dispatch_fixture.sql

create temp table jobs as select pg_temp.start_job('dlpb_user') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-dlpb"}}') from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-01 00:15:00+00' where job_id in (select job_id from jobs);
update private.settings set value = '60' where key = 'deadline.final_grace_seconds';
-- Every poll token taken for good: what a backlog of generating jobs does to the budget.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'poll';

select is((select stage from private.job_pipeline where job_id in (select job_id from jobs)), 'generating', 'the job is at KIE');
select is(private.deadline_tick('2030-01-01 00:15:00+00'), 0, 'at the deadline, with no poll token, the job waits for one');
select is(private.deadline_tick('2030-01-01 00:15:59+00'), 0, 'and keeps waiting within the grace');
select is(private.deadline_tick('2030-01-01 00:16:00+00'), 1, 'once the grace has passed it fails without its final poll');
select results_eq(
  $$ select g.status, g.error_code, p.last_error, (select count(*)::int from private.requests r where r.job_id = g.id and r.is_final_poll),
            (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from jobs j join public.generation_jobs g on g.id = j.job_id join private.job_pipeline p on p.job_id = g.id $$,
  $$ values ('failed'::text, 'timed_out'::text, 'deadline passed; no poll token for the final poll within the grace'::text, 0, 1) $$,
  'timed_out with one refund, no final poll sent, and the reason on the pipeline row');
select is(private.deadline_tick('2030-01-01 00:17:00+00'), 0, 'and it is not failed twice');

select * from finish();
rollback;
