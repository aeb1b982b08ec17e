-- Why: comments in the catalog, which operators read in psql (\d+, \df+) and the dashboard, had
-- fallen behind the code they describe:
--   - private.alerts listed the alert keys as of 20261202171000 and missed tick_schedule_drift,
--     which private.account_tick raises since 20261203201000; and its cleared_at said alerts are
--     cleared only by a probe or an operator, while the ticks clear missing_secret, pg_net_stalled,
--     retention_error, storage_purge_failing, tick_schedule_drift and kie_low_balance themselves.
--   - private.requests said it holds every request sent through pg_net; the Storage API deletes
--     go through pg_net too and are recorded on their purge rows, never here.
--   - private.job_pipeline.unknown_outcomes and the private.unknown_outcomes view named timeouts
--     and lost requests as the unknown outcomes; since 20261203200100 a gateway error that may
--     have passed the createTask on (HTTP 502, 504, 520, 524) counts too, as kie_outcomes'
--     maybe_accepted says. The view's comment also spoke of requests where it shows counts.
--   - public.cancel_generation said a job can be cancelled while it "has not been sent yet"; since
--     20261203180000 a job waiting to retry a createTask KIE may have accepted is refused too
--     (KL023), and one waiting after a createTask KIE provably refused can be cancelled.
--     public.start_generation pointed to the README for its codes; they are listed in
--     supabase/error-codes.md.
--   - private.poll_interval_seconds described a fixed cadence ("2-3 s, then 5-10 s until 2 min,
--     then 15-30 s"); it has always read the poll.cadence setting (3 s / 10 s / 30 s by default).
--   - private.send_poll and private.send_finalize did not say that they send nothing and return
--     false without their Vault secrets (send_finalize also raises missing_secret).
--   - private.apply_lost_request spoke of createTask only; a lost finalize makes its job due for
--     another poll at once, and a lost poll or credit check is only recorded.
--   - private.secret did not say that it trims the secret (since 20261202171100) and reads one
--     left blank as missing.
--   - private.purge_expired_uploads did not say that it also forgets the finished upload purges
--     older than housekeeping.request_log_retention_seconds, and that setting's description
--     named only the request log and late results.
-- Comments and one description change; no behaviour does. A test now checks the alert keys in
-- the table's comment and the README against the keys the functions raise.

comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error, deadline_error, pg_net_stalled, retention_error, storage_purge_failing, tick_schedule_drift). Active while cleared_at is null; clear with private.clear_alert(key). Most are also cleared by the tick that finds the problem gone.';
comment on column private.alerts.cleared_at is
  'When cleared (by an operator, by the tick that finds the problem gone, or by a credit check with a balance for a kie_account alert raised only by 402); null while active.';

comment on table private.requests is
  'API: Private. Every request to KIE or the callback function sent through pg_net (create, poll, finalize, credit) and its reconciled outcome. pg_net''s own tables are unlogged and expire; this is the record. Storage API deletes are recorded on their purge rows (private.result_purges, private.storage_purges), not here.';

comment on function public.cancel_generation(uuid) is
  'Cancels one of my jobs that KIE cannot be running: its createTask is not in pg_net''s hands yet and no earlier createTask of it may have made a task. It fails with error_code cancelled and its credits are refunded; otherwise KL023 (KL021 for a job that is not mine or deleted).';
comment on function public.start_generation(text, uuid, jsonb, text, text, text[], text, text, text) is
  'Starts a generation and returns the new job (status pending). Either template_id (with inputs and image_urls) or prompt (text-to-image). Debits the model''s price; errors are KLxxx codes (supabase/error-codes.md).';

comment on column private.job_pipeline.unknown_outcomes is
  'createTask attempts whose outcome is unknown (private.kie_outcomes.maybe_accepted: a timeout, an unreadable answer, a lost request, a gateway error that may have passed it on): possibly orphaned KIE tasks. A createTask taken back out of pg_net''s queue unsent is not counted.';
comment on view private.unknown_outcomes is
  'API: Private. Operators: how many createTask requests have an unknown outcome (private.requests.maybe_accepted: a timeout, an unreadable answer, a lost request, a gateway error that may have passed it on), each a possibly orphaned, billed KIE task: sent in the last 24 h (last_24h), still in the request log (in_log), and of those lost (lost_in_log).';

comment on function private.poll_interval_seconds(numeric) is
  'API: Private. Seconds until the next recordInfo for a task of this age (seconds since KIE accepted it), from the poll.cadence setting: every_seconds of the first entry whose until_seconds is above the age, or null (by default 3 s until 30 s, 10 s until 2 min, then 30 s).';

comment on function private.send_poll(uuid, timestamptz, boolean) is
  'API: Private. Queues GET recordInfo for a job''s task (caller holds a poll token) and schedules the next poll by poll.cadence (private.poll_interval_seconds). False, and nothing sent, while the Vault secret kie_api_key is missing.';

comment on function private.send_finalize(uuid, integer, jsonb, timestamptz) is
  'API: Private. Sends a polled success to the callback function (POST <functions_base_url>/kie-callback?job=&attempt=&source=poll, Authorization: Bearer <finalize_credential>, body = the recordInfo reply) and logs it. False, nothing sent and the missing_secret alert raised, while the Vault secret functions_base_url or finalize_credential is missing.';

comment on function private.apply_lost_request(private.requests, timestamptz) is
  'API: Private. Resolves a request that never got a response (outcome lost): a createTask counts as an unknown outcome (maybe_accepted) and is retried within the attempt budget, or its job fails with a refund; a lost finalize makes its job due for another poll at once; a lost poll or credit check is only recorded (the next one is already due).';

comment on function private.secret(text) is
  'API: Private. The decrypted Vault secret of that name, trimmed of leading and trailing white space (spaces, tabs, line breaks, no-break spaces, a byte order mark), or null when it is missing or nothing is left. Names: kie_api_key, functions_base_url, finalize_credential, project_url, service_role_key.';

comment on function private.purge_expired_uploads(timestamptz, integer) is
  'API: Private. Tick: forgets up to max_objects finished upload purges older than housekeeping.request_log_retention_seconds; then, for the due upload purges (at most max_objects, at most 1000), finishes those whose object is gone, leaves those whose owner has a start in progress for a visit 30 s later, drops those no longer expired, and asks the Storage API (pg_net, service key) to delete the rest in one request; a purge is done or dropped only once the request it sent before is settled. Returns the requests sent (0 or 1).';

update private.settings
   set description = 'Delete resolved private.requests and late results older than this; finished upload purges (private.storage_purges, upload_expired) are forgotten after it too.'
 where key = 'housekeeping.request_log_retention_seconds';
