-- Runs without an end_time sit at the old end of pg_cron's run history. However many there are,
-- they take no place in the purge's window: the expired runs after them still go, run after run.
-- Those a server restart cut short (pg_cron marks them failed, without an end) go too, once a run
-- recorded after them has expired; runs still starting or running stay.
begin;
select plan(5);
-- Keep pg_cron's own runs out of the table until the rollback.
lock table cron.job_run_details in exclusive mode;
delete from cron.job_run_details;

-- The window holds 3 runs here; the 4 oldest runs never recorded their end.
insert into cron.job_run_details (jobid, runid, command, status, return_message, start_time, end_time) values
  (1, 960001, 'select 1', 'failed',    'server restarted', '2030-01-01 00:00:00+00', null),
  (1, 960002, 'select 1', 'failed',    'server restarted', null, null),  -- cut short before it started
  (1, 960003, 'select 1', 'running',   null, '2030-01-01 00:02:00+00', null),
  (1, 960004, 'select 1', 'starting',  null, null, null),
  (1, 960005, 'select 1', 'succeeded', '1 row', '2030-01-01 00:03:00+00', '2030-01-01 00:03:01+00'),
  (1, 960006, 'select 1', 'succeeded', '1 row', '2030-01-01 00:04:00+00', '2030-01-01 00:04:01+00'),
  (1, 960007, 'select 1', 'failed',    'server restarted', '2030-01-08 23:00:00+00', null),  -- recorded after the newest expired run
  (1, 960008, 'select 1', 'succeeded', '1 row', '2030-01-09 00:00:00+00', '2030-01-09 00:00:01+00');

select is(private.purge_cron_history('2030-01-03 00:00:00+00', 3), 4,
  'the two expired runs behind the runs without an end go, with the two a restart cut short before them');
select results_eq($$ select runid from cron.job_run_details order by runid $$,
  $$ values (960003::bigint), (960004), (960007), (960008) $$,
  'runs still running or starting stay, as do a cut-short run recorded after every expired run and the young run');
select is(private.purge_cron_history('2030-01-03 00:00:00+00', 3), 0,
  'the next run finds nothing more');

-- The restart marks the runs it cut short failed; once a run recorded after them expires, they go.
update cron.job_run_details set status = 'failed', return_message = 'server restarted'
 where status in ('starting', 'running');
select is(private.purge_cron_history('2030-01-10 00:00:01+00', 3), 4,
  'after a restart, the young run expires and takes every cut-short run recorded before it');
select is((select count(*)::int from cron.job_run_details), 0, 'nothing is left');

select * from finish();
rollback;
