-- private.callback_target: what the callback function checks a callback against — the owner,
-- the hex sha-256 of the token issued for that attempt, and whether the job still takes results.
begin;
select plan(13);
\ir dispatch_fixture.sql

create temp table started as select pg_temp.start_job('ct_user') as job_id;
create temp table issued as
  select substring(convert_from(q.body, 'UTF8')::jsonb ->> 'callBackUrl' from 'token=([0-9a-f]+)$') as token
    from net.http_request_queue q join private.requests r on r.net_request_id = q.id
   where r.job_id = (select job_id from started) and r.kind = 'create';

select results_eq(
  $$ select user_id, token_hash, accepting from private.callback_target((select job_id from started), 1, 'task-ct') $$,
  $$ select tests.get_supabase_uid('ct_user'), encode(sha256(convert_to((select token from issued), 'UTF8')), 'hex'), true $$,
  'an active job: its owner, the hex sha-256 of the token in its callback URL, accepting');
select is_empty($$ select * from private.callback_target((select job_id from started), 2, 'task-ct') $$,
  'an attempt never sent: no row');
select is_empty($$ select * from private.callback_target(gen_random_uuid(), 1, 'task-ct') $$,
  'an unknown job: no row');
select is((select task_known from private.callback_target((select job_id from started), 1, 'anything')), true,
  'while the createTask has no answer, any task id may be this job''s');
select is((select max_results from private.callback_target((select job_id from started), 1, 'task-ct')), 1,
  'at most image_count results');
select is((select result_hosts from private.callback_target((select job_id from started), 1, 'task-ct')),
  array(select lower(e) from jsonb_array_elements_text(private.setting('results.allowed_hosts')) e),
  'the accepted result hosts, for redirects');

select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-ct"}}') from started;
select private.reconcile_tick();
select is((select task_known from private.callback_target((select job_id from started), 1, 'task-ct')), true,
  'the task the createTask returned is the job''s');
select is((select task_known from private.callback_target((select job_id from started), 1, 'not-the-real-task')), false,
  'once the createTask answered, another task id is not the job''s');
select is(private.callback_complete((select job_id from started), 1, 'not-the-real-task', array[(select 'generated-images/' || user_id || '/' || id || '/d/0.png' from public.generation_jobs where id = (select job_id from started))]),
  'unknown_task', 'a success of another task does not complete the job');
select results_eq(
  $$ select p.stage, p.task_id, (select count(*)::int from private.late_results l where l.job_id = p.job_id and l.outcome = 'unknown_task')
       from private.job_pipeline p where p.job_id = (select job_id from started) $$,
  $$ values ('generating'::text, 'task-ct'::text, 1) $$,
  'the job keeps its stage and task id; the foreign task is recorded for operators');
select throws_ok(format('select private.callback_complete(%L, 1, %L, array[%L, %L])', j.id, 'task-ct',
                        'generated-images/' || j.user_id || '/' || j.id || '/d/0.png', 'generated-images/' || j.user_id || '/' || j.id || '/d/1.png'),
  'KL041', null, 'more images than the job asked for are refused')
  from public.generation_jobs j where j.id = (select job_id from started);
select private.complete_job((select job_id from started), 1, 'task-ct', array['generated-images/x/0.png']);
select is((select accepting from private.callback_target((select job_id from started), 1, 'task-ct')), false,
  'a completed job no longer accepts results');

create temp table failing as select pg_temp.start_job('ct_other') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-ct2"}}') from failing;
select private.reconcile_tick();
select private.fail_job_from_provider((select job_id from failing), 1, 'task-ct2', '400', 'moderation');
select is((select accepting from private.callback_target((select job_id from failing), 1, 'task-ct2')), false,
  'a failed job no longer accepts results');

select * from finish();
rollback;
