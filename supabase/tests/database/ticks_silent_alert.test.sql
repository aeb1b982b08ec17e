-- When pg_cron stops starting the ticks, no tick is left to raise an alert: private.active_alerts
-- computes ticks_silent itself, from pg_cron's history, for each registered tick whose active job
-- has started no run for three of its periods plus two minutes.
begin;
select plan(10);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
delete from cron.job_run_details;
-- No job was seen changing (registered, rescheduled, resumed): silence counts from the runs alone.
delete from private.tick_jobs;

create temporary sequence runids start 970001;
-- One run of a tick's job, started `ago` before the test's clock (2030-01-10 00:00).
create function pg_temp.ran(tick text, ago interval, status text default 'succeeded') returns void
language sql as $$
  insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time)
  select j.jobid, nextval('runids'), j.command, status,
         case when status = 'starting' then null else '2030-01-10 00:00:00+00'::timestamptz - ago end,
         case when status = 'succeeded' then '2030-01-10 00:00:00+00'::timestamptz - ago + interval '1 second' end
    from cron.job j where j.jobname = tick
$$;
create function pg_temp.silent() returns setof text language sql as $$
  select t ->> 'name' from jsonb_array_elements(private.silent_ticks('2030-01-10 00:00:00+00')) as t order by 1
$$;

select is(private.silent_ticks('2030-01-10 00:00:00+00'), '[]'::jsonb, 'an empty history says nothing');

select pg_temp.ran(t.name, interval '10 seconds') from private.ticks t;
select is(private.silent_ticks('2030-01-10 00:00:00+00'), '[]'::jsonb, 'every tick started 10 s ago: none is silent');

-- 1 s ticks may go 3 s + 2 min without a start; the 10-minute housekeeping 32 minutes.
delete from cron.job_run_details;
select pg_temp.ran(t.name, interval '10 seconds') from private.ticks t
 where t.name not in ('kiln-dispatch', 'kiln-poll', 'kiln-housekeeping');
select pg_temp.ran('kiln-dispatch', interval '124 seconds');
select pg_temp.ran('kiln-poll', interval '122 seconds');
select pg_temp.ran('kiln-housekeeping', interval '31 minutes');
select results_eq($$ select * from pg_temp.silent() $$, $$ values ('kiln-dispatch') $$,
  'dispatch, 124 s without a start, is silent; poll at 122 s and housekeeping at 31 min are not');
select is((select t from jsonb_array_elements(private.silent_ticks('2030-01-10 00:00:00+00')) as t),
  jsonb_build_object('name', 'kiln-dispatch', 'every_seconds', 1,
                     'last_started_at', '2030-01-09 23:57:56+00'::timestamptz,
                     'silent_since', '2030-01-09 23:59:59+00'::timestamptz),
  'the details say when it last started and since when it counts as silent');

-- A run pg_cron recorded but never started (no connection) is no start; a hung run is one start.
select pg_temp.ran('kiln-dispatch', interval '5 seconds', 'starting');
delete from cron.job_run_details where jobid = (select jobid from cron.job where jobname = 'kiln-poll');
select pg_temp.ran('kiln-poll', interval '200 seconds');
select pg_temp.ran('kiln-poll', interval '130 seconds', 'running');
select pg_temp.ran('kiln-housekeeping', interval '33 minutes');
select results_eq($$ select * from pg_temp.silent() $$,
  $$ values ('kiln-dispatch'), ('kiln-poll') $$,
  'a run still starting does not count; the older housekeeping run does not hide the newer one');

-- A tick with no run in the history counts from the oldest run there.
delete from cron.job_run_details where jobid = (select jobid from cron.job where jobname = 'kiln-deadlines');
select results_eq($$ select * from pg_temp.silent() $$,
  $$ values ('kiln-deadlines'), ('kiln-dispatch'), ('kiln-poll') $$,
  'a tick that never ran while others ran for longer than its allowance is silent');
select is((select t -> 'last_started_at' from jsonb_array_elements(private.silent_ticks('2030-01-10 00:00:00+00')) as t
            where t ->> 'name' = 'kiln-deadlines'), 'null'::jsonb, 'with no last start');

-- A paused job is the operator's decision, not an alert.
select cron.alter_job((select jobid from cron.job where jobname = 'kiln-poll'), active := false);
select results_eq($$ select * from pg_temp.silent() $$,
  $$ values ('kiln-deadlines'), ('kiln-dispatch') $$, 'a paused tick is not listed');

-- The view, read now: the history above is ten years ahead, so move it to now.
update cron.job_run_details set start_time = start_time - ('2030-01-10 00:00:00+00'::timestamptz - now()),
                                end_time = end_time - ('2030-01-10 00:00:00+00'::timestamptz - now());
select results_eq(
  $$ select key, pauses_dispatch, (select array_agg(t ->> 'name' order by t ->> 'name') from jsonb_array_elements(details -> 'ticks') as t)
       from private.active_alerts where key = 'ticks_silent' $$,
  $$ values ('ticks_silent', false, array['kiln-deadlines', 'kiln-dispatch']) $$,
  'private.active_alerts shows ticks_silent, not paused, naming them');
update cron.job_run_details set start_time = now() - interval '1 second' where start_time is not null;
select is((select count(*)::int from private.active_alerts where key = 'ticks_silent'), 0,
  'and shows nothing once they have started again');

select * from finish();
rollback;
