-- ticks_silent is computed by private.active_alerts when it is read; private.alerts never holds
-- it, so private.clear_alert cannot clear it. The refusal says so and what makes it go, instead of
-- "no alert ticks_silent" with a hint to look at the view that shows it.
begin;
select plan(5);

-- The hint a statement fails with.
create function pg_temp.hint_of(statement text) returns text language plpgsql as $$
declare
  hint text;
begin
  execute statement;
  return 'no error';
exception when others then
  get stacked diagnostics hint = pg_exception_hint;
  return hint;
end
$$;

select throws_ok($$ select private.clear_alert('ticks_silent') $$, 'KL043',
  'ticks_silent cannot be cleared', 'clearing ticks_silent is refused, naming the alert');
select is(tests.refusal($$ select private.clear_alert('ticks_silent') $$),
  'KL043: private.active_alerts computes it when read, from pg_cron''s run history; it is never stored',
  'the detail says where the alert comes from');
select is(pg_temp.hint_of($$ select private.clear_alert('ticks_silent') $$),
  'It goes by itself once pg_cron starts the ticks again: see step 4 of "A job seems stuck" in the README.',
  'the hint says what makes it go');

-- Other keys are as before: an unknown one is refused, a stored one clears.
select throws_ok($$ select private.clear_alert('no_such_alert') $$, 'KL043', 'no such alert',
  'an unknown key is refused as before');
select private.raise_alert('reconcile_error', 'test alert', false, '{}'::jsonb, now());
select ok(private.clear_alert('reconcile_error'), 'a stored alert still clears');

select * from finish();
rollback;
