-- Each way a createTask can end, by HTTP status AND body code (kie-api.md §6) plus transport
-- errors: the logged classification and what it does to the job. Responses are inserted into
-- net._http_response with the columns the real pg_net writes.
begin;
select plan(35);
\ir dispatch_fixture.sql
update private.settings set value = '100' where key = 'dispatch.create_per_window';

create temp table cases (
  label text, status integer, content text, timed_out boolean, error_msg text,
  -- expected: request outcome, maybe_accepted, pipeline stage, job status, error_code, refunds
  expected text, job_id uuid
);
insert into cases (label, status, content, timed_out, error_msg, expected) values
  ('accepted', 200, '{"code": 200, "msg": "success", "data": {"taskId": "t-accepted"}}', false, null, 'accepted|f|generating|generating|-|0'),
  ('accepted task_id, code as string', 200, '{"code": "200", "message": "ok", "data": {"task_id": "t-snake"}}', false, null, 'accepted|f|generating|generating|-|0'),
  ('200 without a task id', 200, '{"code": 200, "msg": "success", "data": {}}', false, null, 'transient|t|waiting|pending|-|0'),
  ('200 not JSON', 200, '<html>oops</html>', false, null, 'transient|t|waiting|pending|-|0'),
  ('body 400', 200, '{"code": 400, "msg": "bad param"}', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('body 404', 200, '{"code": 404, "msg": "not found"}', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('body 422', 200, '{"code": 422, "msg": "content rejected"}', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('body 505', 200, '{"code": 505, "msg": "feature disabled"}', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('body 501', 200, '{"code": 501, "msg": "failed"}', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('undocumented body code', 200, '{"code": 999, "msg": "?"}', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('HTTP 500 with body 422', 500, '{"code": 422, "msg": "This field is required"}', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('body 429', 200, '{"code": 429, "msg": "rate limited"}', false, null, 'transient|f|waiting|pending|-|0'),
  ('body 455', 200, '{"code": 455, "msg": "maintenance"}', false, null, 'transient|f|waiting|pending|-|0'),
  ('body 500', 200, '{"code": 500, "msg": "server error"}', false, null, 'transient|f|waiting|pending|-|0'),
  ('body 503', 200, '{"code": 503, "msg": "?"}', false, null, 'transient|f|waiting|pending|-|0'),
  ('HTTP 403 from the edge', 403, 'error code: 1010', false, null, 'transient|f|waiting|pending|-|0'),
  -- Gateway statuses: the origin was not reached (521, 522, 523, 525) or answered an explicit
  -- error (500, 503), so no task was made; or the request reached it and its answer was lost
  -- (502, 504, 520, 524), so KIE may have made the task.
  ('HTTP 522 from the edge', 522, '<html>522</html>', false, null, 'transient|f|waiting|pending|-|0'),
  ('HTTP 521 from the edge', 521, '<html>521</html>', false, null, 'transient|f|waiting|pending|-|0'),
  ('HTTP 523 from the edge', 523, '<html>523</html>', false, null, 'transient|f|waiting|pending|-|0'),
  ('HTTP 525 from the edge', 525, '<html>525</html>', false, null, 'transient|f|waiting|pending|-|0'),
  ('HTTP 500 without an envelope', 500, 'Internal Server Error', false, null, 'transient|f|waiting|pending|-|0'),
  ('HTTP 503 without an envelope', 503, 'Service Unavailable', false, null, 'transient|f|waiting|pending|-|0'),
  ('HTTP 502 claiming code 200', 502, '{"code": 200, "data": {"taskId": "t-liar"}}', false, null, 'transient|t|waiting|pending|-|0'),
  ('HTTP 504 from a gateway', 504, '<html>504 Gateway Time-out</html>', false, null, 'transient|t|waiting|pending|-|0'),
  ('HTTP 520 from the edge', 520, '<html>520</html>', false, null, 'transient|t|waiting|pending|-|0'),
  ('HTTP 524 from the edge', 524, '<html>524</html>', false, null, 'transient|t|waiting|pending|-|0'),
  ('HTTP 400 without an envelope', 400, 'Bad Request', false, null, 'permanent|f|failed|failed|provider_rejected|1'),
  ('timeout', null, null, true, 'Timeout of 8000 ms reached. Total time: 8001.2 ms', 'transient|t|waiting|pending|-|0'),
  ('connection refused', null, null, false, 'Couldn''t connect to server', 'transient|f|waiting|pending|-|0'),
  ('other transport error', null, null, false, 'Failure when receiving data from the peer', 'transient|t|waiting|pending|-|0'),
  ('body 401', 200, '{"code": 401, "msg": "You do not have access"}', false, null, 'account|f|waiting|pending|-|0'),
  ('body 402', 200, '{"code": 402, "msg": "Credits insufficient"}', false, null, 'account|f|waiting|pending|-|0');

update cases set job_id = pg_temp.start_job('cc_user');
select pg_temp.respond(job_id, 'create', status, content, timed_out, error_msg) from cases;
select private.reconcile_tick(now() + interval '1 second');

select is(
  (select format('%s|%s|%s|%s|%s|%s', r.outcome, case when r.maybe_accepted then 't' else 'f' end, p.stage, j.status,
                 coalesce(j.error_code, '-'), (select count(*) from public.credit_ledger l where l.job_id = j.id and l.kind = 'refund'))
     from private.requests r join private.job_pipeline p using (job_id) join public.generation_jobs j on j.id = p.job_id
    where r.job_id = c.job_id and r.kind = 'create'),
  c.expected, c.label)
from cases c order by c.label;

select is((select task_id from private.job_pipeline where job_id = (select job_id from cases where label = 'accepted task_id, code as string')),
  't-snake', 'the task id is read from data.task_id as well');
select results_eq(
  $$ select key, pauses_dispatch from private.active_alerts $$,
  $$ values ('kie_account'::text, true) $$,
  'an account error pauses dispatch with one operator alert');
-- An hour on: the 429 case held the create budget for a window only.
select is(private.take_tokens('create', 1, now() + interval '1 hour') + private.dispatch_tick(now() + interval '1 hour'), 1,
  'while paused, the dispatch tick sends nothing (tokens are there)');
select * from finish();
rollback;
