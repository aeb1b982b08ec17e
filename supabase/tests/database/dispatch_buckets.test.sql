-- The rate budgets: createTask 18 per 10 s and recordInfo 8 per 1 s by default, configurable,
-- shared by the start trigger and the ticks; jobs that do not fit wait.
begin;
select plan(11);
\ir dispatch_fixture.sql

select is(private.take_tokens('create', 25, '2030-01-01 00:00:00+00'), 18, 'at most 18 createTask tokens in one window');
select is(private.take_tokens('create', 1, '2030-01-01 00:00:09.9+00'), 0, 'none left before the window has passed');
select is(private.take_tokens('create', 25, '2030-01-01 00:00:10+00'), 18, 'the window later all 18 are back');
select is(private.take_tokens('poll', 20, '2030-01-01 00:00:00+00'), 8, 'at most 8 recordInfo tokens in one window');
select is(private.take_tokens('poll', 20, '2030-01-01 00:00:01+00'), 8, 'a second later 8 more');

update private.settings set value = '5' where key = 'dispatch.create_per_window';
update private.settings set value = '60' where key = 'dispatch.create_window_seconds';
select is(private.take_tokens('create', 25, '2030-01-02 00:00:00+00') + private.take_tokens('create', 25, '2030-01-02 00:00:59+00'),
  5, 'the budget and window are settings');
update private.settings set value = '18' where key = 'dispatch.create_per_window';
update private.settings set value = '10' where key = 'dispatch.create_window_seconds';

-- The start trigger takes a token when one is free; without one the job waits for the tick.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
create temp table waiting as select pg_temp.start_job('bk_user') as job_id;
select results_eq(
  $$ select p.stage, (select count(*)::int from private.requests r where r.job_id = p.job_id)
       from private.job_pipeline p where p.job_id = (select job_id from waiting) $$,
  $$ values ('waiting'::text, 0) $$,
  'with the budget spent, a new job waits and nothing is queued');

delete from vault.secrets where name = 'kie_api_key';
update private.rate_slots set available_at = '-infinity' where bucket = 'create';
insert into waiting select pg_temp.start_job('bk_user');
select is((select count(*)::int from private.rate_slots where bucket = 'create' and available_at > now()), 0,
  'without the KIE key a start takes no token (it could not send)');
do $$ begin perform vault.create_secret('test-kie-key', 'kie_api_key'); end $$;
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';

-- The two jobs already waiting are backing off (not due), so they do not go before new starts.
update private.job_pipeline set next_run_at = now() + interval '1 hour' where job_id in (select job_id from waiting);
update private.rate_slots set available_at = '-infinity' where bucket = 'create' and slot <= 2;
insert into waiting select pg_temp.start_job('bk_user') from generate_series(1, 3);
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
select is((select count(*)::int from private.job_pipeline p where p.job_id in (select job_id from waiting) and p.stage = 'creating'), 2,
  'new jobs are sent from the start while tokens last (two free tokens, three starts)');

update private.rate_slots set available_at = '-infinity' where bucket = 'create' and slot = 3;
select is(private.dispatch_tick(now() + interval '1 second'), 1, 'the dispatch tick sends only what the budget allows');
select is((select count(*)::int from private.job_pipeline p where p.job_id in (select job_id from waiting) and p.stage = 'waiting'), 2,
  'the rest keep waiting');

select * from finish();
rollback;
