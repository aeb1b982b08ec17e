-- An account pause lifts only for the cause that raised it: a credit check showing credits lifts
-- a 402 (out of credits) pause; a 433 (sub-key over its cap) or 401 (key refused) leaves credits
-- on the account, so only an operator lifts it. A 433 pause no longer flaps.
begin;
select plan(8);
\ir dispatch_fixture.sql

create function pg_temp.credit_check(content text) returns void language sql as $$
  select private.account_tick();
  insert into net._http_response (id, status_code, content)
  select net_request_id, 200, content from private.requests where kind = 'credit' and resolved_at is null;
  select private.reconcile_tick();
$$;

create temp table jobs as select pg_temp.start_job('pc_user') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 433, "msg": "sub-key usage cap reached"}') from jobs;
select private.reconcile_tick();
select ok(private.dispatch_paused(), 'a 433 pauses dispatch');
select pg_temp.credit_check('{"code": 200, "msg": "success", "data": 5000}');
select ok(private.dispatch_paused(), 'a credit check with credits does not lift a 433 pause');
select is(private.dispatch_tick(now() + interval '1 minute'), 0, 'so the refused job is not sent again');
select alike((select message from private.active_alerts where key = 'kie_account'), '%until an operator clears this alert%',
  'the alert tells the operator it will not lift by itself');

-- Out of credits as well: the balance alone still does not lift it.
select pg_temp.credit_check('{"code": 402, "msg": "Credits insufficient"}');
select pg_temp.credit_check('{"code": 200, "msg": "success", "data": 5000}');
select is((select details -> 'codes' from private.alerts where key = 'kie_account' and cleared_at is null), '["433", "402"]'::jsonb,
  'the pause remembers both causes, and the balance did not lift it');

select private.clear_alert('kie_account');
select ok(not private.dispatch_paused(), 'an operator clears it');

-- A pause raised by a 402 alone lifts when credits are back.
select pg_temp.credit_check('{"code": 402, "msg": "Credits insufficient"}');
select ok(private.dispatch_paused(), 'a 402 pauses dispatch (the earlier causes were cleared with the alert)');
select pg_temp.credit_check('{"code": 200, "msg": "success", "data": 5000}');
select ok(not private.dispatch_paused(), 'and a credit check with credits lifts it by itself');

select * from finish();
rollback;
