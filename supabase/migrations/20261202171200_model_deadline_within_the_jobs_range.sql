-- Why: a model's own deadline (private.model_requests.deadline_seconds) had to be positive and
-- nothing more, while jobs.deadline_seconds is bounded to 30 s .. 1 day and the request log's
-- retention (at least 2 days) is sized on that day. A model deadline of three days let
-- housekeeping delete a running job's createTask row, and with it the callback token's hash:
-- callbacks and finalize requests for the job were then refused, and the job (already billed by
-- KIE) timed out. A model's deadline now has the same bounds as the global one.

-- A project that already set a model's deadline outside the range gets the nearest bound, so the
-- migration applies instead of failing on its own reason for existing.
update private.model_requests set deadline_seconds = least(greatest(deadline_seconds, 30), 86400)
 where deadline_seconds not between 30 and 86400;
alter table private.model_requests
  add constraint model_requests_deadline_within_jobs_range check (deadline_seconds between 30 and 86400);
alter table private.model_requests drop constraint model_requests_deadline_positive;
