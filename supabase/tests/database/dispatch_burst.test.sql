-- A burst: 300 jobs waiting, the dispatch tick running every half second for a minute and KIE
-- answering at once. In no 10-second window do more than 18 createTasks go out, and the budget is
-- used in full.
begin;
select plan(3);
\ir dispatch_fixture.sql

update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
create temp table jobs as select pg_temp.start_job('bu_user' || (n % 10)) as job_id from generate_series(1, 300) n;
update private.rate_slots set available_at = '-infinity' where bucket = 'create';
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00', next_run_at = '2030-01-01 00:00:00+00'
 where job_id in (select job_id from jobs);

-- KIE answers each createTask 0.1 s after it was sent: its token is back one window after that.
do $$
declare
  t timestamptz;
begin
  for i in 0 .. 119 loop
    t := '2030-01-01 00:00:00+00'::timestamptz + make_interval(secs => i * 0.5);
    perform private.dispatch_tick(t);
    update private.requests set resolved_at = sent_at + interval '0.1 seconds', outcome = 'ok'
     where kind = 'create' and resolved_at is null and sent_at = t;
  end loop;
end
$$;

select is(
  (select max(c) from (select count(*) over (order by r.sent_at range between current row and interval '9.999 seconds' following) as c
                         from private.requests r where r.kind = 'create') as w)::int,
  18, 'no 10-second window holds more than 18 createTasks');
select is((select count(*)::int from private.requests where kind = 'create'), 108, 'six full windows in a minute: 108 sent');
select is((select count(*)::int from private.job_pipeline where job_id in (select job_id from jobs) and stage = 'waiting'), 192,
  'the rest wait their turn');

select * from finish();
rollback;
