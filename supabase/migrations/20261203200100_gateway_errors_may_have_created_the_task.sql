-- Why: a createTask answered by an HTTP 5xx without a KIE envelope fell to the ('create', 'http',
-- '5xx') row, which says the task was not made (maybe_accepted false). That holds when the edge
-- never reached KIE's origin (Cloudflare 521 refused, 522 connection timed out, 523 unreachable,
-- 525/526 TLS to the origin failed, 530) or when the origin answered with an explicit error (500,
-- 503). It does not hold when the request was passed on and only the answer was lost:
--   * 502 Bad Gateway and 504 Gateway Timeout: per Cloudflare, most often the origin's own
--     gateway answering so; the application behind it may have taken the request;
--   * 520: the origin answered with nothing Cloudflare could read (it crashed, or reset the
--     connection after the handshake): it had the request;
--   * 524 A timeout occurred: the connection to the origin was made and the request sent, and
--     no answer came within Cloudflare's 100 s.
-- Counted as not accepted, these went uncounted in unknown_outcomes, a job waiting to retry after
-- one could be cancelled and refunded while KIE ran (and billed) its task, and that task's result
-- was refused as another task's (private.is_job_task trusts unknown task ids only while a
-- createTask of the job is maybe_accepted).
--
-- They now have their own rows: transient as before (same backoff, still counted against
-- retry.max_attempts), with maybe_accepted, like a timeout. private.kie_outcome takes the exact
-- code before the 5xx class, so every other 5xx keeps the class row. Rows an operator already
-- added for these codes are kept.
--
-- The answers already in our log were recorded under the class row. A job waiting for its retry
-- after one when this is applied would still be cancellable, and its task's result refused, since
-- both read the log. Each such answer (HTTP 502, 504, 520 or 524 without a KIE envelope of its
-- own, so classified by its HTTP status) is marked maybe accepted where the outcome table now
-- says so, and counted once in its job's unknown_outcomes. Applying this again marks nothing.

insert into private.kie_outcomes (operation, source, code, outcome, maybe_accepted, min_backoff_seconds, user_message, description) values
  ('create', 'http', '502', 'transient', true, 0, 'The image service did not answer. Please try again later.',
   'bad gateway: the request may have reached KIE, which may have created the task'),
  ('create', 'http', '504', 'transient', true, 0, 'The image service did not answer. Please try again later.',
   'gateway timeout: the request may have reached KIE, which may have created the task'),
  ('create', 'http', '520', 'transient', true, 0, 'The image service did not answer. Please try again later.',
   'Cloudflare 520: KIE''s origin had the request and answered nothing readable; it may have created the task'),
  ('create', 'http', '524', 'transient', true, 0, 'The image service did not answer. Please try again later.',
   'Cloudflare 524: the request reached KIE''s origin, which did not answer in time; it may have created the task')
on conflict on constraint kie_outcomes_pkey do nothing;

update private.kie_outcomes
   set description = 'edge or server error that proves no task was made: the origin was not reached (Cloudflare 521, 522, 523, 525, 526, 530) or answered an explicit error (500, 503)'
 where (operation, source, code) = ('create', 'http', '5xx') and description = 'edge or server error (522 and friends)';

with marked as (
  update private.requests r
     set maybe_accepted = true
   where r.kind = 'create' and not r.maybe_accepted and r.outcome = 'transient'
     and r.http_status in (502, 504, 520, 524)
     -- Read by its HTTP status (classify_response): no envelope code, or code 200 on an error status.
     and (r.body_code is null or r.body_code = 200)
     and (private.kie_outcome('create', 'http', r.http_status::text)).maybe_accepted
  returning r.job_id
)
update private.job_pipeline p
   set unknown_outcomes = p.unknown_outcomes + m.answers
  from (select job_id, count(*)::integer as answers from marked group by job_id) m
 where p.job_id = m.job_id;

comment on column private.requests.maybe_accepted is
  'A createTask whose outcome is unknown (timeout, unreadable 2xx, lost, or an HTTP 502, 504, 520 or 524 from a gateway that passed it on): KIE may have created a task.';
