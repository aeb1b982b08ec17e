-- A start is sent at once only when a create token is free and no job of the same or a higher
-- plan is waiting and due: otherwise it waits, and the dispatch tick sends the queue in its order
-- (higher plans first, then oldest). A job backing off (not due yet) holds nobody back, nor does a
-- due job of a lower plan.
begin;
select plan(9);
\ir dispatch_fixture.sql

create function pg_temp.stage_of(job uuid) returns text language sql as $$
  select stage from private.job_pipeline where job_id = job
$$;
-- Frees n create tokens now.
create function pg_temp.free_tokens(n integer) returns void language sql as $$
  update private.rate_slots set available_at = '-infinity' where bucket = 'create' and slot <= n
$$;

-- The budget is spent: a paid user's start waits.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
select pg_temp.start_job('tw_paid', 'a red fox', 'fast', 'paid') as paid_job \gset

-- A token comes back before the tick runs: a free start does not take it.
select pg_temp.free_tokens(1);
select pg_temp.start_job('tw_free') as free_job \gset
select is(pg_temp.stage_of(:'free_job'), 'waiting', 'a free start waits while a paid job is waiting');
select is(private.dispatch_tick(now()), 1, 'the tick sends one job with the one token');
select is(pg_temp.stage_of(:'paid_job'), 'creating', 'the paid job, which was first in line');

-- A higher plan goes ahead of a waiting lower one.
select pg_temp.free_tokens(2);
select pg_temp.start_job('tw_pro', 'a red fox', 'fast', 'pro') as pro_job \gset
select is(pg_temp.stage_of(:'pro_job'), 'creating', 'a pro start is sent at once past the waiting free job');

-- The same plan keeps its order: the older free job is first.
select pg_temp.start_job('tw_free_2') as second_free_job \gset
select is(pg_temp.stage_of(:'second_free_job'), 'waiting', 'a second free start waits behind the older free job');

-- A job that is backing off is not due: it holds nobody back.
update private.job_pipeline set next_run_at = now() + interval '1 minute' where job_id in (:'free_job', :'second_free_job');
select pg_temp.start_job('tw_free_3') as third_free_job \gset
select is(pg_temp.stage_of(:'third_free_job'), 'creating', 'with only jobs backing off in line, a start is sent at once');
select is((select count(*)::int from private.requests r where r.kind = 'create' and r.job_id in (:'free_job', :'second_free_job')), 0,
  'and the jobs that waited were never sent');

-- A due job past its deadline is the deadline tick's to fail, not the dispatcher's to send: it holds
-- nobody back either.
update private.job_pipeline set next_run_at = now() - interval '1 second', deadline_at = now() - interval '1 second'
 where job_id in (:'free_job', :'second_free_job');
select pg_temp.free_tokens(1);
select pg_temp.start_job('tw_free_4') as fourth_free_job \gset
select is(pg_temp.stage_of(:'fourth_free_job'), 'creating', 'with only jobs past their deadline in line, a start is sent at once');

-- Ranks are walked from the start's own up, past one whose waiting jobs are all backing off: a
-- due pro job holds a free start back.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
select pg_temp.start_job('tw_pro_2', 'a red fox', 'fast', 'pro') as waiting_pro_job \gset
update private.job_pipeline set next_run_at = now() + interval '1 minute', deadline_at = now() + interval '1 hour'
 where job_id in (:'free_job', :'second_free_job');
select pg_temp.free_tokens(1);
select pg_temp.start_job('tw_free_5') as fifth_free_job \gset
select is(pg_temp.stage_of(:'fifth_free_job'), 'waiting', 'a free start waits behind a due pro job, its own rank all backing off');

select * from finish();
rollback;
