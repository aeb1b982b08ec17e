-- A createTask answered by a gateway that had passed the request on (HTTP 504 here; also 502,
-- 520, 524) may have made a task at KIE, as a timeout may: it counts as an unknown outcome, the
-- job waiting for its retry cannot be cancelled (KL023), and a result of the task we never heard
-- of still completes it. One the edge could not deliver (HTTP 522) made nothing: cancel works,
-- and a task we never heard of is not the job's.
begin;
select plan(7);
\ir dispatch_fixture.sql

create temp table cases (label text primary key, job_id uuid);
insert into cases values ('504', pg_temp.start_job('gw_user')), ('522', pg_temp.start_job('gw_user'));
select pg_temp.respond(job_id, 'create', label::integer, format('<html>%s</html>', label)) from cases;
select private.reconcile_tick(now() + interval '2 seconds');
select results_eq(
  $$ select c.label, p.stage, p.unknown_outcomes, r.maybe_accepted from cases c join private.job_pipeline p using (job_id)
       join private.requests r on r.job_id = c.job_id and r.kind = 'create' order by c.label $$,
  $$ values ('504'::text, 'waiting'::text, 1, true), ('522', 'waiting', 0, false) $$,
  'both wait for a retry; only the 504 counts as an unknown outcome');

select job_id as gateway_job from cases where label = '504' \gset
select job_id as edge_job from cases where label = '522' \gset
select is((select task_known from private.callback_target(:'gateway_job', 1, 'task-never-heard-of')), true,
  'after a 504, a task we never heard of may be the job''s');
select is((select task_known from private.callback_target(:'edge_job', 1, 'task-never-heard-of')), false,
  'after a 522, it is not');

select tests.authenticate_as('gw_user');
select throws_ok(format('select public.cancel_generation(%L)', :'gateway_job'), 'KL023', null,
  'a job whose createTask got a 504 cannot be cancelled while KIE may run its task');
select results_eq(
  format('select status, error_code from public.cancel_generation(%L)', :'edge_job'),
  $$ values ('failed'::text, 'cancelled'::text) $$,
  'a job whose createTask got a 522 can be cancelled while it waits');
select tests.act_as_owner();

select is(private.callback_complete(:'gateway_job', 1, 'task-never-heard-of', array[(select 'generated-images/' || user_id || '/' || id || '/d/0.png' from public.generation_jobs where id = :'gateway_job')]), 'applied',
  'the task the 504''d createTask made completes the job');
select results_eq(
  format($$ select j.status, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund')
              from public.generation_jobs j where j.id = %L $$, :'gateway_job'),
  $$ values ('completed'::text, 0) $$,
  'completed, charged once');

select * from finish();
rollback;
