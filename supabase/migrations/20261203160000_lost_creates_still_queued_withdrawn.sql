-- Why: until 20261202171000 the reconcile tick declared a createTask lost without looking at
-- pg_net's queue, so a request the worker had not sent yet (a stopped worker, a backlog) was
-- resolved 'lost', retried, and stayed queued. 20261202171000 stopped new ones, but a project that
-- applied it while its worker was stalled kept those already declared lost in the queue: the
-- deadline tick takes back only unresolved requests, and pg_net_stalled counts only those, so
-- they waited unseen and reached KIE when the worker came back, each a task KIE runs and bills
-- for a job that is already refunded (or already at a later attempt). Measured on a database
-- migrated from 20261201110000 with the worker stopped: six jobs refunded at their deadline left
-- eight such createTasks queued.
--
-- A createTask still in the queue was never sent. Each one our log resolved as lost is taken back
-- out (outcome 'withdrawn', no longer maybe accepted, its job's unknown outcome uncounted), as the
-- deadline tick does for an unresolved one. The queue row must be ours: the newest of our requests
-- with its id (pg_net's ids restart after a crash) and a createTask whose callback URL names this
-- job and attempt. Rows the worker holds are being sent and are left alone (skip locked), as are
-- our rows someone else holds. Nothing else changes: the job carries on with its current attempt.
-- Applying this again finds nothing more to do.

with stale as (
  select nq.id as queue_id, r.id as request_id
    from net.http_request_queue nq
    join private.requests r on r.net_request_id = nq.id
   where r.kind = 'create' and r.outcome = 'lost'
     and nq.url like '%/api/v1/jobs/createTask'
     -- Compared as bytes: another client's queued body need not be text.
     and pg_catalog.position(nq.body, pg_catalog.convert_to(
           pg_catalog.format('/kie-callback?job=%s&attempt=%s&', r.job_id, r.attempt), 'UTF8')) > 0
     and not exists (select 1 from private.requests newer
                      where newer.net_request_id = r.net_request_id and newer.queued_at > r.queued_at)
     for update of nq, r skip locked
), taken_back as (
  delete from net.http_request_queue nq using stale where nq.id = stale.queue_id returning stale.request_id
), marked as (
  update private.requests r
     set outcome = 'withdrawn', maybe_accepted = false,
         error = 'declared lost while still in pg_net''s queue (before 20261202171000); taken back unsent by 20261203160000'
    from taken_back t
   where r.id = t.request_id
  returning r.job_id
)
update private.job_pipeline p
   set unknown_outcomes = greatest(p.unknown_outcomes - m.withdrawn, 0)
  from (select marked.job_id, count(*)::integer as withdrawn from marked group by marked.job_id) m
 where p.job_id = m.job_id;
