-- A result the callback function can never store (an image over the bucket's size limit, or one
-- Storage refuses for what it is) is recorded as the provider outcome "unusable": the job fails
-- at once, permanently (no retry makes another task), with one refund; the reason stays private.
begin;
select plan(3);
\ir dispatch_fixture.sql

create temp table jobs as select pg_temp.start_job('cur_user') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-cur"}}') from jobs;
select private.reconcile_tick();
select job_id as job from jobs \gset

select is(private.callback_fail(:'job', 1, 'task-cur', 'unusable', 'result image 1 of 1 cannot be stored: larger than 20000000 bytes'),
  'applied', 'the failure is applied');
select results_eq(
  $$ select g.status, g.error_code, g.error_message, p.stage, p.retries,
            (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from public.generation_jobs g join private.job_pipeline p on p.job_id = g.id where g.id = (select job_id from jobs) $$,
  $$ values ('failed'::text, 'provider_failed'::text, 'The image could not be generated.'::text, 'failed'::text, 0, 1) $$,
  'failed at once, not retried, refunded once, with the generic message for the user');
select matches((select last_error from private.job_pipeline where job_id = :'job'), 'larger than 20000000 bytes',
  'the reason is kept for operators');

select * from finish();
rollback;
