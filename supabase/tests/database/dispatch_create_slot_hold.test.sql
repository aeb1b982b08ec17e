-- A createTask token stays taken until one window after the request's outcome is reconciled
-- (the request reached KIE before that), not one window after it was queued.
begin;
select plan(4);
\ir dispatch_fixture.sql

update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
create temp table held as select pg_temp.start_job('sh_user') as job_id;
update private.rate_slots set available_at = '-infinity' where bucket = 'create';
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00', next_run_at = '2030-01-01 00:00:00+00'
 where job_id = (select job_id from held);
select is(private.dispatch_tick('2030-01-01 00:00:00+00'), 1, 'the tick sends the job''s createTask');

-- Its answer is reconciled 3 s later.
update private.requests set resolved_at = '2030-01-01 00:00:03+00', outcome = 'ok'
 where job_id = (select job_id from held) and kind = 'create';

select is(private.take_tokens('create', 25, '2030-01-01 00:00:10+00'), 17,
  'a window after it was queued, its token is still taken');
select is(private.take_tokens('create', 25, '2030-01-01 00:00:12.9+00'), 0, 'and still just before a window after its answer');
select is(private.take_tokens('create', 25, '2030-01-01 00:00:13+00'), 1, 'a window after its answer it is back');

select * from finish();
rollback;
