-- Runs without an end_time (cut short by a server restart, or still running) stay in pg_cron's
-- run history, and they sit at its old end. However many there are, they take no place in the
-- purge's window: the expired runs after them still go, run after run.
begin;
select plan(3);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
delete from cron.job_run_details;

-- The window holds 3 runs here; the 3 oldest runs never recorded their end.
insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time) values
  (1, 960001, 'select 1', 'failed',    '2030-01-01 00:00:00+00', null),
  (1, 960002, 'select 1', 'failed',    '2030-01-01 00:01:00+00', null),
  (1, 960003, 'select 1', 'running',   '2030-01-01 00:02:00+00', null),
  (1, 960004, 'select 1', 'succeeded', '2030-01-01 00:03:00+00', '2030-01-01 00:03:01+00'),
  (1, 960005, 'select 1', 'succeeded', '2030-01-01 00:04:00+00', '2030-01-01 00:04:01+00'),
  (1, 960006, 'select 1', 'succeeded', '2030-01-09 00:00:00+00', '2030-01-09 00:00:01+00');

select is(private.purge_cron_history('2030-01-03 00:00:00+00', 3), 2,
  'the two expired runs behind three runs without an end go');
select results_eq($$ select runid from cron.job_run_details order by runid $$,
  $$ values (960001::bigint), (960002), (960003), (960006) $$,
  'the runs without an end and the young run stay');
select is(private.purge_cron_history('2030-01-03 00:00:00+00', 3), 0,
  'and the next run finds nothing more');

select * from finish();
rollback;
