-- ticks_silent counts a tick's silence from the later of its last start and the moment its job
-- last changed: registered, rescheduled, re-created or resumed. Until then a tick that had just
-- been registered, given a shorter period, re-created by hand or resumed after a long pause was
-- named silent before its first run could be due, because its silence counted from a start long
-- past (or from the oldest run in the history). A tick that then does not start is still named.
begin;
select plan(14);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

create temporary sequence runids start 975001;
-- One run of a tick's job, started `ago` before the transaction's clock.
create function pg_temp.ran(tick text, ago interval) returns void
language sql as $$
  insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time)
  select j.jobid, nextval('runids'), j.command, 'succeeded', now() - ago, now() - ago + interval '1 second'
    from cron.job j where j.jobname = tick and j.username = current_user
$$;
create function pg_temp.silent(after interval) returns setof text language sql as $$
  select t ->> 'name' from jsonb_array_elements(private.silent_ticks(now() + after)) as t order by 1
$$;

-- Two hours of history: every tick started 5 s ago, and kiln-account also two hours ago.
select pg_temp.ran('kiln-account', interval '2 hours');
select pg_temp.ran(t.name, interval '5 seconds') from private.ticks t;
select is(private.silent_ticks(now() + interval '10 seconds'), '[]'::jsonb, 'nothing is silent to begin with');

-- A tick registered now has no run yet: its first is a minute away.
insert into private.ticks (name, every_seconds, command, description)
values ('kiln-test-new', 60, 'select private.pg_cron_supports_seconds()', 'test tick');
select is(private.silent_ticks(now() + interval '10 seconds'), '[]'::jsonb,
  'a tick registered a moment ago is not silent, though the history is older than its allowance');
select ok(private.silent_ticks(now() + interval '301 seconds') @> '[{"name": "kiln-test-new"}]',
  'three periods plus two minutes after it was registered, a tick that never started is silent');
select is((select t ->> 'silent_since' from jsonb_array_elements(private.silent_ticks(now() + interval '301 seconds')) as t
            where t ->> 'name' = 'kiln-test-new')::timestamptz, now() + interval '300 seconds',
  'counting from when it was registered');

-- A tick given a shorter period: its last start, 50 minutes ago, was on time for the old one.
insert into private.ticks (name, every_seconds, command, description)
values ('kiln-test-hourly', 3600, 'select private.setting_keys()', 'test tick');
select pg_temp.ran('kiln-test-hourly', interval '50 minutes');
update private.ticks set every_seconds = 60 where name = 'kiln-test-hourly';
select is(private.silent_ticks(now() + interval '10 seconds'), '[]'::jsonb,
  'a tick rescheduled to a shorter period a moment ago is not silent');

-- The account tick sees housekeeping paused (its last run three hours ago); it is resumed later.
select pg_temp.ran('kiln-housekeeping', interval '3 hours');
delete from cron.job_run_details
 where jobid = (select jobid from cron.job where jobname = 'kiln-housekeeping' and username = current_user)
   and start_time > now() - interval '1 hour';
select cron.alter_job((select jobid from cron.job where jobname = 'kiln-housekeeping' and username = current_user), active := false);
select private.account_tick(now() - interval '30 seconds') as credit_check_sent \gset
select cron.alter_job((select jobid from cron.job where jobname = 'kiln-housekeeping' and username = current_user), active := true);
select is(private.silent_ticks(now() + interval '10 seconds'), '[]'::jsonb,
  'a tick resumed after a long pause is not silent before the account tick has seen it running');
select private.account_tick(now() + interval '30 seconds') as credit_check_sent \gset
select is(private.silent_ticks(now() + interval '10 seconds'), '[]'::jsonb,
  'nor after the account tick has seen it resumed');
select ok(not private.silent_ticks(now() + interval '30 seconds' + interval '32 minutes') @> '[{"name": "kiln-housekeeping"}]',
  'housekeeping has three periods plus two minutes from when the account tick saw it resumed');
select ok(private.silent_ticks(now() + interval '31 seconds' + interval '32 minutes') @> '[{"name": "kiln-housekeeping"}]',
  'and is silent once they are over');

-- A job re-created by hand (a new jobid, no runs) after the account tick last saw the old one.
select cron.unschedule('kiln-results-retention');
select cron.schedule('kiln-results-retention', '* * * * *', 'select private.results_retention_tick()');
select is(private.silent_ticks(now() + interval '40 seconds'), '[]'::jsonb,
  'a job re-created by hand a moment ago is not silent');

-- The view reads the same.
select is((select count(*)::int from private.active_alerts where key = 'ticks_silent'), 0,
  'private.active_alerts shows no ticks_silent for any of them');

-- A tick that stops starting is still named.
delete from cron.job_run_details
 where jobid = (select jobid from cron.job where jobname = 'kiln-dispatch' and username = current_user);
select pg_temp.ran('kiln-dispatch', interval '200 seconds');
select results_eq($$ select * from pg_temp.silent(interval '0 seconds') $$, $$ values ('kiln-dispatch') $$,
  'a tick unchanged for long that has not started for 200 s is silent');

-- A tick the account tick saw paused on more than one run, then resumed before its next run:
-- it counts from the last run that saw it paused, not from the first (when the pause began).
delete from cron.job_run_details
 where jobid = (select jobid from cron.job where jobname = 'kiln-deadlines' and username = current_user);
select pg_temp.ran('kiln-deadlines', interval '3 hours');
select cron.alter_job((select jobid from cron.job where jobname = 'kiln-deadlines' and username = current_user), active := false);
select private.account_tick(now() + interval '1 minute') as credit_check_sent \gset
select private.account_tick(now() + interval '61 minutes') as credit_check_sent \gset
select cron.alter_job((select jobid from cron.job where jobname = 'kiln-deadlines' and username = current_user), active := true);
select ok(not private.silent_ticks(now() + interval '61 minutes' + interval '10 seconds') @> '[{"name": "kiln-deadlines"}]',
  'a tick resumed after a pause the account tick saw for an hour is not silent at once');
select is((select t ->> 'silent_since' from jsonb_array_elements(private.silent_ticks(now() + interval '61 minutes' + interval '136 seconds')) as t
            where t ->> 'name' = 'kiln-deadlines')::timestamptz, now() + interval '61 minutes' + interval '135 seconds',
  'its three periods plus two minutes count from the last account tick run that saw it paused');

select * from finish();
rollback;
