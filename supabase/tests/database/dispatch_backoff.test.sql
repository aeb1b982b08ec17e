-- Transient failures retry with exponential backoff and full jitter, at least a full window
-- after a 429, up to retry.max_attempts (a 429 proves KIE queued nothing and does not count);
-- then the job fails with one refund.
begin;
select plan(9);
\ir dispatch_fixture.sql

select is(private.backoff_seconds(0, 0, 0.999999), 1.999998::numeric, 'retry 0: up to base (2 s)');
select is(private.backoff_seconds(3, 0, 0.5), 8::numeric, 'retry 3: half of 2 * 2^3 with jitter 0.5');
select is(private.backoff_seconds(20, 0, 1), 120::numeric, 'capped at retry.cap_seconds');
select is(private.backoff_seconds(1, 10, 0), 10::numeric, 'never below the outcome''s minimum (429: a full window)');

create temp table jobs as select pg_temp.start_job('bo_user') as job_id;
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00' where job_id = (select job_id from jobs);
select pg_temp.respond(job_id, 'create', 200, '{"code": 429, "msg": "rate limited"}') from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
select ok((select next_run_at between '2030-01-01 00:00:10+00' and '2030-01-01 00:00:12+00' from private.job_pipeline
            where job_id = (select job_id from jobs)),
  'after a 429 the job waits at least a full window (10 s), at most the backoff of retry 0');
select is(private.dispatch_tick('2030-01-01 00:00:09+00'), 0, 'not due before its time');

-- Attempts 2..5 fail with 500: the fourth counted failure ends the job.
do $$
declare
  t timestamptz := '2030-01-01 00:01:00+00';
begin
  for i in 2 .. 5 loop
    perform private.dispatch_tick(t);
    perform pg_temp.respond(job_id, 'create', 200, '{"code": 500, "msg": "server error"}') from jobs;
    perform private.reconcile_tick(t + interval '1 second');
    t := t + interval '5 minutes';
  end loop;
end
$$;
select results_eq(
  $$ select p.stage, p.attempt, p.retries, j.status, j.error_code, j.error_message
       from private.job_pipeline p join public.generation_jobs j on j.id = p.job_id where p.job_id = (select job_id from jobs) $$,
  $$ values ('failed'::text, 5, 4, 'failed'::text, 'provider_unavailable'::text, 'The image service had an error. Please try again later.'::text) $$,
  'after retry.max_attempts createTask attempts the job fails with a message a user understands');
select is((select count(*)::int from public.credit_ledger where job_id = (select job_id from jobs) and kind = 'refund'), 1, 'refunded once');
select is((select count(*)::int from private.requests where job_id = (select job_id from jobs) and kind = 'create'), 5,
  'five createTask requests were logged (one 429, four counted failures)');

select * from finish();
rollback;
