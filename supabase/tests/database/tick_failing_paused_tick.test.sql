-- A tick paused with cron.alter_job(active => false) is stopped on purpose, often because it
-- failed: tick_failing no longer names it (as tick_schedule_drift and ticks_silent do not), so an
-- operator who paused it can clear the alert and it stays cleared. Resumed, it counts again.
begin;
select plan(5);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

select jobid as dispatch_job from cron.job where jobname = 'kiln-dispatch' and username = current_user \gset
select jobid as poll_job from cron.job where jobname = 'kiln-poll' and username = current_user \gset

insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  (:dispatch_job, 991001, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  simulated fault 1', '2030-01-01 00:01:00+00', '2030-01-01 00:01:01+00'),
  (:dispatch_job, 991003, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  simulated fault 2', '2030-01-01 00:02:00+00', '2030-01-01 00:02:01+00'),
  (:dispatch_job, 991005, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  simulated fault 3', '2030-01-01 00:03:00+00', '2030-01-01 00:03:01+00'),
  (:poll_job, 991002, current_user, 'select private.poll_tick()', 'failed', 'ERROR:  poll fault 1', '2030-01-01 00:01:00+00', '2030-01-01 00:01:01+00'),
  (:poll_job, 991004, current_user, 'select private.poll_tick()', 'failed', 'ERROR:  poll fault 2', '2030-01-01 00:02:00+00', '2030-01-01 00:02:01+00'),
  (:poll_job, 991006, current_user, 'select private.poll_tick()', 'failed', 'ERROR:  poll fault 3', '2030-01-01 00:03:00+00', '2030-01-01 00:03:01+00');

-- The operator pauses dispatch; poll keeps failing.
select cron.alter_job(:dispatch_job, active := false);
select private.account_tick('2030-01-01 00:04:00+00') as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name' from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t where a.key = 'tick_failing' $$,
  $$ values ('kiln-poll') $$,
  'a paused tick is not named; an active one that keeps failing is');

-- Poll paused too: nothing is failing that runs, and the alert clears.
select cron.alter_job(:poll_job, active := false);
select private.account_tick('2030-01-01 00:05:00+00') as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_failing'), 0,
  'with every failing tick paused the next account run clears the alert');
select is(private.failing_ticks(), '[]'::jsonb, 'failing_ticks lists no paused tick');
select private.account_tick('2030-01-01 00:06:00+00') as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_failing'), 0, 'and it stays cleared');

-- Resumed, its failed runs count again until it succeeds.
select cron.alter_job(:dispatch_job, active := true);
select results_eq(
  $$ select t ->> 'name' from jsonb_array_elements(private.failing_ticks()) as t $$,
  $$ values ('kiln-dispatch') $$,
  'a resumed tick whose last runs failed is named again');

select * from finish();
rollback;
