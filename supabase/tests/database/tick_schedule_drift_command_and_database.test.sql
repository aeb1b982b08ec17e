-- A registered tick's pg_cron job that runs on the right schedule but another command (changed
-- by hand with cron.alter_job) or in another database does not run the tick: the kiln-account
-- tick raises tick_schedule_drift for it, naming what pg_cron runs and what the registry asks,
-- and private.schedule_ticks() puts the job back, after which the next run clears the alert.
begin;
select plan(8);
\ir dispatch_fixture.sql
select current_database() as this_database \gset

select private.account_tick() as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_schedule_drift'), 0,
  'pg_cron runs the registry''s ticks: no alert');

select cron.alter_job(jobid, command => 'select 1') from cron.job where jobname = 'kiln-poll' and username = current_user;
select private.account_tick() as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name', t ->> 'command', t ->> 'wanted_command'
       from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
      where a.key = 'tick_schedule_drift' $$,
  $$ values ('kiln-poll', 'select 1', 'select private.poll_tick()') $$,
  'a job whose command was changed by hand raises the alert, naming the command it runs and the registry''s');
select matches((select message from private.active_alerts where key = 'tick_schedule_drift'),
  'kiln-poll.*select private\.schedule_ticks\(\)', 'and the message names the tick and the fix');

select private.schedule_ticks();
select is((select command from cron.job where jobname = 'kiln-poll' and username = current_user), 'select private.poll_tick()',
  'schedule_ticks puts the command back');
select private.account_tick() as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_schedule_drift'), 0,
  'and the next run clears the alert');

select cron.alter_job(jobid, database => 'template1') from cron.job where jobname = 'kiln-housekeeping' and username = current_user;
select private.account_tick() as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name', t ->> 'database', t ->> 'wanted_database'
       from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
      where a.key = 'tick_schedule_drift' $$,
  format($$ values ('kiln-housekeeping', 'template1', %L) $$, :'this_database'),
  'a job moved to another database raises the alert, naming both databases');

select private.schedule_ticks();
select is((select database from cron.job where jobname = 'kiln-housekeeping' and username = current_user), (:'this_database')::text,
  'schedule_ticks moves the job back to this database');
select private.account_tick() as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_schedule_drift'), 0,
  'and the next run clears the alert');

select * from finish();
rollback;
