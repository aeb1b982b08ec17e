-- One response that cannot be applied (here: a task id a constraint refuses; in production,
-- e.g. a body of bytes that are not valid UTF-8) is recorded as an error with an operator alert,
-- and the rest of the reconcile batch is applied. A lost request that cannot be handled too.
begin;
select plan(7);
\ir dispatch_fixture.sql

create temp table jobs as select n, pg_temp.start_job('br_user') as job_id from generate_series(1, 3) n;
alter table private.job_pipeline add constraint test_poison check (task_id is distinct from 'poison');
select pg_temp.respond(job_id, 'create', 200,
  format('{"code": 200, "data": {"taskId": "%s"}}', case when n = 2 then 'poison' else 'task-' || n end)) from jobs;

select is(private.reconcile_tick(), 3, 'the batch handles all three responses');
select results_eq(
  $$ select j.n, r.outcome, p.stage from jobs j join private.requests r using (job_id) join private.job_pipeline p using (job_id) order by j.n $$,
  $$ values (1, 'accepted'::text, 'generating'::text), (2, 'error', 'creating'), (3, 'accepted', 'generating') $$,
  'the bad one is marked error; the others are applied');
select matches((select error from private.requests where job_id = (select job_id from jobs where n = 2)), 'test_poison',
  'the error is kept for operators');
select is((select key from private.active_alerts), 'reconcile_error', 'and an operator alert is raised');

-- A createTask with no response, long after its timeout and gone from pg_net's queue (a crash
-- empties it), whose retry a constraint refuses.
delete from private.alerts;
select pg_temp.start_job('br_user') as lost_job \gset
delete from net.http_request_queue q using private.requests r where r.job_id = :'lost_job' and q.id = r.net_request_id;
alter table private.job_pipeline add constraint test_poison_lost check (last_error is null or last_error !~ 'got no response');
select is(private.reconcile_tick(now() + interval '1 hour'), 1, 'the lost request is handled');
select is((select outcome from private.requests where job_id = :'lost_job'), 'error', 'and marked error, its handling having failed');
select results_eq($$ select key, (details ->> 'job_id')::uuid from private.active_alerts $$,
  format($$ values ('reconcile_error'::text, %L::uuid) $$, :'lost_job'),
  'with an operator alert naming its job');

select * from finish();
rollback;
