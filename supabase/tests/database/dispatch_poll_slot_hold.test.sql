-- A recordInfo token stays taken until one window after the poll's outcome is reconciled (the
-- request reached KIE before that), not one window after it was queued.
begin;
select plan(3);
\ir dispatch_fixture.sql

-- Every poll token but one is spent for good; the last one is taken by a poll sent at 00:00:00.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'poll';
update private.rate_slots set available_at = '-infinity' where bucket = 'poll' and slot = 1;
select is(private.take_tokens('poll', 1, '2030-01-01 00:00:00+00'), 1, 'the poll takes the last recordInfo token');
select pg_temp.start_job('ps_user') as job_id \gset
insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms)
values (:'job_id', 1, 'poll', -1, '2030-01-01 00:00:00+00', 5000);

-- Its answer is reconciled 2.5 s later.
update private.requests set resolved_at = '2030-01-01 00:00:02.5+00', outcome = 'ok'
 where job_id = :'job_id' and kind = 'poll';

select is(private.take_tokens('poll', 1, '2030-01-01 00:00:03.4+00'), 0,
  'a window after the answer has not passed: the token is still taken');
select is(private.take_tokens('poll', 1, '2030-01-01 00:00:03.5+00'), 1, 'a window after its answer it is back');

select * from finish();
rollback;
