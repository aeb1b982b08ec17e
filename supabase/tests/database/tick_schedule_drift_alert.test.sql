-- The kiln-account tick compares pg_cron's jobs with the tick registry: a tick whose job runs on
-- another schedule than the registry asks of the installed pg_cron (sub-minute ticks left at once
-- a minute after a pg_cron upgrade, a schedule set by hand, a job gone) raises
-- tick_schedule_drift, naming each tick, what pg_cron has and what it needs, and the fix; the
-- next run after private.schedule_ticks() clears it.
begin;
select plan(7);
\ir dispatch_fixture.sql
select extversion as installed_cron_version from pg_extension where extname = 'pg_cron' \gset

select private.account_tick() as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_schedule_drift'), 0,
  'pg_cron holds the registry''s schedules: no alert');

select cron.alter_job(jobid, schedule => '0 * * * *') from cron.job where jobname = 'kiln-housekeeping' and username = current_user;
select private.account_tick() as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name', t ->> 'schedule', t ->> 'wanted'
       from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
      where a.key = 'tick_schedule_drift' $$,
  $$ values ('kiln-housekeeping', '0 * * * *', '*/10 * * * *') $$,
  'a schedule set by hand raises the alert, naming the tick, its schedule and the registry''s');
select matches((select message from private.active_alerts where key = 'tick_schedule_drift'),
  'kiln-housekeeping.*select private\.schedule_ticks\(\)', 'and the message names the tick and the fix');

select private.schedule_ticks();
select private.account_tick() as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'tick_schedule_drift'), 0,
  'rescheduled from the registry: the alert clears');

-- pg_cron upgraded to a release with 'N seconds' schedules under jobs the older one scheduled.
select tests.pretend_pg_cron_version('1.6');
select private.account_tick() as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name', t ->> 'schedule', t ->> 'wanted'
       from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
      where a.key = 'tick_schedule_drift' $$,
  $$ select name, '* * * * *', every_seconds || ' seconds' from private.ticks where every_seconds < 60 order by name $$,
  'after a pg_cron upgrade every sub-minute tick still scheduled once a minute is named, with its seconds schedule');
select is((select (details -> 'pg_cron_version') #>> '{}' from private.active_alerts where key = 'tick_schedule_drift'), '1.6',
  'and the installed pg_cron version is in the details');
select tests.pretend_pg_cron_version(:'installed_cron_version');

select cron.unschedule('kiln-poll');
select private.account_tick() as credit_check_sent \gset
select results_eq(
  $$ select t ->> 'name', t ->> 'schedule', t ->> 'wanted'
       from private.active_alerts a, jsonb_array_elements(a.details -> 'ticks') as t
      where a.key = 'tick_schedule_drift' $$,
  $$ values ('kiln-poll', null, private.cron_schedule(1, private.pg_cron_supports_seconds())) $$,
  'a registered tick without a pg_cron job is named with no schedule');

select * from finish();
rollback;
