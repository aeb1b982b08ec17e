-- tick_failing names a tick whose last three finished runs all failed. Its details say how long it
-- has been failing: failed_runs counts the failures in a row since its last success and
-- failing_since is the start of the first of them (not of the third-to-last run, which for a
-- 1-second tick failing for an hour said three seconds ago).
begin;
select plan(3);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

select jobid as dispatch_job from cron.job where jobname = 'kiln-dispatch' and username = current_user \gset
select jobid as poll_job from cron.job where jobname = 'kiln-poll' and username = current_user \gset

-- kiln-dispatch: a success, an hour later six failures in a row, a run still going.
-- kiln-poll: four failures, the only runs it has.
insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time)
select :dispatch_job, 993000, current_user, 'select private.dispatch_tick()', 'succeeded', '1 row',
       '2030-01-01 00:00:00+00', '2030-01-01 00:00:01+00'
union all
select :dispatch_job, 993000 + 2 * n, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  fault ' || n,
       '2030-01-01 01:00:00+00'::timestamptz + make_interval(mins => n), '2030-01-01 01:00:01+00'::timestamptz + make_interval(mins => n)
  from generate_series(1, 6) as n
union all
select :dispatch_job, 993100, current_user, 'select private.dispatch_tick()', 'running', null, '2030-01-01 01:10:00+00', null
union all
select :poll_job, 993001 + 2 * n, current_user, 'select private.poll_tick()', 'failed', 'ERROR:  poll fault ' || n,
       '2030-01-01 02:00:00+00'::timestamptz + make_interval(mins => n), '2030-01-01 02:00:01+00'::timestamptz + make_interval(mins => n)
  from generate_series(1, 4) as n;

select results_eq(
  $$ select t ->> 'name', (t ->> 'failed_runs')::int, (t ->> 'failing_since')::timestamptz, t ->> 'last_error'
       from jsonb_array_elements(private.failing_ticks()) as t $$,
  $$ values ('kiln-dispatch', 6, '2030-01-01 01:01:00+00'::timestamptz, 'ERROR:  fault 6'),
            ('kiln-poll', 4, '2030-01-01 02:01:00+00'::timestamptz, 'ERROR:  poll fault 4') $$,
  'failed_runs counts every failure since the last success, failing_since is the first of them');

-- A success among the last three runs: not failing, however many failures came before it.
insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  (:dispatch_job, 993101, current_user, 'select private.dispatch_tick()', 'succeeded', '1 row', '2030-01-01 01:11:00+00', '2030-01-01 01:11:01+00'),
  (:dispatch_job, 993103, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  fault 7', '2030-01-01 01:12:00+00', '2030-01-01 01:12:01+00'),
  (:dispatch_job, 993105, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  fault 8', '2030-01-01 01:13:00+00', '2030-01-01 01:13:01+00');
select results_eq($$ select t ->> 'name' from jsonb_array_elements(private.failing_ticks()) as t $$,
  $$ values ('kiln-poll') $$, 'two failures after a success do not make a tick failing');

insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  (:dispatch_job, 993107, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  fault 9', '2030-01-01 01:14:00+00', '2030-01-01 01:14:01+00');
select results_eq(
  $$ select t ->> 'name', (t ->> 'failed_runs')::int, (t ->> 'failing_since')::timestamptz
       from jsonb_array_elements(private.failing_ticks()) as t where t ->> 'name' = 'kiln-dispatch' $$,
  $$ values ('kiln-dispatch', 3, '2030-01-01 01:12:00+00'::timestamptz) $$,
  'the count starts again after each success');

select * from finish();
rollback;
