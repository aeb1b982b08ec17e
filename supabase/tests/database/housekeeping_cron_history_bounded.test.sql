-- Housekeeping deletes pg_cron's run history from the old end: exactly the runs that ended
-- before the retention (7 days here), never a younger one, also where runid order and end_time
-- order disagree, and at most 20,000 rows in one run, the oldest runids first.
begin;
select plan(5);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

-- The clock: 2030-01-10 00:00, so the cutoff is 2030-01-03 00:00.
insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time) values
  (1, 910001, 'select 1', 'succeeded', '2030-01-02 00:00:00+00', '2030-01-02 00:00:01+00'),  -- expired
  (1, 910002, 'select 1', 'succeeded', '2030-01-02 23:59:00+00', '2030-01-03 00:00:30+00'),  -- started before, ended after the cutoff
  (1, 910003, 'select 1', 'succeeded', '2030-01-02 23:59:10+00', '2030-01-02 23:59:11+00'),  -- expired, after a younger runid
  (1, 910004, 'select 1', 'running',   '2030-01-02 23:59:20+00', null),                      -- no end, still running
  (1, 910005, 'select 1', 'succeeded', '2030-01-02 23:59:50+00', '2030-01-02 23:59:59+00'),  -- expired
  (1, 910006, 'select 1', 'succeeded', '2030-01-03 00:00:00+00', '2030-01-03 00:00:00+00'),  -- ended at the cutoff: kept
  (1, 910007, 'select 1', 'succeeded', '2030-01-09 00:00:00+00', '2030-01-09 00:00:01+00');  -- young

select is(private.housekeeping_tick('2030-01-10 00:00:00+00') -> 'cron_runs', '3'::jsonb,
  'three runs ended before the retention');
select results_eq($$ select runid from cron.job_run_details order by runid $$,
  $$ values (910002::bigint), (910004), (910006), (910007) $$,
  'exactly those go: the run that ended after the cutoff stays though a later runid expired, as do a run still running and younger runs');

-- More expired rows than one run deletes: 20,010 of them, then a young one.
delete from cron.job_run_details;
insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time)
select 1, 920000 + i, 'select 1', 'succeeded', t, t + interval '1 second'
  from generate_series(1, 20010) as i,
       lateral (select '2029-12-01 00:00:00+00'::timestamptz + i * interval '1 minute' as t) as s;
insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time)
values (1, 950000, 'select 1', 'succeeded', '2030-01-09 00:00:00+00', '2030-01-09 00:00:01+00');

select is(private.housekeeping_tick('2030-01-10 00:00:00+00') -> 'cron_runs', '20000'::jsonb,
  'one run deletes at most 20,000 rows');
select results_eq($$ select min(runid), max(runid), count(*)::int from cron.job_run_details $$,
  $$ values (940001::bigint, 950000::bigint, 11) $$,
  'the oldest runids went; the last 10 expired rows and the young one are left for the next run');
select is(private.housekeeping_tick('2030-01-10 00:00:00+00') -> 'cron_runs', '10'::jsonb,
  'and the next run deletes them');

select * from finish();
rollback;
