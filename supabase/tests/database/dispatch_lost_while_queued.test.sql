-- A request still in pg_net's queue has not been sent: it is waiting, not lost, however long it
-- waits (a stopped worker keeps its queue), and the operator is told that pg_net is not sending.
-- Only once it is gone from the queue unanswered (a crash empties that unlogged table) is it lost.
-- A job that reaches its deadline with its createTask still queued takes the request back out, so
-- no task is made (and billed) for a job already refunded.
begin;
select plan(11);
\ir dispatch_fixture.sql

create temp table jobs as select pg_temp.start_job('lwq_user') as job_id;
select job_id as job from jobs \gset
update private.job_pipeline set deadline_at = now() + interval '1 day' where job_id = :'job';
select is((select count(*)::int from net.http_request_queue q join private.requests r on q.id = r.net_request_id
            where r.job_id = :'job' and r.kind = 'create'), 1, 'the createTask waits in pg_net''s queue (no worker runs here)');

select is(private.reconcile_tick(now() + interval '10 minutes'), 0, 'ten minutes on, nothing is handled');
select results_eq(
  $$ select r.outcome, p.stage, p.retries,
            (select count(*)::int from private.requests x where x.job_id = r.job_id and x.kind = 'create')
       from private.requests r join private.job_pipeline p using (job_id) where r.job_id = (select job_id from jobs) $$,
  $$ values (null::text, 'creating'::text, 0, 1) $$,
  'the queued createTask is not counted lost, and no second one is sent');
select results_eq(
  $$ select key, (details ->> 'waiting')::int from private.active_alerts $$,
  $$ values ('pg_net_stalled'::text, 1) $$,
  'pg_net_stalled tells the operator that requests wait in its queue');

-- A crash empties the unlogged queue: the request is gone unanswered.
delete from net.http_request_queue q using private.requests r where r.job_id = :'job' and q.id = r.net_request_id;
select is(private.reconcile_tick(now() + interval '11 minutes'), 1, 'gone from the queue without an answer, it is lost');
select results_eq(
  $$ select r.outcome, p.stage, p.retries from private.requests r join private.job_pipeline p using (job_id)
      where r.job_id = (select job_id from jobs) and r.attempt = 1 $$,
  $$ values ('lost'::text, 'waiting'::text, 1) $$,
  'and retried within the attempt budget');
select is((select count(*)::int from private.active_alerts where key = 'pg_net_stalled'), 0,
  'the first tick that finds nothing waiting in the queue clears the alert');
select isnt((select cleared_at from private.alerts where key = 'pg_net_stalled'), null, 'cleared, not deleted');

-- The worker stays stopped until a second job's deadline.
select pg_temp.start_job('lwq_user') as late_job \gset
update private.job_pipeline set deadline_at = now() + interval '1 minute' where job_id = :'late_job';
select is(private.deadline_tick(now() + interval '2 minutes'), 1, 'at its deadline the job still creating fails');
select results_eq(
  $$ select g.status, g.error_code, r.outcome,
            (select count(*)::int from net.http_request_queue q where q.id = r.net_request_id),
            (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from public.generation_jobs g join private.requests r on r.job_id = g.id and r.kind = 'create'
      where g.id = $$ || quote_literal(:'late_job') || $$ $$,
  $$ values ('failed'::text, 'timed_out'::text, 'withdrawn'::text, 0, 1) $$,
  'its queued createTask is taken back out of pg_net''s queue, unsent, and the job refunded once');

-- After a crash pg_net's ids restart: a request still unresolved in our log may share its id with
-- someone else's queued request. That one is not ours to take back.
select pg_temp.start_job('lwq_user') as reused_job \gset
select net.http_get('https://elsewhere.test/not-ours') as other_request \gset
delete from net.http_request_queue q using private.requests r where r.job_id = :'reused_job' and q.id = r.net_request_id;
update private.requests set net_request_id = :'other_request' where job_id = :'reused_job' and kind = 'create';
update private.job_pipeline set deadline_at = now() + interval '1 minute' where job_id = :'reused_job';
select private.deadline_tick(now() + interval '2 minutes');
select results_eq(
  format($$ select g.status, r.outcome, (select count(*)::int from net.http_request_queue q where q.id = %s)
              from public.generation_jobs g join private.requests r on r.job_id = g.id and r.kind = 'create' where g.id = %L $$,
         :'other_request', :'reused_job'),
  $$ values ('failed'::text, null::text, 1) $$,
  'a queued request that only shares our id (not a createTask) is left in the queue');

select * from finish();
rollback;
