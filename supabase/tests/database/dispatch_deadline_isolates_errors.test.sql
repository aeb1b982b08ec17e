-- The deadline tick is what guarantees every job ends, so one job it cannot time out must not
-- hold back the others: that job is left as it was, named in a deadline_error alert, and tried
-- again a minute later; the rest of the batch fails timed_out with their refunds.
begin;
select plan(7);
\ir dispatch_fixture.sql

update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
create temp table jobs as select 'poison' as label, pg_temp.start_job('dlie_user') as job_id;
insert into jobs select 'healthy', pg_temp.start_job('dlie_user');
update private.job_pipeline set deadline_at = '2030-01-01 00:15:00+00' where job_id in (select job_id from jobs);
select job_id as poison_job from jobs where label = 'poison' \gset

-- A fault in one job's timeout (any error raised while failing it).
create function pg_temp.poison() returns trigger language plpgsql as $$
begin
  if new.id = current_setting('test.poison_job')::uuid and new.status = 'failed' then
    raise exception 'simulated fault';
  end if;
  return new;
end
$$;
select set_config('test.poison_job', :'poison_job', true);
create trigger poison before update on public.generation_jobs for each row execute function pg_temp.poison();

select is(private.deadline_tick('2030-01-01 00:15:00+00'), 1, 'the healthy job times out beside the faulty one');
select results_eq(
  $$ select j.label, g.status, (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from jobs j join public.generation_jobs g on g.id = j.job_id order by j.label $$,
  $$ values ('healthy'::text, 'failed'::text, 1), ('poison', 'pending', 0) $$,
  'the faulty job is left as it was, nothing half done');
select results_eq(
  $$ select key, details -> 'job_ids', message like '%simulated fault%' from private.active_alerts $$,
  format($$ values ('deadline_error'::text, jsonb_build_array(%L::text), true) $$, :'poison_job'),
  'an operator alert names the job and the error');
select results_eq(
  $$ select p.deadline_at, p.last_error from private.job_pipeline p join jobs j using (job_id) where j.label = 'poison' $$,
  $$ values ('2030-01-01 00:16:00+00'::timestamptz, 'deadline tick: simulated fault'::text) $$,
  'its place in the sweep moves a minute on, so it cannot fill every batch, and the error is on its pipeline row');

drop trigger poison on public.generation_jobs;
select is(private.deadline_tick('2030-01-01 00:15:30+00'), 0, 'it is not tried again within that minute');
select is(private.deadline_tick('2030-01-01 00:16:00+00'), 1, 'then, the fault gone, the next tick times it out');
select is((select status from public.generation_jobs where id = :'poison_job'), 'failed', 'and it has ended');

select * from finish();
rollback;
