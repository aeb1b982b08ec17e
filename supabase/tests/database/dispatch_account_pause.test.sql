-- Account errors (401, 402, 433) pause createTask globally with an alert; jobs wait instead of
-- failing. A successful credit check lifts the pause, as does an operator clearing the alert.
begin;
select plan(10);
\ir dispatch_fixture.sql

create temp table jobs as select pg_temp.start_job('ap_user') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 402, "msg": "Credits insufficient"}') from jobs;
select private.reconcile_tick();
select ok(private.dispatch_paused(), 'a 402 pauses dispatch');
insert into jobs select pg_temp.start_job('ap_user');
select is((select count(*)::int from private.job_pipeline where job_id in (select job_id from jobs) and stage = 'waiting'), 2,
  'while paused, new jobs wait (the trigger sends nothing) and the refused one is back in line');
select is(private.dispatch_tick(now() + interval '1 minute'), 0, 'the tick sends nothing while paused');

-- The account check probes: a zero balance keeps the pause, a positive one lifts it.
select private.account_tick();
insert into net._http_response (id, status_code, content)
select net_request_id, 200, '{"code": 200, "msg": "success", "data": 0}' from private.requests where kind = 'credit' and resolved_at is null;
select private.reconcile_tick();
select ok(private.dispatch_paused(), 'a credit check showing 0 credits keeps the pause');
select is((select count(*)::int from private.active_alerts where key = 'kie_low_balance'), 1, 'and raises the low-balance alert');

select private.account_tick();
insert into net._http_response (id, status_code, content)
select net_request_id, 200, '{"code": 200, "msg": "success", "data": "5000"}' from private.requests where kind = 'credit' and resolved_at is null;
select private.reconcile_tick();
select ok(not private.dispatch_paused(), 'a credit check with credits lifts the pause by itself');
select is((select balance from private.kie_account), 5000::numeric, 'the balance is recorded (numbers as strings accepted)');
select is(private.dispatch_tick(now() + interval '1 minute'), 2, 'dispatch resumes: both waiting jobs are sent');

-- An operator may clear the pause by hand.
select private.raise_alert('kie_account', 'test', true);
select private.clear_alert('kie_account');
select ok(not private.dispatch_paused(), 'clearing the alert resumes dispatch');
select throws_ok($$ select private.clear_alert('no_such_alert') $$, 'KL043', null, 'clearing an unknown alert is refused');

select * from finish();
rollback;
