-- A job back in `waiting` for a retry was sent before. When that createTask may have created a
-- task at KIE (a timeout, an unreadable 2xx, a lost request), KIE may run it and bill it, and its
-- callback may still complete the job: cancel_generation refuses it with KL023, as for any job
-- handed to pg_net. A job whose earlier createTask provably made nothing (429, 455, connection
-- refused, an account error) can still be cancelled while it waits.
begin;
select plan(8);
\ir dispatch_fixture.sql

create temp table cases (label text primary key, job_id uuid);
insert into cases values ('timeout', pg_temp.start_job('cu_user')), ('429', pg_temp.start_job('cu_user'));
select is((select count(*)::int from private.job_pipeline p join cases c using (job_id) where p.stage = 'creating'), 2,
  'both createTasks went to pg_net');
select pg_temp.respond(job_id, 'create', null, null, true, 'Timeout of 8000 ms reached') from cases where label = 'timeout';
select pg_temp.respond(job_id, 'create', 200, '{"code": 429, "msg": "rate limited"}') from cases where label = '429';
select private.reconcile_tick(now() + interval '2 seconds');
select results_eq(
  $$ select c.label, p.stage, r.maybe_accepted from cases c join private.job_pipeline p using (job_id)
       join private.requests r on r.job_id = c.job_id and r.kind = 'create' order by c.label $$,
  $$ values ('429'::text, 'waiting'::text, false), ('timeout', 'waiting', true) $$,
  'both wait for a retry; only the timed-out createTask may have made a task');

select job_id as timeout_job from cases where label = 'timeout' \gset
select job_id as refused_job from cases where label = '429' \gset
select tests.authenticate_as('cu_user');
select throws_ok(format('select public.cancel_generation(%L)', :'timeout_job'), 'KL023', null,
  'a job whose createTask may be at KIE cannot be cancelled');
select tests.act_as_owner();
select results_eq(
  format($$ select j.status, p.stage, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund')
              from public.generation_jobs j join private.job_pipeline p on p.job_id = j.id where j.id = %L $$, :'timeout_job'),
  $$ values ('pending'::text, 'waiting'::text, 0) $$,
  'the refused cancel changed nothing: the job goes on to its retry');
-- The task the timed-out createTask made reports success: it completes the job, charged once.
select is(private.callback_complete(:'timeout_job', 1, 'orphan-task', array[(select 'generated-images/' || user_id || '/' || id || '/d/0.png' from public.generation_jobs where id = :'timeout_job')]), 'applied',
  'the first task''s result still completes the job');

select tests.authenticate_as('cu_user');
select results_eq(
  format('select status, stage, error_code from public.cancel_generation(%L)', :'refused_job'),
  $$ values ('failed'::text, 'cancelled'::text, 'cancelled'::text) $$,
  'a job whose createTask provably made nothing (429) can still be cancelled while it waits');
select tests.act_as_owner();
select is((select count(*)::int from public.credit_ledger l where l.job_id = :'refused_job' and l.kind = 'refund'), 1,
  'refunded once');
select is(private.dispatch_tick(now() + interval '1 minute'), 0, 'and never dispatched again');

select * from finish();
rollback;
