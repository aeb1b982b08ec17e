-- private.callback_complete and private.callback_fail: the completion and failure functions,
-- telling the callback function whether its call changed the job (applied) or not (duplicate).
begin;
select plan(13);
\ir dispatch_fixture.sql

-- Started and accepted by KIE: generating, task task-<n>.
create function pg_temp.accepted(who text, task text) returns uuid language plpgsql as $$
declare
  id uuid := pg_temp.start_job(who);
begin
  perform pg_temp.respond(id, 'create', 200, format('{"code": 200, "data": {"taskId": "%s"}}', task));
  perform private.reconcile_tick();
  return id;
end
$$;
-- Where the callback function stores a delivery: generated-images/<user_id>/<job_id>/<delivery>/<n>.png.
create function pg_temp.stored(job uuid, delivery text, name text) returns text language sql as $$
  select 'generated-images/' || j.user_id || '/' || j.id || '/' || delivery || '/' || name
    from public.generation_jobs j where j.id = job
$$;
create temp table jobs as
  select pg_temp.accepted('co_a', 'task-a') as done, pg_temp.accepted('co_b', 'task-b') as failing,
         pg_temp.accepted('co_c', 'task-c') as retried, pg_temp.accepted('co_d', 'task-d') as foreign_target;
-- Room for two images, so that only where they lie can refuse them.
update public.generation_jobs set image_count = 2 where id = (select foreign_target from jobs);

select is(private.callback_complete((select done from jobs), 1, 'task-a', array[pg_temp.stored((select done from jobs), 'd1', '0.png')]), 'applied',
  'the first result completes the job: applied');
select is(private.callback_complete((select done from jobs), 1, 'task-a', array[pg_temp.stored((select done from jobs), 'd1', '0.png')]), 'duplicate',
  'the same result again: duplicate');
select is(private.callback_fail((select done from jobs), 1, 'task-a', '500', 'late'), 'duplicate',
  'a failure after completion: duplicate');

select is(private.callback_fail((select failing from jobs), 1, 'task-b', '400', 'moderation'), 'applied',
  'a failure of the current task fails the job: applied');
select is(private.callback_fail((select failing from jobs), 1, 'task-b', '400', 'moderation'), 'duplicate',
  'the same failure again: duplicate, and still one refund');
select is((select count(*)::int from public.credit_ledger where job_id = (select failing from jobs) and kind = 'refund'), 1,
  'exactly one refund');

-- A failure code classified transient schedules a retry: the job changed, so applied.
insert into private.kie_outcomes (operation, source, code, outcome, maybe_accepted, min_backoff_seconds, user_message, description)
values ('task', 'task', 'busy', 'transient', false, 0, 'Busy.', 'test: a transient task failure');
select is(private.callback_fail((select retried from jobs), 1, 'task-c', 'busy', 'try again'), 'applied',
  'a failure that schedules a retry: applied');

select throws_ok(format('select private.callback_complete(%L, 1, %L, array[%L])', gen_random_uuid(), 'task-x', 'p.png'),
  'KL040', null, 'an unknown job is refused as complete_job refuses it');

-- A job completes only with images of one delivery of its own: never another user's or another
-- job's object, never images spread over two deliveries or outside a delivery folder.
select throws_ok(format('select private.callback_complete(%L, 1, %L, array[%L])', (select foreign_target from jobs), 'task-d',
                        pg_temp.stored((select done from jobs), 'd1', '0.png')),
  'KL041', null, 'another user''s image cannot complete a job');
select throws_ok(format('select private.callback_complete(%L, 1, %L, array[%L])', (select foreign_target from jobs), 'task-d',
                        'generated-images/' || (select user_id from public.generation_jobs where id = (select foreign_target from jobs))
                          || '/' || (select done from jobs) || '/d1/0.png'),
  'KL041', null, 'an image of another job of the same user cannot complete a job');
select throws_ok(format('select private.callback_complete(%L, 1, %L, array[%L, %L])', (select foreign_target from jobs), 'task-d',
                        pg_temp.stored((select foreign_target from jobs), 'd1', '0.png'),
                        pg_temp.stored((select foreign_target from jobs), 'd2', '1.png')),
  'KL041', null, 'images of two deliveries cannot complete a job together');
select throws_ok(format('select private.callback_complete(%L, 1, %L, array[%L])', (select foreign_target from jobs), 'task-d',
                        'generated-images/' || (select user_id from public.generation_jobs where id = (select foreign_target from jobs))
                          || '/' || (select foreign_target from jobs) || '/0.png'),
  'KL041', null, 'an image outside a delivery folder cannot complete a job');
select results_eq(
  format($$ select j.status, j.result_urls, p.stage from public.generation_jobs j join private.job_pipeline p on p.job_id = j.id
             where j.id = %L $$, (select foreign_target from jobs)),
  $$ values ('generating'::text, '{}'::text[], 'generating'::text) $$,
  'the refused completions changed nothing: the job still waits for its own images');

select * from finish();
rollback;
