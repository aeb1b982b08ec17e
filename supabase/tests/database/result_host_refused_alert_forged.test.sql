-- The result_host_refused alert is raised for the reading of a success report whose result URL is
-- off results.allowed_hosts, and its details carry the host alone, never a path or a query. A task
-- KIE reports as failed (state fail, or code 501) brings its own failCode and failMsg, which are
-- passed on as they are: such a report whose failCode is "unusable" and whose failMsg merely starts
-- like our reading's message (a URL with a signed query in it, a host of its choosing) fails its job
-- as KIE's failure, and raises no alert, on the poll path and on the callback path alike.
begin;
select plan(7);
\ir dispatch_fixture.sql

update private.settings set value = '["files.kie.test"]' where key = 'results.allowed_hosts';
create temp table jobs as select n, pg_temp.start_job('forged_alert_user') as job_id from generate_series(1, 3) n;
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', n)) from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-01 00:15:00+00' where job_id in (select job_id from jobs);
select private.poll_tick('2030-01-01 00:00:15+00');

-- A failure report whose failMsg looks like the reading of an off-host result.
create function pg_temp.failed_report(task text, fail_msg text) returns text language sql as $$
  select jsonb_build_object('code', 200, 'msg', 'success', 'data', jsonb_build_object(
    'taskId', task, 'state', 'fail', 'failCode', 'unusable', 'failMsg', fail_msg))::text
$$;
create function pg_temp.lookalike() returns text language sql as $$
  select 'result URL 1 of 1 is not on an accepted result host (results.allowed_hosts): '
         || 'see https://evil.test/private/photo.png?token=secret-signature (host evil.test)'
$$;

-- Job 1 by the poll path.
select pg_temp.respond(job_id, 'poll', 200, pg_temp.failed_report('task-1', pg_temp.lookalike())) from jobs where n = 1;
select private.reconcile_tick('2030-01-01 00:00:16+00');
select is((select status from public.generation_jobs where id = (select job_id from jobs where n = 1)), 'failed',
  'KIE''s failure report fails its job (poll path)');

-- Job 2 by the callback path, as the callback function hands over the report's reading.
select is(private.callback_fail(j.job_id, 1, 'task-2', r.fail_code, r.fail_message, '2030-01-01 00:00:17+00'), 'applied',
  'KIE''s failure report fails its job (callback path)')
  from jobs j, private.interpret_task_report(pg_temp.failed_report('task-2', pg_temp.lookalike())::jsonb) r
 where j.n = 2;

select is_empty($$ select 1 from private.alerts where key = 'result_host_refused' $$,
  'neither raises result_host_refused: KIE''s own failMsg is not the reading of an off-host result');

-- Job 3: a success report with a result URL off the list does raise it, with the host alone.
select pg_temp.respond(job_id, 'poll', 200, format(
  '{"code": 200, "data": {"taskId": "task-3", "state": "success", "resultJson": "{\"resultUrls\": [\"https://elsewhere.test/dir/b.png?sig=secret\"]}"}}'))
  from jobs where n = 3;
select private.reconcile_tick('2030-01-01 00:00:18+00');
select is((select status from public.generation_jobs where id = (select job_id from jobs where n = 3)), 'failed',
  'an off-host result fails its job');
select results_eq(
  $$ select details ->> 'host', details ->> 'task_id', occurrences from private.alerts where key = 'result_host_refused' $$,
  $$ values ('elsewhere.test'::text, 'task-3'::text, 1) $$,
  'the reading of an off-host result raises the alert, naming its host');
select unalike((select details::text from private.alerts where key = 'result_host_refused'), '%/dir/%',
  'the alert carries no path of the URL');
select unalike((select details::text from private.alerts where key = 'result_host_refused'), '%sig=%',
  'the alert carries no query of the URL');

select * from finish();
rollback;
