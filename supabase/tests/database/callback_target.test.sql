-- private.callback_target: what the callback function checks a callback against — the owner,
-- the hex sha-256 of the token issued for that attempt, and whether the job still takes results.
begin;
select plan(5);
\ir dispatch_fixture.sql

create temp table started as select pg_temp.start_job('ct_user') as job_id;
create temp table issued as
  select substring(convert_from(q.body, 'UTF8')::jsonb ->> 'callBackUrl' from 'token=([0-9a-f]+)$') as token
    from net.http_request_queue q join private.requests r on r.net_request_id = q.id
   where r.job_id = (select job_id from started) and r.kind = 'create';

select results_eq(
  $$ select user_id, token_hash, accepting from private.callback_target((select job_id from started), 1) $$,
  $$ select tests.get_supabase_uid('ct_user'), encode(sha256(convert_to((select token from issued), 'UTF8')), 'hex'), true $$,
  'an active job: its owner, the hex sha-256 of the token in its callback URL, accepting');
select is_empty($$ select * from private.callback_target((select job_id from started), 2) $$,
  'an attempt never sent: no row');
select is_empty($$ select * from private.callback_target(gen_random_uuid(), 1) $$,
  'an unknown job: no row');

select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-ct"}}') from started;
select private.reconcile_tick();
select private.complete_job((select job_id from started), 1, 'task-ct', array['generated-images/x/0.png']);
select is((select accepting from private.callback_target((select job_id from started), 1)), false,
  'a completed job no longer accepts results');

create temp table failing as select pg_temp.start_job('ct_other') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-ct2"}}') from failing;
select private.reconcile_tick();
select private.fail_job_from_provider((select job_id from failing), 1, 'task-ct2', '400', 'moderation');
select is((select accepting from private.callback_target((select job_id from failing), 1)), false,
  'a failed job no longer accepts results');

select * from finish();
rollback;
