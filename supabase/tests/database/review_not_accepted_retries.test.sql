-- Outcomes that prove KIE queued nothing (429, 455, a refused connection) retry until the job's
-- deadline without using up retry.max_attempts; a 429 holds the whole create budget for a full
-- window, so other jobs do not run into the same limit. Times are parameters.
begin;
select plan(9);
\ir dispatch_fixture.sql

create temp table cases (label text, status integer, content text, error_msg text, job_id uuid);
insert into cases values
  ('body 429', 200, '{"code": 429, "msg": "rate limited"}', null, null),
  ('body 455', 200, '{"code": 455, "msg": "maintenance"}', null, null),
  ('connection refused', null, null, 'Couldn''t connect to server', null);
update cases set job_id = pg_temp.start_job('na_user');
update private.job_pipeline set deadline_at = '2030-01-01 02:00:00+00' where job_id in (select job_id from cases);

-- Ten refusals each, twice retry.max_attempts, five minutes apart.
do $$
declare
  t timestamptz := '2030-01-01 00:00:00+00';
begin
  for i in 1 .. 10 loop
    if i > 1 then
      update private.rate_slots set available_at = '-infinity';
      perform private.dispatch_tick(t);
    end if;
    perform pg_temp.respond(c.job_id, 'create', c.status, c.content, false, c.error_msg) from cases c;
    perform private.reconcile_tick(t + interval '1 second');
    t := t + interval '5 minutes';
  end loop;
end
$$;
select results_eq(
  $$ select c.label, p.stage, p.attempt, p.retries, p.free_retries, j.status
       from cases c join private.job_pipeline p using (job_id) join public.generation_jobs j on j.id = c.job_id order by c.label $$,
  $$ values ('body 429'::text, 'waiting'::text, 10, 10, 10, 'pending'::text), ('body 455', 'waiting', 10, 10, 10, 'pending'),
            ('connection refused', 'waiting', 10, 10, 10, 'pending') $$,
  'ten refusals that prove nothing was queued use up no attempt: each job still waits');
select is((select count(*)::int from public.credit_ledger where job_id in (select job_id from cases) and kind = 'refund'), 0,
  'nothing is refunded');

-- The last 429 (reconciled at 00:45:01) holds every create slot until a full window later.
select results_eq(
  $$ select min(available_at), max(available_at) from private.rate_slots where bucket = 'create' $$,
  $$ values ('2030-01-01 00:45:11+00'::timestamptz, '2030-01-01 00:45:11+00'::timestamptz) $$,
  'a 429 holds the whole create budget for a full window');
update private.job_pipeline set next_run_at = '2030-01-01 00:45:05+00' where job_id = (select job_id from cases where label = 'body 455');
update private.job_pipeline set next_run_at = '2030-01-01 01:00:00+00'
 where job_id in (select job_id from cases where label <> 'body 455');
select is(private.dispatch_tick('2030-01-01 00:45:10+00'), 0, 'a job that is due waits for the held window');
select is(private.dispatch_tick('2030-01-01 00:45:11+00'), 1, 'and goes out when it ends');

-- Outcomes that may have reached KIE still count: four 500s end the 455 job.
do $$
declare
  t timestamptz := '2030-01-01 00:46:00+00';
begin
  for i in 1 .. 4 loop
    if i > 1 then
      update private.rate_slots set available_at = '-infinity';
      update private.job_pipeline set next_run_at = t where job_id = (select job_id from cases where label = 'body 455');
      perform private.dispatch_tick(t);
    end if;
    perform pg_temp.respond(job_id, 'create', 200, '{"code": 500, "msg": "server error"}') from cases where label = 'body 455';
    perform private.reconcile_tick(t + interval '1 second');
    t := t + interval '1 minute';
  end loop;
end
$$;
select results_eq(
  $$ select p.stage, p.retries - p.free_retries, j.error_code from private.job_pipeline p join public.generation_jobs j on j.id = p.job_id
      where p.job_id = (select job_id from cases where label = 'body 455') $$,
  $$ values ('failed'::text, 3, 'provider_unavailable'::text) $$,
  'after the free retries, retry.max_attempts counted attempts still end the job');

-- The deadline bounds the free retries: a 429 after it fails the job, with its refund.
update private.rate_slots set available_at = '-infinity';
select is(private.dispatch_tick('2030-01-01 01:00:00+00'), 2, 'the other two jobs go out again');
select pg_temp.respond(job_id, 'create', 200, '{"code": 429, "msg": "rate limited"}') from cases where label = 'body 429';
select private.reconcile_tick('2030-01-01 02:00:01+00');
select results_eq(
  $$ select p.stage, j.status, j.error_code, (select count(*)::int from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund')
       from private.job_pipeline p join public.generation_jobs j on j.id = p.job_id
      where p.job_id = (select job_id from cases where label = 'body 429') $$,
  $$ values ('failed'::text, 'failed'::text, 'provider_unavailable'::text, 1) $$,
  'past the job''s deadline a 429 fails it, refunded once');
select is((select count(*)::int from private.kie_outcomes where not counts_as_attempt), 4,
  'four outcomes prove nothing was queued: create body 429 and 455, HTTP 429, connection refused');

select * from finish();
rollback;
