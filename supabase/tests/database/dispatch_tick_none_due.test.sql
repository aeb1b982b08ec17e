-- During a KIE outage nearly every waiting job is backing off. The dispatch tick first asks, rank
-- by rank through the (rank, due time) index, whether any waiting job is due, and returns at once
-- when none is (what that saves is measured by the bench's cost-growth part, not here). The
-- answers stay the queue's: nothing is sent while none is due, a due job of a higher rank is found
-- past a lower rank's jobs backing off, and a due job past its deadline is left to the deadline tick.
begin;
select plan(4);
\ir dispatch_fixture.sql

-- 40 waiting jobs of two plans, all backing off (due in an hour).
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
select pg_temp.start_job('rd_free'), pg_temp.start_job('rd_paid', 'a red fox', 'fast', 'paid');
select public.grant_credits(tests.get_supabase_uid(who), 1000, 'test credits') from unnest(array['rd_free', 'rd_paid']) who;
do $$
begin
  for i in 2 .. 20 loop
    perform pg_temp.start_job('rd_free');
    perform pg_temp.start_job('rd_paid', 'a red fox', 'fast', 'paid');
  end loop;
end
$$;
update private.job_pipeline set next_run_at = now() + interval '1 hour' where stage = 'waiting';
update private.rate_slots set available_at = '-infinity' where bucket = 'create';

select is(private.dispatch_tick(now()), 0, 'with every waiting job backing off, nothing is sent');

-- One job of the higher plan comes due: the tick walks past the lowest rank, finds and sends it.
update private.job_pipeline set next_run_at = now() - interval '1 second'
 where job_id = (select p.job_id from private.job_pipeline p where p.stage = 'waiting' and p.priority > 0 limit 1)
returning job_id as due_job \gset
select is(private.dispatch_tick(now()), 1, 'a due job among them is sent');
select is((select stage from private.job_pipeline where job_id = :'due_job'), 'creating', 'the due one');

-- A due job past its deadline is the deadline tick's, not the dispatcher's.
update private.job_pipeline set next_run_at = now() - interval '1 second', deadline_at = now() - interval '1 second'
 where job_id = (select p.job_id from private.job_pipeline p where p.stage = 'waiting' and p.priority = 0 limit 1);
select is(private.dispatch_tick(now()), 0, 'a due job past its deadline is not sent');

select * from finish();
rollback;
