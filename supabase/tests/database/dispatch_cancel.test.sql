-- cancel_generation works while the job's createTask is not in pg_net's hands, and refunds
-- once; once handed to pg_net it is refused with KL023 and changes nothing.
begin;
select plan(6);
\ir dispatch_fixture.sql

update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
create temp table jobs as select pg_temp.start_job('ca_user') as job_id;
select job_id as waiting_job from jobs \gset
select tests.authenticate_as('ca_user');
select results_eq(
  format('select status, stage, error_code from public.cancel_generation(%L)', :'waiting_job'),
  $$ values ('failed'::text, 'cancelled'::text, 'cancelled'::text) $$,
  'a waiting job can be cancelled');
select tests.act_as_owner();
select results_eq(
  $$ select p.stage, (select count(*)::int from public.credit_ledger l where l.job_id = p.job_id and l.kind = 'refund')
       from private.job_pipeline p where p.job_id = (select job_id from jobs) $$,
  $$ values ('failed'::text, 1) $$,
  'its pipeline row is terminal and it is refunded once');
select is(private.dispatch_tick(now() + interval '1 minute'), 0, 'a cancelled job is never dispatched');

update private.rate_slots set available_at = '-infinity' where bucket = 'create';
create temp table sent as select pg_temp.start_job('ca_user') as job_id;
select job_id as sent_job from sent \gset
select is((select stage from private.job_pipeline where job_id = (select job_id from sent)), 'creating', 'this one went to pg_net at once');
select tests.authenticate_as('ca_user');
select throws_ok(format('select public.cancel_generation(%L)', :'sent_job'), 'KL023', null,
  'a job handed to pg_net cannot be cancelled');
select tests.act_as_owner();
select results_eq(
  $$ select j.status, p.stage, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund')
       from public.generation_jobs j join private.job_pipeline p on p.job_id = j.id where j.id = (select job_id from sent) $$,
  $$ values ('pending'::text, 'creating'::text, 0) $$,
  'the refused cancel changed nothing');

select * from finish();
rollback;
