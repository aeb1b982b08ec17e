-- private.callback_complete and private.callback_fail: the completion and failure functions,
-- telling the callback function whether its call changed the job (applied) or not (duplicate).
begin;
select plan(8);
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
create temp table jobs as
  select pg_temp.accepted('co_a', 'task-a') as done, pg_temp.accepted('co_b', 'task-b') as failing,
         pg_temp.accepted('co_c', 'task-c') as retried;

select is(private.callback_complete((select done from jobs), 1, 'task-a', array['generated-images/a/0.png']), 'applied',
  'the first result completes the job: applied');
select is(private.callback_complete((select done from jobs), 1, 'task-a', array['generated-images/a/0.png']), 'duplicate',
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

select * from finish();
rollback;
