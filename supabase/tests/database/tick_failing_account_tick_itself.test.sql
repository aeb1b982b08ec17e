-- kiln-account raises tick_failing for the other ticks, so it cannot report its own failures:
-- private.active_alerts computes, when read, whether kiln-account's own last three finished runs
-- all failed (the rule of private.failing_ticks) and shows it under tick_failing, beside the
-- ticks kiln-account stored before it began to fail. kiln-account's own run never names itself
-- (its run in progress is not among its finished runs: the first run that succeeds after three
-- failures would name itself failing).
begin;
select plan(9);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

select jobid as account_job from cron.job where jobname = 'kiln-account' and username = current_user \gset
select jobid as dispatch_job from cron.job where jobname = 'kiln-dispatch' and username = current_user \gset

create function pg_temp.named() returns setof text language sql as $$
  select t ->> 'name' from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
   where a.key = 'tick_failing' order by 1
$$;

insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  (:account_job, 992001, current_user, 'select private.account_tick()', 'succeeded', '1 row', '2030-01-01 00:00:00+00', '2030-01-01 00:00:01+00'),
  (:account_job, 992004, current_user, 'select private.account_tick()', 'failed', 'ERROR:  account fault 1', '2030-01-01 00:01:00+00', '2030-01-01 00:01:01+00'),
  (:account_job, 992007, current_user, 'select private.account_tick()', 'failed', 'ERROR:  account fault 2', '2030-01-01 00:02:00+00', '2030-01-01 00:02:01+00');
select is((select count(*)::int from private.active_alerts where key = 'tick_failing'), 0,
  'two failed runs of kiln-account after a success raise nothing');

insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  (:account_job, 992010, current_user, 'select private.account_tick()', 'failed', 'ERROR:  account fault 3', '2030-01-01 00:03:00+00', '2030-01-01 00:03:01+00'),
  (:account_job, 992013, current_user, 'select private.account_tick()', 'running', null, '2030-01-01 00:04:00+00', null);
select results_eq(
  $$ select t ->> 'name', (t ->> 'failed_runs')::int, (t ->> 'failing_since')::timestamptz, t ->> 'last_error'
       from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
      where a.key = 'tick_failing' $$,
  $$ values ('kiln-account', 3, '2030-01-01 00:01:00+00'::timestamptz, 'ERROR:  account fault 3') $$,
  'with its last three finished runs failed, the view shows kiln-account under tick_failing, nothing stored');
select matches((select message from private.active_alerts where key = 'tick_failing'),
  '^pg_cron runs of kiln-account keep failing: ERROR:  account fault 3\.', 'the message names it and its error');
select is((select raised_at from private.active_alerts where key = 'tick_failing'), '2030-01-01 00:01:00+00'::timestamptz,
  'raised when its failures began');

-- Dispatch fails too; kiln-account's own run (the one in progress) stores that, and not itself.
insert into cron.job_run_details (jobid, runid, username, command, status, return_message, start_time, end_time) values
  (:dispatch_job, 992002, current_user, 'select private.dispatch_tick()', 'failed', 'ERROR:  dispatch fault', '2030-01-01 00:03:00+00', '2030-01-01 00:03:01+00');
select private.account_tick('2030-01-01 00:04:00+00') as credit_check_sent \gset
select is((select array_agg(t ->> 'name') from private.alerts a, jsonb_array_elements(a.details -> 'ticks') as t
            where a.key = 'tick_failing' and a.cleared_at is null),
  array['kiln-dispatch'], 'the account tick stores the failing ticks but never names itself: its own run is going');
select results_eq($$ select * from pg_temp.named() $$, $$ values ('kiln-account'), ('kiln-dispatch') $$,
  'the view shows one tick_failing naming both');
select is((select count(*)::int from private.active_alerts where key = 'tick_failing'), 1, 'in one row');

-- Its run succeeds: only what it stored is left.
update cron.job_run_details set status = 'succeeded', return_message = '1 row', end_time = '2030-01-01 00:04:01+00'
 where runid = 992013;
select results_eq($$ select * from pg_temp.named() $$, $$ values ('kiln-dispatch') $$,
  'once kiln-account succeeds again the view no longer names it');

-- A paused kiln-account is stopped on purpose, as for every tick.
update cron.job_run_details set status = 'failed', return_message = 'ERROR:  account fault 4' where runid = 992013;
select cron.alter_job(:account_job, active := false);
select results_eq($$ select * from pg_temp.named() $$, $$ values ('kiln-dispatch') $$,
  'a paused kiln-account is not named');

select * from finish();
rollback;
