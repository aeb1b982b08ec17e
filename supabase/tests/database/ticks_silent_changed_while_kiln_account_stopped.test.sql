-- private.tick_jobs is written by private.schedule_ticks() and by kiln-account runs, so a job
-- paused, resumed or re-created while kiln-account was itself paused or failing left no record
-- there, and ticks_silent counted its silence from a start (or a record) older than the change: a
-- tick resumed a moment ago was named silent before its first run was due. Such a change is now
-- placed by pg_cron's own tables: the job's row in cron.job was written after the runs of the
-- other ticks that were already recorded in cron.job_run_details, and before the ones that came
-- later. A tick that then really does not start is still named, three periods plus two minutes on.
--
-- One transaction: each savepoint below stands for a separate transaction of the timeline, in
-- the order they would commit (row versions written in a later one are newer).
begin;
select plan(16);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

create temporary sequence runids start 976001;
-- One run of a tick's job, started `ago` before the transaction's clock, lasting a second.
create function pg_temp.ran(tick text, ago interval) returns void
language sql as $$
  insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time)
  select j.jobid, nextval('runids'), j.command, 'succeeded', now() - ago, now() - ago + interval '1 second'
    from cron.job j where j.jobname = tick and j.username = current_user
$$;
create function pg_temp.jobid(tick text) returns bigint language sql as $$
  select j.jobid from cron.job j where j.jobname = tick and j.username = current_user
$$;
create function pg_temp.silent(after interval) returns setof text language sql as $$
  select t ->> 'name' from jsonb_array_elements(private.silent_ticks(now() + after)) as t order by 1
$$;
create function pg_temp.silent_since(tick text, after interval) returns timestamptz language sql as $$
  select (t ->> 'silent_since')::timestamptz
    from jsonb_array_elements(private.silent_ticks(now() + after)) as t where t ->> 'name' = tick
$$;

-- Four hours of history. kiln-account last ran three hours ago, kiln-poll ten minutes later;
-- kiln-deadlines and kiln-results-retention four hours ago.
select pg_temp.ran(t.name, interval '4 hours') from private.ticks t;
select pg_temp.ran('kiln-account', interval '3 hours');
select pg_temp.ran('kiln-poll', interval '2 hours 50 minutes');
-- kiln-deadlines had been paused by then.
select cron.alter_job(pg_temp.jobid('kiln-deadlines'), active := false);

-- kiln-account's last run records what it sees (kiln-deadlines paused), then it stops: paused
-- here; failing runs would record nothing either.
savepoint last_seen;
select private.observe_tick_jobs(now() - interval '3 hours');
release savepoint last_seen;
savepoint stopped;
select cron.alter_job(pg_temp.jobid('kiln-account'), active := false);
-- kiln-poll is paused too, unseen.
select cron.alter_job(pg_temp.jobid('kiln-poll'), active := false);
release savepoint stopped;

-- pg_cron keeps starting the other ticks; their latest runs before the changes below, 20 s ago.
savepoint running;
select pg_temp.ran(name, interval '20 seconds') from unnest(array['kiln-dispatch', 'kiln-reconcile', 'kiln-housekeeping']) as name;
release savepoint running;

-- Then, with kiln-account still stopped, an operator resumes kiln-deadlines, kiln-poll and
-- kiln-account, and re-creates kiln-results-retention by hand.
savepoint changed;
select cron.alter_job(pg_temp.jobid('kiln-deadlines'), active := true);
select cron.alter_job(pg_temp.jobid('kiln-poll'), active := true);
select cron.alter_job(pg_temp.jobid('kiln-account'), active := true);
select cron.unschedule('kiln-results-retention');
select cron.schedule('kiln-results-retention', '* * * * *', 'select private.results_retention_tick()');
release savepoint changed;

-- Runs recorded after the changes (started now) are no sign of when they were made.
savepoint later;
select pg_temp.ran(name, interval '0 seconds') from unnest(array['kiln-dispatch', 'kiln-reconcile']) as name;
release savepoint later;

select ok(not exists (select from pg_temp.silent(interval '10 seconds') as s where s = 'kiln-deadlines'),
  'a tick kiln-account saw paused, resumed while kiln-account was stopped, is not silent at once');
select ok(not exists (select from pg_temp.silent(interval '10 seconds') as s where s = 'kiln-poll'),
  'nor one paused and resumed while kiln-account was stopped, which kiln-account never saw paused');
select ok(not exists (select from pg_temp.silent(interval '10 seconds') as s where s = 'kiln-results-retention'),
  'nor one re-created by hand while kiln-account was stopped');
select ok(not exists (select from pg_temp.silent(interval '10 seconds') as s where s = 'kiln-account'),
  'nor kiln-account itself, resumed after its long pause');
select is((select count(*)::int from private.active_alerts where key = 'ticks_silent'), 0,
  'private.active_alerts shows no ticks_silent');

-- Each counts from the last run pg_cron recorded before its change (ended 19 s ago).
select is(pg_temp.silent_since('kiln-deadlines', interval '117 seconds'), now() - interval '19 seconds' + interval '135 seconds',
  'kiln-deadlines (every 5 s) counts three periods plus two minutes from the last run recorded before it was resumed');
select is(pg_temp.silent_since('kiln-poll', interval '105 seconds'), now() - interval '19 seconds' + interval '123 seconds',
  'kiln-poll (every second) the same');
select is(pg_temp.silent_since('kiln-results-retention', interval '282 seconds'), now() - interval '19 seconds' + interval '300 seconds',
  'kiln-results-retention (every minute) the same');
select is(pg_temp.silent_since('kiln-account', interval '282 seconds'), now() - interval '19 seconds' + interval '300 seconds',
  'kiln-account (every minute) the same');
select results_eq($$ select * from pg_temp.silent(interval '115 seconds') $$,
  $$ values ('kiln-poll') $$,
  'a resumed tick that does not start is named silent once its allowance is over, and only then');

-- A job unchanged since kiln-account last saw it still counts from its last start.
select is(pg_temp.silent_since('kiln-housekeeping', interval '33 minutes'), now() - interval '20 seconds' + interval '1920 seconds',
  'an unchanged tick that stops starting is still named, counting from its last start');

-- kiln-account runs again: what it records keeps each change where pg_cron's runs placed it,
-- kiln-poll's too, though kiln-account finds it as it last saw it (active, the same jobid).
savepoint next_run;
select private.observe_tick_jobs(now());
release savepoint next_run;
select is((select changed_at from private.tick_jobs where name = 'kiln-poll'), now() - interval '19 seconds',
  'kiln-account''s next run records kiln-poll changed after the last run recorded before it was resumed');
select is(pg_temp.silent_since('kiln-poll', interval '105 seconds'), now() - interval '19 seconds' + interval '123 seconds',
  'so kiln-poll still counts from then');
select is(pg_temp.silent_since('kiln-deadlines', interval '117 seconds'), now() - interval '19 seconds' + interval '135 seconds',
  'and kiln-deadlines');
select results_eq($$ select * from pg_temp.silent(interval '10 seconds') $$, $$ select null::text where false $$,
  'nothing is silent ten seconds on');

-- private.schedule_ticks() with nothing to change writes no job's row: it is no change.
savepoint rescheduled;
select private.schedule_ticks();
release savepoint rescheduled;
select is(pg_temp.silent_since('kiln-housekeeping', interval '33 minutes'), now() - interval '20 seconds' + interval '1920 seconds',
  'private.schedule_ticks() run again with nothing to change does not restart an unchanged tick''s count');

select * from finish();
rollback;
