-- Why: operators need to see the pipeline at a glance (queue depth, work at KIE, rate against
-- the budget, outcomes by model, alerts, failures, unknown outcomes) without reading raw tables.
-- The views live in private: no API role can read them; operators query them as the owner.

create index job_pipeline_finished_at_idx on private.job_pipeline (finished_at) where finished_at is not null;

create view private.queue_depth with (security_invoker = true) as
  select p.stage, count(*)::integer as jobs, min(p.created_at) as oldest_created_at, min(p.next_run_at) as next_due_at
    from private.job_pipeline p
   where p.stage in ('waiting', 'creating', 'generating', 'finalizing')
   group by p.stage;
comment on view private.queue_depth is 'API: Private. Operators: active jobs per pipeline stage, the oldest, and the next due time.';

create view private.in_flight with (security_invoker = true) as
  select count(*) filter (where p.stage in ('generating', 'finalizing'))::integer as tasks_at_kie,
         count(*) filter (where p.stage = 'creating')::integer as creates_in_pg_net,
         count(*) filter (where p.stage = 'waiting')::integer as waiting
    from private.job_pipeline p
   where p.stage in ('waiting', 'creating', 'generating', 'finalizing');
comment on view private.in_flight is 'API: Private. Operators: tasks running at KIE, createTask requests awaiting their response, jobs waiting to be sent.';

create view private.dispatch_rate with (security_invoker = true) as
  select (select count(*) from private.requests r
           where r.kind = 'create'
             and r.sent_at > now() - make_interval(secs => private.setting_number('dispatch.create_window_seconds')::double precision))::integer
           as creates_in_window,
         private.setting_number('dispatch.create_per_window')::integer as create_budget,
         private.setting_number('dispatch.create_window_seconds') as create_window_seconds,
         (select count(*) from private.requests r where r.kind = 'create' and r.sent_at > now() - interval '1 minute')::integer
           as creates_last_minute,
         (select count(*) from private.requests r
           where r.kind = 'poll'
             and r.sent_at > now() - make_interval(secs => private.setting_number('poll.window_seconds')::double precision))::integer
           as polls_in_window,
         private.setting_number('poll.per_window')::integer as poll_budget,
         private.dispatch_paused() as dispatch_paused;
comment on view private.dispatch_rate is 'API: Private. Operators: createTask and recordInfo requests in the current window against their budgets, and whether dispatch is paused.';

create view private.model_stats_24h with (security_invoker = true) as
  select j.model_key,
         count(*) filter (where p.stage = 'completed')::integer as completed,
         count(*) filter (where p.stage = 'failed')::integer as failed,
         percentile_cont(0.5) within group (order by extract(epoch from p.finished_at - p.created_at))
           filter (where p.stage = 'completed') as p50_seconds,
         percentile_cont(0.95) within group (order by extract(epoch from p.finished_at - p.created_at))
           filter (where p.stage = 'completed') as p95_seconds
    from private.job_pipeline p
    join public.generation_jobs j on j.id = p.job_id
   where p.finished_at > now() - interval '24 hours'
   group by j.model_key;
comment on view private.model_stats_24h is 'API: Private. Operators: jobs finished in the last 24 h by model, completed and failed, with p50/p95 start-to-finish seconds of the completed ones.';

create view private.active_alerts with (security_invoker = true) as
  select a.key, a.message, a.pauses_dispatch, a.details, a.raised_at, a.last_seen_at, a.occurrences
    from private.alerts a
   where a.cleared_at is null;
comment on view private.active_alerts is 'API: Private. Operators: alerts not cleared yet (clear with private.clear_alert(key)).';

create view private.recent_failures with (security_invoker = true) as
  select j.id as job_id, j.model_key, j.error_code, j.error_message, p.last_error, p.attempt, p.retries,
         p.unknown_outcomes, p.finished_at
    from private.job_pipeline p
    join public.generation_jobs j on j.id = p.job_id
   where p.stage = 'failed' and p.finished_at > now() - interval '24 hours'
   order by p.finished_at desc
   limit 100;
comment on view private.recent_failures is 'API: Private. Operators: the 100 latest failures of the last 24 h, with the user''s message and the technical reason.';

create view private.unknown_outcomes with (security_invoker = true) as
  select count(*) filter (where r.sent_at > now() - interval '24 hours')::integer as last_24h,
         count(*)::integer as in_log,
         count(*) filter (where r.outcome = 'lost')::integer as lost_in_log
    from private.requests r
   where r.maybe_accepted;
comment on view private.unknown_outcomes is 'API: Private. Operators: createTask requests whose outcome is unknown (timeout, unreadable answer, lost pg_net queue), each a possibly orphaned, billed KIE task.';

revoke all on private.queue_depth, private.in_flight, private.dispatch_rate, private.model_stats_24h,
  private.active_alerts, private.recent_failures, private.unknown_outcomes from public;
