-- Why: a committed job must reach a terminal state whatever KIE, the network or a restart does.
-- The pipeline's own state lives in private tables beside the job (one job, two faces): a 1:1
-- work row (stage, attempt, next run, deadline, task id, callback token hash), our durable log of
-- every outbound request (pg_net's tables are unlogged and expire), operator alerts, per-model
-- request shapes, rate-limit slots, and KIE's outcome classification as data.
--
-- public.generation_jobs.stage stays, as a coarse app-facing value that changes only together
-- with status (queued | generating | completed | failed | cancelled). The app's contract and
-- tests already read it, and it now carries no internal step: retries, polling and finalizing
-- never stream an update to subscribers.

-- ---------------------------------------------------------------------------------------------
-- Tunables (private.settings). Secrets are never here: they live in Vault (see README).
-- ---------------------------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('kie.base_url', '"https://api.kie.ai"', 'KIE API origin, without a trailing slash.'),
  ('kie.user_agent', '"Mozilla/5.0 (compatible; kiln/0.1)"',
   'User-Agent sent on every KIE request (Cloudflare in front of KIE refuses some non-browser clients).'),
  ('kie.create_timeout_ms', '8000', 'Timeout of a createTask request, in ms. pg_net sends one batch at a time: keep it short.'),
  ('kie.poll_timeout_ms', '5000', 'Timeout of a recordInfo or chat/credit request, in ms.'),
  ('kie.finalize_timeout_ms', '15000', 'Timeout of the finalize request to the callback function, in ms.'),
  ('dispatch.create_per_window', '18', 'createTask requests allowed per window (KIE allows 20 per 10 s). At most 200.'),
  ('dispatch.create_window_seconds', '10', 'The createTask rate window, in seconds.'),
  ('dispatch.batch_size', '100', 'Most jobs one dispatch, poll or deadline tick handles.'),
  ('poll.per_window', '8', 'recordInfo requests allowed per window (KIE allows 10 per s). At most 100.'),
  ('poll.window_seconds', '1', 'The recordInfo rate window, in seconds.'),
  ('poll.first_after_seconds', '15', 'Seconds after KIE accepted a task before the first poll (the callback usually comes first).'),
  ('poll.cadence', '[{"until_seconds": 30, "every_seconds": 3}, {"until_seconds": 120, "every_seconds": 10}, {"until_seconds": null, "every_seconds": 30}]',
   'Poll interval by task age (seconds since accepted): the first entry whose until_seconds is above the age, or null.'),
  ('poll.not_found_grace_seconds', '60', 'How long after acceptance recordInfo may answer 422 "recordInfo is null" before the task counts as lost.'),
  ('retry.max_attempts', '4', 'Most createTask attempts per job for transient failures (429, 455, 5xx, timeouts, lost requests).'),
  ('retry.base_seconds', '2', 'Backoff base: attempt n waits a random time up to base * 2^n seconds (full jitter).'),
  ('retry.cap_seconds', '120', 'Backoff cap, in seconds.'),
  ('reconcile.lost_after_seconds', '60', 'A request with no response this long after its timeout is lost (the pg_net queue did not survive).'),
  ('reconcile.batch_size', '500', 'Most responses one reconcile tick reads.'),
  ('jobs.deadline_seconds', '900', 'Default deadline of a job, in seconds from its start (per-model overrides in private.model_requests).'),
  ('deadline.final_grace_seconds', '60', 'After the final poll at the deadline, how long to wait for its answer (and a finalize) before failing timed_out.'),
  ('finalize.retry_seconds', '60', 'If a finalize request did not complete the job within this time, poll and finalize again.'),
  ('account.low_balance_threshold', '100', 'Raise the kie_low_balance alert when KIE''s remaining credits fall below this.'),
  ('housekeeping.net_response_retention_seconds', '3600', 'Delete net._http_response rows older than this (reconciled long before).'),
  ('housekeeping.cron_history_retention_seconds', '604800', 'Delete cron.job_run_details rows older than this.'),
  ('housekeeping.request_log_retention_seconds', '2592000', 'Delete resolved private.requests and late results older than this.');

-- ---------------------------------------------------------------------------------------------
-- The app-facing stage: coarse, and always consistent with status.
-- ---------------------------------------------------------------------------------------------
alter table public.generation_jobs drop constraint generation_jobs_stage_matches_status;
alter table public.generation_jobs add constraint generation_jobs_stage_matches_status check (
  (stage = 'queued' and status = 'pending')
  or (stage = 'generating' and status = 'generating')
  or (stage = 'completed' and status = 'completed')
  or (stage in ('failed', 'cancelled') and status = 'failed')
);
comment on column public.generation_jobs.stage is
  'Coarse stage for the app, changing only with status: queued (pending), generating, completed, failed or cancelled.';

-- ---------------------------------------------------------------------------------------------
-- How a model's createTask body is built, beyond the models row (kie-api.md §5). Per-model
-- deadline overrides live here too.
-- ---------------------------------------------------------------------------------------------
create table private.model_requests (
  model_key text primary key references public.models (key) on update cascade on delete cascade,
  output_format text,
  sends_negative_prompt boolean not null default false,
  extra_input jsonb not null default '{}' constraint model_requests_extra_input_object check (jsonb_typeof(extra_input) = 'object'),
  deadline_seconds integer constraint model_requests_deadline_positive check (deadline_seconds > 0)
);
comment on table private.model_requests is
  'API: Private. Per-model createTask input beyond the models row: output_format, whether negative_prompt is sent, extra fixed fields, deadline override.';
comment on column private.model_requests.output_format is 'input.output_format sent (null: not sent).';
comment on column private.model_requests.sends_negative_prompt is 'Whether the model takes input.negative_prompt.';
comment on column private.model_requests.extra_input is 'Fixed input fields merged into every request (e.g. resolution).';
comment on column private.model_requests.deadline_seconds is 'Job deadline for this model; null uses the jobs.deadline_seconds setting.';
alter table private.model_requests enable row level security;
revoke all on private.model_requests from public;

insert into private.model_requests (model_key, output_format, sends_negative_prompt, extra_input) values
  ('nano-edit', 'png', false, '{}'),
  ('nano-pro', 'png', false, '{"resolution": "1K"}'),
  ('imagen-fast', null, true, '{}'),
  ('imagen-4', null, true, '{}'),
  ('imagen-ultra', null, true, '{}');

-- ---------------------------------------------------------------------------------------------
-- The pipeline row: one per job.
--   waiting    -> createTask not in pg_net's hands (cancellable); due at next_run_at
--   creating   -> createTask queued in pg_net, outcome not reconciled yet
--   generating -> KIE accepted the task (task_id); callbacks or polls at next_run_at
--   finalizing -> a poll found the result; the finalize request went to the callback function
--   completed | failed -> terminal
-- ---------------------------------------------------------------------------------------------
create table private.job_pipeline (
  job_id uuid primary key references public.generation_jobs (id) on delete cascade,
  stage text not null default 'waiting'
    constraint job_pipeline_stage_valid check (stage in ('waiting', 'creating', 'generating', 'finalizing', 'completed', 'failed')),
  priority integer not null default 0,
  attempt integer not null default 0 constraint job_pipeline_attempt_non_negative check (attempt >= 0),
  retries integer not null default 0 constraint job_pipeline_retries_non_negative check (retries >= 0),
  next_run_at timestamptz,
  deadline_at timestamptz not null,
  task_id text constraint job_pipeline_task_id_length check (length(task_id) between 1 and 64),
  callback_token_hash bytea,
  accepted_at timestamptz,
  final_poll_at timestamptz,
  polls integer not null default 0,
  unknown_outcomes integer not null default 0,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  constraint job_pipeline_terminal_has_finished_at check ((stage in ('completed', 'failed')) = (finished_at is not null)),
  constraint job_pipeline_task_known_when_accepted check (stage not in ('generating', 'finalizing') or task_id is not null)
);
comment on table private.job_pipeline is
  'API: Private. The pipeline state of each job (1:1 with generation_jobs), updated by guarded transitions only.';
comment on column private.job_pipeline.stage is 'waiting, creating, generating, finalizing, completed or failed (see the migration).';
comment on column private.job_pipeline.priority is 'The owner''s plan rank at start: higher plans are dispatched first.';
comment on column private.job_pipeline.attempt is 'createTask requests sent so far; each has its own callback token.';
comment on column private.job_pipeline.retries is 'Transient failures so far (compared with retry.max_attempts).';
comment on column private.job_pipeline.next_run_at is 'When the job is next due: dispatch (waiting) or poll (generating, finalizing).';
comment on column private.job_pipeline.deadline_at is 'After this the job gets one final poll, then fails timed_out.';
comment on column private.job_pipeline.task_id is 'KIE task id of the current attempt (or the task whose result won).';
comment on column private.job_pipeline.callback_token_hash is 'sha256 of the current attempt''s callback token; the token itself is never stored.';
comment on column private.job_pipeline.accepted_at is 'When KIE accepted the current task.';
comment on column private.job_pipeline.final_poll_at is 'When the deadline''s final poll was sent.';
comment on column private.job_pipeline.polls is 'recordInfo requests sent for this job.';
comment on column private.job_pipeline.unknown_outcomes is 'createTask attempts whose outcome is unknown (timeout, lost queue): possibly orphaned KIE tasks.';
comment on column private.job_pipeline.last_error is 'The latest problem, for operators.';
comment on column private.job_pipeline.created_at is 'When the job started.';
comment on column private.job_pipeline.updated_at is 'Last change (kept by a trigger).';
comment on column private.job_pipeline.finished_at is 'When the job reached a terminal stage.';

-- Ticks only ever look at active rows: their cost does not grow with finished jobs.
create index job_pipeline_waiting_idx on private.job_pipeline (priority desc, created_at) where stage = 'waiting';
create index job_pipeline_polling_idx on private.job_pipeline (next_run_at) where stage in ('generating', 'finalizing');
create index job_pipeline_deadline_idx on private.job_pipeline (deadline_at) where stage in ('waiting', 'creating', 'generating', 'finalizing');

create trigger job_pipeline_touch_updated_at before update on private.job_pipeline
  for each row execute function private.touch_updated_at();
alter table private.job_pipeline enable row level security;
revoke all on private.job_pipeline from public;

-- ---------------------------------------------------------------------------------------------
-- Our request log: every outbound request and, once reconciled, its outcome.
-- ---------------------------------------------------------------------------------------------
create table private.requests (
  id bigint generated always as identity primary key,
  job_id uuid references public.generation_jobs (id) on delete cascade,
  attempt integer,
  kind text not null constraint requests_kind_valid check (kind in ('create', 'poll', 'finalize', 'credit')),
  net_request_id bigint not null,
  queued_at timestamptz not null default now(),
  sent_at timestamptz not null,
  timeout_ms integer not null,
  is_final_poll boolean not null default false,
  callback_token_hash bytea,
  resolved_at timestamptz,
  http_status integer,
  body_code integer,
  outcome text,
  maybe_accepted boolean not null default false,
  task_id text,
  error text,
  constraint requests_job_kinds_have_job check ((kind = 'credit') = (job_id is null)),
  constraint requests_resolved_have_outcome check ((resolved_at is null) = (outcome is null))
);
comment on table private.requests is
  'API: Private. Every request sent through pg_net (create, poll, finalize, credit) and its reconciled outcome. pg_net''s own tables are unlogged and expire; this is the record.';
comment on column private.requests.net_request_id is 'pg_net''s request id. Reused after a crash: a response matches only if it was stored after queued_at and before a newer request with the same id.';
comment on column private.requests.queued_at is 'Real commit-side clock (transaction start) when queued: matches pg_net responses.';
comment on column private.requests.sent_at is 'Logical time of the tick that sent it (the at parameter): drives timeouts and rate views.';
comment on column private.requests.timeout_ms is 'The pg_net timeout given.';
comment on column private.requests.is_final_poll is 'The poll sent at the job''s deadline.';
comment on column private.requests.callback_token_hash is 'create: sha256 of this attempt''s callback token.';
comment on column private.requests.resolved_at is 'When reconciled (or declared lost).';
comment on column private.requests.http_status is 'HTTP status of the response, null for transport errors.';
comment on column private.requests.body_code is 'KIE body code, when the body was a readable envelope.';
comment on column private.requests.outcome is 'Classification (private.kie_outcomes.outcome), lost, or error.';
comment on column private.requests.maybe_accepted is 'A createTask whose outcome is unknown (timeout, unreadable, lost): KIE may have created a task.';
comment on column private.requests.task_id is 'create: the task id KIE returned.';
comment on column private.requests.error is 'Trimmed error or body excerpt.';
comment on column private.requests.job_id is 'The job (null for account checks).';
comment on column private.requests.attempt is 'The job''s attempt the request belongs to.';
comment on column private.requests.kind is 'create (createTask), poll (recordInfo), finalize (to the callback function), credit (chat/credit).';
create index requests_unresolved_idx on private.requests (sent_at) where resolved_at is null;
create index requests_net_request_id_idx on private.requests (net_request_id, queued_at);
create index requests_job_id_idx on private.requests (job_id, attempt);
create index requests_kind_sent_idx on private.requests (kind, sent_at);
alter table private.requests enable row level security;
revoke all on private.requests from public;

-- ---------------------------------------------------------------------------------------------
-- Operator alerts. An active alert with pauses_dispatch holds createTask globally.
-- ---------------------------------------------------------------------------------------------
create table private.alerts (
  key text primary key constraint alerts_key_format check (key ~ '^[a-z][a-z0-9_]*$'),
  message text not null,
  pauses_dispatch boolean not null default false,
  details jsonb not null default '{}',
  raised_at timestamptz not null,
  last_seen_at timestamptz not null,
  occurrences integer not null default 1,
  cleared_at timestamptz
);
comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error). Active while cleared_at is null; clear with private.clear_alert(key).';
comment on column private.alerts.pauses_dispatch is 'While active, no createTask is sent (account problems: 401, 402, 433).';
comment on column private.alerts.details is 'Context for the operator (codes, job, secret name).';
comment on column private.alerts.occurrences is 'Times raised since first raised.';
comment on column private.alerts.cleared_at is 'When cleared (by a successful probe or an operator); null while active.';
comment on column private.alerts.key is 'What is wrong, one row per kind.';
comment on column private.alerts.message is 'What an operator should know and do.';
comment on column private.alerts.raised_at is 'When it became active.';
comment on column private.alerts.last_seen_at is 'When it was last raised again.';
create index alerts_active_pause_idx on private.alerts (key) where cleared_at is null and pauses_dispatch;
alter table private.alerts enable row level security;
revoke all on private.alerts from public;

-- Results that arrived after their job was terminal, or from a task that lost the race.
create table private.late_results (
  id bigint generated always as identity primary key,
  job_id uuid not null references public.generation_jobs (id) on delete cascade,
  attempt integer,
  task_id text,
  source text not null,
  outcome text not null,
  detail jsonb not null default '{}',
  received_at timestamptz not null
);
comment on table private.late_results is
  'API: Private. For operators: results that changed nothing for the user (job already terminal, duplicate task, orphaned task).';
comment on column private.late_results.source is 'complete, provider_failure, create or poll.';
comment on column private.late_results.outcome is 'What arrived (success, failed, accepted...).';
comment on column private.late_results.detail is 'The paths, codes or messages received.';
comment on column private.late_results.job_id is 'The job.';
comment on column private.late_results.attempt is 'The attempt named by the caller.';
comment on column private.late_results.task_id is 'The KIE task id named by the caller.';
comment on column private.late_results.received_at is 'When it arrived.';
create index late_results_job_id_idx on private.late_results (job_id);
alter table private.late_results enable row level security;
revoke all on private.late_results from public;

-- The KIE account as last seen by the credit check.
create table private.kie_account (
  id boolean primary key default true constraint kie_account_one_row check (id),
  balance numeric,
  checked_at timestamptz not null
);
comment on table private.kie_account is 'API: Private. KIE''s remaining credits from the latest GET /api/v1/chat/credit.';
comment on column private.kie_account.id is 'Always true: one row.';
comment on column private.kie_account.balance is 'Remaining credits.';
comment on column private.kie_account.checked_at is 'When checked.';
alter table private.kie_account enable row level security;
revoke all on private.kie_account from public;

-- ---------------------------------------------------------------------------------------------
-- Rate budgets as slots: a bucket of N slots, each usable once per window, is a sliding window
-- of N requests. Taking a slot is `for update skip locked`: concurrent takers never wait on
-- each other, a busy slot is simply not available.
-- ---------------------------------------------------------------------------------------------
create table private.rate_slots (
  bucket text not null constraint rate_slots_bucket_valid check (bucket in ('create', 'poll')),
  slot integer not null constraint rate_slots_slot_positive check (slot > 0),
  available_at timestamptz not null default '-infinity',
  constraint rate_slots_pkey primary key (bucket, slot)
);
comment on table private.rate_slots is
  'API: Private. Token slots of the createTask and recordInfo budgets: a slot taken at t is free again at t + window. Only slots up to the configured capacity are used.';
comment on column private.rate_slots.bucket is 'create (createTask) or poll (recordInfo).';
comment on column private.rate_slots.slot is 'Slot number, 1..capacity.';
comment on column private.rate_slots.available_at is 'When the slot may be used again.';
alter table private.rate_slots enable row level security;
revoke all on private.rate_slots from public;
insert into private.rate_slots (bucket, slot) select 'create', n from generate_series(1, 200) n;
insert into private.rate_slots (bucket, slot) select 'poll', n from generate_series(1, 100) n;

-- ---------------------------------------------------------------------------------------------
-- KIE outcomes as a table (kie-api.md §6 plus transport failures). Lookup order: the exact code,
-- then its class (2xx, 4xx, 5xx), then '*'.
-- ---------------------------------------------------------------------------------------------
create table private.kie_outcomes (
  operation text not null constraint kie_outcomes_operation_valid check (operation in ('create', 'poll', 'task', 'credit', 'finalize')),
  source text not null constraint kie_outcomes_source_valid check (source in ('body', 'http', 'transport', 'task')),
  code text not null,
  outcome text not null
    constraint kie_outcomes_outcome_valid check (outcome in ('accepted', 'report', 'ok', 'transient', 'permanent', 'account', 'not_found')),
  maybe_accepted boolean not null default false,
  min_backoff_seconds numeric not null default 0,
  user_message text,
  description text not null,
  constraint kie_outcomes_pkey primary key (operation, source, code),
  constraint kie_outcomes_failures_explain_themselves check (outcome not in ('transient', 'permanent') or user_message is not null)
);
comment on table private.kie_outcomes is
  'API: Private. How each response is treated, by operation and source (body code, HTTP status, transport error, task failCode). Operators may edit rows.';
comment on column private.kie_outcomes.operation is 'create (createTask), poll (recordInfo), task (a failed task''s failCode), credit, finalize.';
comment on column private.kie_outcomes.source is 'body (the envelope code), http (status without a usable body code), transport (timeout, connect, other, unreadable), task (failCode).';
comment on column private.kie_outcomes.code is 'The code, a class (2xx, 4xx, 5xx) or * for anything else.';
comment on column private.kie_outcomes.outcome is 'accepted, report (read the task report), ok, transient (retry with backoff), permanent (fail + refund), account (pause + alert), not_found (recordInfo null: transient within a grace period).';
comment on column private.kie_outcomes.maybe_accepted is 'createTask may have reached KIE: retrying can orphan a billed task (counted as unknown outcome).';
comment on column private.kie_outcomes.min_backoff_seconds is 'Least wait before the retry (429: a full window).';
comment on column private.kie_outcomes.user_message is 'error_message shown to the user when this ends the job.';
comment on column private.kie_outcomes.description is 'Why.';
alter table private.kie_outcomes enable row level security;
revoke all on private.kie_outcomes from public;

insert into private.kie_outcomes (operation, source, code, outcome, maybe_accepted, min_backoff_seconds, user_message, description) values
  ('create', 'body', '200', 'accepted', false, 0, null, 'task created'),
  ('create', 'body', '400', 'permanent', false, 0, 'The image service rejected this request.', 'missing or bad parameter'),
  ('create', 'body', '401', 'account', false, 0, null, 'bad or missing API key: configuration'),
  ('create', 'body', '402', 'account', false, 0, null, 'KIE account out of credits; the user is not at fault'),
  ('create', 'body', '404', 'permanent', false, 0, 'The image service rejected this request.', 'not found'),
  ('create', 'body', '422', 'permanent', false, 0, 'The image service refused this request (invalid input or content policy).', 'validation failed or content rejected'),
  ('create', 'body', '429', 'transient', false, 10, 'The image service is busy. Please try again later.', 'rate limited, not queued: back off a full window'),
  ('create', 'body', '433', 'account', false, 0, null, 'sub-key over its usage cap'),
  ('create', 'body', '455', 'transient', false, 0, 'The image service is under maintenance. Please try again later.', 'maintenance'),
  ('create', 'body', '500', 'transient', false, 0, 'The image service had an error. Please try again later.', 'server error (sometimes a disguised validation error): bounded attempts'),
  ('create', 'body', '501', 'permanent', false, 0, 'The image could not be generated.', 'generation failed'),
  ('create', 'body', '505', 'permanent', false, 0, 'This kind of image is not available right now.', 'feature disabled'),
  ('create', 'body', '5xx', 'transient', false, 0, 'The image service had an error. Please try again later.', 'undocumented server code: bounded attempts'),
  ('create', 'body', '*', 'permanent', false, 0, 'The image service rejected this request.', 'undocumented code'),
  ('create', 'body', 'unreadable', 'transient', true, 0, 'The image service did not answer clearly. Please try again later.', 'a 2xx without a readable envelope or task id: KIE may have created the task'),
  ('create', 'http', '401', 'account', false, 0, null, 'HTTP 401: key refused'),
  ('create', 'http', '404', 'account', false, 0, null, 'HTTP 404: wrong kie.base_url (configuration)'),
  ('create', 'http', '403', 'transient', false, 0, 'The image service could not be reached. Please try again later.', 'edge refusal (Cloudflare 403/1010)'),
  ('create', 'http', '408', 'transient', true, 0, 'The image service could not be reached. Please try again later.', 'request timeout'),
  ('create', 'http', '429', 'transient', false, 10, 'The image service is busy. Please try again later.', 'rate limited at the edge'),
  ('create', 'http', '5xx', 'transient', false, 0, 'The image service could not be reached. Please try again later.', 'edge or server error (522 and friends)'),
  ('create', 'http', '*', 'permanent', false, 0, 'The image service rejected this request.', 'other HTTP status'),
  ('create', 'transport', 'timeout', 'transient', true, 0, 'The image service did not answer. Please try again later.', 'timed out: KIE may have created the task'),
  ('create', 'transport', 'connect', 'transient', false, 0, 'The image service could not be reached. Please try again later.', 'connection refused or host not resolved: never reached KIE'),
  ('create', 'transport', '*', 'transient', true, 0, 'The image service could not be reached. Please try again later.', 'other transport error'),
  ('create', 'transport', 'lost', 'transient', true, 0, 'The image service did not answer. Please try again later.', 'no response long after the timeout: the pg_net queue was lost'),
  ('poll', 'body', '200', 'report', false, 0, null, 'a task report'),
  ('poll', 'body', '501', 'report', false, 0, null, 'a failed task reported with the callback''s failure code'),
  ('poll', 'body', '422', 'not_found', false, 0, null, 'recordInfo is null: transient within a grace period'),
  ('poll', 'body', '401', 'account', false, 0, null, 'bad or missing API key'),
  ('poll', 'body', '402', 'account', false, 0, null, 'KIE account out of credits'),
  ('poll', 'body', '433', 'account', false, 0, null, 'sub-key over its usage cap'),
  ('poll', 'body', '*', 'transient', false, 0, 'The image service did not answer.', 'poll again at the next cadence'),
  ('poll', 'http', '*', 'transient', false, 0, 'The image service did not answer.', 'poll again at the next cadence'),
  ('poll', 'transport', '*', 'transient', false, 0, 'The image service did not answer.', 'poll again at the next cadence'),
  ('task', 'task', '*', 'permanent', false, 0, 'The image could not be generated.', 'KIE reported the task failed (moderation, generation error)'),
  ('task', 'task', 'unusable', 'permanent', false, 0, 'The image could not be generated.', 'KIE reported success without a usable result URL'),
  ('task', 'task', 'lost', 'transient', false, 0, 'The image service lost this image. Please try again later.', 'recordInfo is null past the grace period: the task does not exist, a new one is safe'),
  ('credit', 'body', '200', 'ok', false, 0, null, 'balance read'),
  ('credit', 'body', '401', 'account', false, 0, null, 'bad or missing API key'),
  ('credit', 'body', '402', 'account', false, 0, null, 'KIE account out of credits'),
  ('credit', 'body', '433', 'account', false, 0, null, 'sub-key over its usage cap'),
  ('credit', 'body', '*', 'transient', false, 0, 'unused', 'try at the next check'),
  ('credit', 'http', '*', 'transient', false, 0, 'unused', 'try at the next check'),
  ('credit', 'transport', '*', 'transient', false, 0, 'unused', 'try at the next check'),
  ('finalize', 'http', '2xx', 'ok', false, 0, null, 'the callback function took the result'),
  ('finalize', 'http', '*', 'transient', false, 0, 'unused', 'poll and finalize again after finalize.retry_seconds'),
  ('finalize', 'transport', '*', 'transient', false, 0, 'unused', 'poll and finalize again after finalize.retry_seconds');
