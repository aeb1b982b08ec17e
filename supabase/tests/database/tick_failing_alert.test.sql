-- The kiln-account tick reads pg_cron's run history: a registered tick whose last three finished
-- runs all failed raises tick_failing, naming it with the count, since when and the latest error;
-- a tick with one failed run between successes does not; the first run of the account tick that
-- finds every such tick running again clears it.
begin;
select plan(6);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

select jobid as dispatch_job from cron.job where jobname = 'kiln-dispatch' and username = current_user \gset
select jobid as poll_job from cron.job where jobname = 'kiln-poll' and username = current_user \gset
select jobid as housekeeping_job from cron.job where jobname = 'kiln-housekeeping' and username = current_user \gset

insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  -- kiln-dispatch: a success, then three failures in a row.
  (:dispatch_job, 990001, current_user, 'select private.dispatch_tick()', 'succeeded', '1 row', '2030-01-01 00:00:00+00', '2030-01-01 00:00:01+00'),
  (:dispatch_job, 990004, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  simulated fault 1', '2030-01-01 00:01:00+00', '2030-01-01 00:01:01+00'),
  (:dispatch_job, 990007, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  simulated fault 2', '2030-01-01 00:02:00+00', '2030-01-01 00:02:01+00'),
  (:dispatch_job, 990010, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  simulated fault 3', '2030-01-01 00:03:00+00', '2030-01-01 00:03:01+00'),
  -- kiln-poll: one failure between successes.
  (:poll_job, 990002, current_user, 'select private.poll_tick()', 'succeeded', '1 row', '2030-01-01 00:00:00+00', '2030-01-01 00:00:01+00'),
  (:poll_job, 990005, current_user, 'select private.poll_tick()', 'failed', 'ERROR:  deadlock detected', '2030-01-01 00:01:00+00', '2030-01-01 00:01:01+00'),
  (:poll_job, 990008, current_user, 'select private.poll_tick()', 'succeeded', '1 row', '2030-01-01 00:02:00+00', '2030-01-01 00:02:01+00'),
  -- kiln-housekeeping: two failures, the only runs it has, and one still running.
  (:housekeeping_job, 990003, current_user, 'select private.housekeeping_tick()', 'failed', 'ERROR:  permission denied for table _http_response', '2030-01-01 00:00:00+00', '2030-01-01 00:00:01+00'),
  (:housekeeping_job, 990006, current_user, 'select private.housekeeping_tick()', 'failed', 'ERROR:  permission denied for table _http_response', '2030-01-01 00:10:00+00', '2030-01-01 00:10:01+00'),
  (:housekeeping_job, 990009, current_user, 'select private.housekeeping_tick()', 'running', null, '2030-01-01 00:20:00+00', null);

select private.account_tick('2030-01-01 00:04:00+00') as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name', (t ->> 'failed_runs')::int, (t ->> 'failing_since')::timestamptz, t ->> 'last_error'
       from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
      where a.key = 'tick_failing' $$,
  $$ values ('kiln-dispatch', 3, '2030-01-01 00:01:00+00'::timestamptz, 'ERROR:  simulated fault 3'),
            ('kiln-housekeeping', 2, '2030-01-01 00:00:00+00'::timestamptz, 'ERROR:  permission denied for table _http_response') $$,
  'ticks whose every recent run failed are named with the count, since when and the latest error; one failure between successes is not');
select matches((select message from private.active_alerts where key = 'tick_failing'),
  'kiln-dispatch, kiln-housekeeping keep failing: ERROR:  simulated fault 3', 'the message names them and the first one''s error');

-- Dispatch runs again; housekeeping still fails.
insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  (:dispatch_job, 990011, current_user, 'select private.dispatch_tick()', 'succeeded', '1 row', '2030-01-01 00:04:00+00', '2030-01-01 00:04:01+00');
select private.account_tick('2030-01-01 00:05:00+00') as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name' from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t where a.key = 'tick_failing' $$,
  $$ values ('kiln-housekeeping') $$,
  'a tick that succeeded again leaves the alert');
select is((select occurrences from private.active_alerts where key = 'tick_failing'), 2, 'the alert is the same one, seen again');

update cron.job_run_details set status = 'succeeded', return_message = '1 row', end_time = '2030-01-01 00:20:01+00' where runid = 990009;
select private.account_tick('2030-01-01 00:21:00+00') as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_failing'), 0, 'once every tick runs again the alert clears');

-- A history the check cannot read does not stop the account tick.
alter function private.failing_ticks() rename to failing_ticks_saved;
create function private.failing_ticks() returns jsonb language plpgsql as $$ begin raise exception 'simulated history fault'; end $$;
select lives_ok($$ select private.account_tick('2030-01-01 00:22:00+00') $$, 'the account tick runs on when the check cannot read the history');

select * from finish();
rollback;
