-- KIE's failMsg never reaches the app: error_message is our own message for the outcome, through
-- the callback (callback_fail, fail_job_from_provider) and the poll path alike. The provider's
-- text is kept for operators in last_error: one line, no control or bidi characters, capped.
begin;
select plan(10);
\ir dispatch_fixture.sql

create temp table jobs as select n, pg_temp.start_job('pt_user') as job_id from generate_series(1, 3) n;
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', n)) from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00' where job_id in (select job_id from jobs);

-- 1: a failure callback with a bidi override and 200,000 characters.
select private.callback_fail(job_id, 1, 'task-1', '500', U&'\202E' || 'evil ' || repeat('x', 200000), '2030-01-01 00:00:05+00')
  from jobs where n = 1;
-- 2: the same through the poll path.
select private.poll_tick('2030-01-01 00:00:15+00');
select pg_temp.respond(job_id, 'poll', 200, jsonb_build_object('code', 200, 'data', jsonb_build_object(
         'taskId', 'task-2', 'state', 'fail', 'failCode', '422', 'failMsg', U&'\202E' || 'evil ' || repeat('y', 200000)))::text)
  from jobs where n = 2;
select private.reconcile_tick('2030-01-01 00:00:16+00');
-- 3: control characters and an isolate through fail_job_from_provider.
select private.fail_job_from_provider(job_id, 1, 'task-3', '400', E'line one\nline\ttwo\u0007' || U&'\2066' || 'end', '2030-01-01 00:00:17+00')
  from jobs where n = 3;

select results_eq(
  $$ select n, j.status, j.error_message from jobs join public.generation_jobs j on j.id = jobs.job_id order by n $$,
  $$ values (1, 'failed'::text, 'The image could not be generated.'::text), (2, 'failed', 'The image could not be generated.'),
            (3, 'failed', 'The image could not be generated.') $$,
  'the app sees only our message, whatever KIE wrote');
select is((select count(*)::int from public.credit_ledger l join jobs on jobs.job_id = l.job_id
            where l.kind = 'refund' and l.reason = 'Refund: The image could not be generated.'), 3,
  'the ledger reason is ours too');
select ok((select bool_and(length(p.last_error) <= 500) from private.job_pipeline p join jobs using (job_id)),
  'last_error is capped');
select ok((select bool_and(p.last_error !~ '[\u0001-\u001f\u200e\u200f\u202a-\u202e\u2066-\u2069]') from private.job_pipeline p join jobs using (job_id)),
  'last_error holds no control or bidi characters');
select ok((select p.last_error like 'task task-1 failed: 500 evil xxx%' from private.job_pipeline p join jobs using (job_id) where n = 1),
  'the callback''s failMsg is kept for operators');
select ok((select p.last_error like 'task task-2 failed: 422 evil yyy%' from private.job_pipeline p join jobs using (job_id) where n = 2),
  'so is the polled one');
select is((select p.last_error from private.job_pipeline p join jobs using (job_id) where n = 3),
  'task task-3 failed: 400 line one line two end', 'control characters and isolates become one space each run');
select is((select length(p.last_error) from private.job_pipeline p join jobs using (job_id) where n = 1), length('task task-1 failed: 500 ') + 300,
  'KIE''s text is cut to 300 characters');

-- A late report of the same task is recorded for operators, cleaned and capped as well.
select private.callback_fail(job_id, 1, 'task-1', U&'\202E' || repeat('c', 1000), U&'\202E' || repeat('z', 200000), '2030-01-01 00:01:00+00')
  from jobs where n = 1;
select results_eq(
  $$ select length(l.detail ->> 'fail_message'), length(l.detail ->> 'fail_code'), (l.detail::text ~ '\u202e')
       from private.late_results l where l.job_id = (select job_id from jobs where n = 1) $$,
  $$ values (300, 64, false) $$,
  'a late report''s text is cleaned and capped in late_results');
select is((select error_message from public.generation_jobs where id = (select job_id from jobs where n = 1)),
  'The image could not be generated.', 'and changes nothing for the user');

select * from finish();
rollback;
