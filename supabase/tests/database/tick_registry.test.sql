-- The tick registry: cadences map to pg_cron schedules, schedule_ticks installs exactly the
-- registered ticks, and a change to the registry reaches pg_cron by itself.
begin;
select plan(11);

select is(private.cron_schedule(cadence, supported), expected, format('%s s (seconds %s) -> %s', cadence, supported, expected))
  from (values
    (5, true, '5 seconds'),
    (5, false, '* * * * *'),
    (60, true, '* * * * *'),
    (300, false, '*/5 * * * *'),
    (21600, true, '0 */6 * * *'),
    (86400, true, '0 0 * * *')
  ) as cases (cadence, supported, expected);

select throws_ok(
  $$insert into private.ticks (name, every_seconds, command, description)
    values ('kiln-odd', 70, 'select private.setting_keys()', 'not a divisor of an hour')$$,
  '23514', null, 'a cadence pg_cron cannot express is refused');

insert into private.ticks (name, every_seconds, command, description)
values ('kiln-test-tick', 5, 'select private.pg_cron_supports_seconds()', 'test tick');
select cron.schedule('kiln-test-removed', '* * * * *', 'select 1');
select private.schedule_ticks();

select is(
  (select string_agg(format('%s|%s|%s', jobname, schedule, command), ', ' order by jobname) from cron.job where jobname like 'kiln-test-%'),
  format('kiln-test-tick|%s|select private.pg_cron_supports_seconds()', private.cron_schedule(5, private.pg_cron_supports_seconds())),
  'a registered tick is scheduled at its cadence and an unregistered kiln- job is removed');

select private.schedule_ticks();
select is((select count(*)::int from cron.job where jobname = 'kiln-test-tick'), 1, 'scheduling again is idempotent');

update private.ticks set every_seconds = 300 where name = 'kiln-test-tick';
select is((select schedule from cron.job where jobname = 'kiln-test-tick'), private.cron_schedule(300, private.pg_cron_supports_seconds()),
  'a changed cadence reaches pg_cron without schedule_ticks being run');
delete from private.ticks where name = 'kiln-test-tick';
select is((select count(*)::int from cron.job where jobname = 'kiln-test-tick'), 0, 'and a removed tick stops running');

select * from finish();
rollback;
