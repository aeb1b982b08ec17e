-- Why: two ways the dispatch pipeline hurt jobs that did nothing wrong.
-- 1. A 429 (rate limited), 455 (maintenance) or a refused connection proves KIE never queued the
--    task, yet each counted against retry.max_attempts: a burst failed and refunded jobs after
--    four tries. Such outcomes now retry until the job's deadline without using up attempts, and
--    a 429 holds the whole shared create budget for a full window, so the other waiting jobs do
--    not run into the same limit.
-- 2. Any credit check with a positive balance lifted an account pause, whatever raised it: with a
--    capped sub-key (433) the account still has credits, so dispatch flapped between paused and
--    refused. The pause now remembers its causes; a balance lifts only a 402 pause.
-- 3. recordInfo replies echo the createTask body, callback URL and token included, and stayed in
--    net._http_response for an hour: a poll response's content is now removed once it is read.

alter table private.kie_outcomes add column counts_as_attempt boolean not null default true;
comment on column private.kie_outcomes.counts_as_attempt is
  'A retry after this outcome uses up one of retry.max_attempts. False when the response proves KIE did not queue the task (429, 455, connection refused): those retry until the job''s deadline.';
update private.kie_outcomes set counts_as_attempt = false
 where (operation, source, code) in (('create', 'body', '429'), ('create', 'body', '455'), ('create', 'http', '429'),
                                     ('create', 'transport', 'connect'));

alter table private.job_pipeline
  add column free_retries integer not null default 0 constraint job_pipeline_free_retries_within_retries check (free_retries between 0 and retries);
comment on column private.job_pipeline.free_retries is
  'Retries after outcomes that proved KIE did not queue the task (kie_outcomes.counts_as_attempt false): not compared with retry.max_attempts.';
comment on column private.job_pipeline.retries is
  'Transient failures so far (the backoff exponent). retries - free_retries is compared with retry.max_attempts.';
update private.settings set description = 'Most createTask attempts per job for transient failures that may have reached KIE (5xx, timeouts, lost requests); 429, 455 and refused connections retry until the deadline instead.'
 where key = 'retry.max_attempts';

create or replace function private.retry_or_fail(job_id uuid, from_stage text, expected_attempt integer, outcome private.kie_outcomes,
                                                 reason text, at timestamptz default now())
returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  p private.job_pipeline;
begin
  select * into p from private.job_pipeline jp
   where jp.job_id = retry_or_fail.job_id and jp.stage = from_stage and jp.attempt = expected_attempt
   for update;
  if not found then
    return 'stale';
  end if;
  -- Outcomes that prove KIE queued nothing count in free_retries, so they use up no attempt.
  if (p.retries - p.free_retries) + outcome.counts_as_attempt::integer < private.setting_number('retry.max_attempts')
     and p.deadline_at > at then
    update private.job_pipeline jp
       set stage = 'waiting', retries = jp.retries + 1, free_retries = jp.free_retries + (not outcome.counts_as_attempt)::integer,
           task_id = null, accepted_at = null, final_poll_at = null, callback_token_hash = null,
           next_run_at = retry_or_fail.at + make_interval(secs => private.backoff_seconds(jp.retries, outcome.min_backoff_seconds)::double precision),
           unknown_outcomes = jp.unknown_outcomes + outcome.maybe_accepted::integer,
           last_error = private.log_excerpt(reason, 500)
     where jp.job_id = retry_or_fail.job_id;
    return 'retry';
  end if;
  update private.job_pipeline jp set unknown_outcomes = jp.unknown_outcomes + outcome.maybe_accepted::integer
   where jp.job_id = retry_or_fail.job_id;
  perform private.fail_job(job_id, array[from_stage], expected_attempt, 'provider_unavailable', outcome.user_message, reason, at);
  return 'failed';
end
$$;
comment on function private.retry_or_fail(uuid, text, integer, private.kie_outcomes, text, timestamptz) is
  'API: Private. After a transient failure: schedules a new attempt with backoff (full jitter, the outcome''s minimum) while time remains and, for outcomes that count as an attempt, while retry.max_attempts allows; else fails the job with a refund.';

create function private.hold_create_budget(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  held integer;
begin
  -- Slots another transaction is taking right now get a full window from it anyway.
  update private.rate_slots s
     set available_at = hold_create_budget.at + make_interval(secs => private.setting_number('dispatch.create_window_seconds')::double precision)
   where (s.bucket, s.slot) in (select x.bucket, x.slot from private.rate_slots x where x.bucket = 'create' for update skip locked)
     and s.available_at < hold_create_budget.at + make_interval(secs => private.setting_number('dispatch.create_window_seconds')::double precision);
  get diagnostics held = row_count;
  return held;
end
$$;
comment on function private.hold_create_budget(timestamptz) is
  'API: Private. After a 429: no create token is free until a full dispatch.create_window_seconds after `at`. Returns the slots moved.';

-- The kie_account alert, with every code that raised it since it was last cleared.
create function private.pause_for_account(message text, source text, code text, job_id uuid, at timestamptz default now())
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  codes jsonb := coalesce((select case when a.cleared_at is null then coalesce(a.details -> 'codes', jsonb_build_array(a.details ->> 'code')) end
                             from private.alerts a where a.key = 'kie_account'), '[]'::jsonb);
begin
  if not codes @> jsonb_build_array(code) then
    codes := codes || jsonb_build_array(code);
  end if;
  perform private.raise_alert('kie_account',
    message || case when codes <@ '["402"]'::jsonb
                    then ' Dispatch is paused until a credit check shows credits or an operator clears this alert.'
                    else ' Dispatch is paused until an operator clears this alert (private.clear_alert(''kie_account'')).' end,
    true, jsonb_strip_nulls(jsonb_build_object('source', source, 'code', code, 'codes', codes, 'job_id', job_id)), at);
end
$$;
comment on function private.pause_for_account(text, text, text, uuid, timestamptz) is
  'API: Private. Raises the kie_account alert (pauses createTask), remembering every code that raised it (details.codes): a credit check with a balance lifts it only when all of them are 402.';

create or replace function private.apply_response(request private.requests, status_code integer, content text, timed_out boolean,
                                       error_msg text, at timestamptz default now())
returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  body jsonb := case when request.kind <> 'finalize' then private.try_jsonb(content) end;
  verdict record;
  o private.kie_outcomes;
  detail text;
  reason text;
  task text;
  report record;
  p private.job_pipeline;
  balance numeric;
begin
  select * into verdict from private.classify_response(request.kind, status_code, timed_out, error_msg, body);
  o := private.kie_outcome(request.kind, verdict.source, verdict.code);
  detail := coalesce(error_msg, nullif(btrim(coalesce(body ->> 'msg', body ->> 'message')), ''), private.log_excerpt(content), '(no body)');
  if request.kind = 'create' and o.outcome = 'accepted' then
    task := coalesce(nullif(btrim(body #>> '{data,taskId}'), ''), nullif(btrim(body #>> '{data,task_id}'), ''));
    if task is null or length(task) > 64 then
      task := null;
      o := private.kie_outcome('create', 'body', 'unreadable');
      detail := 'createTask answered code 200 without a usable data.taskId';
    end if;
  end if;
  reason := private.log_excerpt(format('%s %s %s: %s', request.kind, verdict.source, verdict.code, detail), 500);

  update private.requests r
     set resolved_at = apply_response.at, http_status = status_code, body_code = private.json_int(body -> 'code'),
         outcome = o.outcome, maybe_accepted = o.maybe_accepted, task_id = coalesce(task, r.task_id),
         error = case when o.outcome in ('accepted', 'ok', 'report') then null else reason end
   where r.id = request.id;
  -- recordInfo echoes the createTask body (param), callback token included: once read, the
  -- response's content goes (the request log keeps the codes).
  if request.kind = 'poll' then
    update net._http_response h set content = null
     where h.id = request.net_request_id and h.created >= request.queued_at - interval '1 second' and h.content is not null;
  end if;

  if request.kind = 'create' then
    case o.outcome
      when 'accepted' then
        update private.job_pipeline jp
           set stage = 'generating', task_id = task, accepted_at = apply_response.at, last_error = null,
               next_run_at = apply_response.at + make_interval(secs => private.setting_number('poll.first_after_seconds')::double precision)
         where jp.job_id = request.job_id and jp.stage = 'creating' and jp.attempt = request.attempt;
        if found then
          update public.generation_jobs j set status = 'generating', stage = 'generating'
           where j.id = request.job_id and j.status = 'pending';
        else
          -- KIE created a task for an attempt the job has left behind: an orphan unless its
          -- callback wins (complete_job accepts any attempt's result while the job is active).
          perform private.record_late_result(request.job_id, request.attempt, task, 'create', 'accepted', '{}', at);
        end if;
      when 'account' then
        perform private.pause_for_account(format('KIE refused createTask (%s).', reason), verdict.source, verdict.code, request.job_id, at);
        update private.job_pipeline jp set stage = 'waiting', next_run_at = apply_response.at, last_error = reason
         where jp.job_id = request.job_id and jp.stage = 'creating' and jp.attempt = request.attempt;
      when 'permanent' then
        perform private.fail_job(request.job_id, array['creating'], request.attempt, 'provider_rejected', o.user_message, reason, at);
      else
        if verdict.code = '429' then
          -- KIE's window is shared by every job: hold the whole create budget for a full window.
          perform private.hold_create_budget(at);
        end if;
        perform private.retry_or_fail(request.job_id, 'creating', request.attempt, o, reason, at);
    end case;

  elsif request.kind = 'poll' then
    select * into p from private.job_pipeline jp where jp.job_id = request.job_id;
    if p.stage not in ('generating', 'finalizing') or p.attempt <> request.attempt or p.task_id is distinct from request.task_id then
      return o.outcome;
    end if;
    case o.outcome
      when 'report' then
        select * into report from private.interpret_task_report(body);
        if report.task_id is distinct from p.task_id then
          update private.requests r set error = 'the report names another task' where r.id = request.id;
        elsif report.kind = 'success' then
          update private.job_pipeline jp
             set stage = 'finalizing',
                 next_run_at = apply_response.at + make_interval(secs => private.setting_number('finalize.retry_seconds')::double precision)
           where jp.job_id = request.job_id and jp.stage in ('generating', 'finalizing') and jp.attempt = request.attempt;
          perform private.send_finalize(request.job_id, request.attempt, body, at);
        elsif report.kind = 'failed' then
          perform private.apply_task_failure(request.job_id, request.attempt, report.task_id, report.fail_code, report.fail_message, 'poll', at);
        end if;
      when 'not_found' then
        if apply_response.at >= p.accepted_at + make_interval(secs => private.setting_number('poll.not_found_grace_seconds')::double precision) then
          perform private.retry_or_fail(request.job_id, p.stage, p.attempt, private.kie_outcome('task', 'task', 'lost'),
            'recordInfo is null past the grace period: the task does not exist', at);
        end if;
      when 'account' then
        perform private.pause_for_account(format('KIE refused recordInfo (%s).', reason), verdict.source, verdict.code, request.job_id, at);
      else
        null; -- the next poll follows the cadence
    end case;

  elsif request.kind = 'finalize' then
    if o.outcome <> 'ok' then
      -- Poll again soon; a new success sends a new finalize.
      update private.job_pipeline jp
         set next_run_at = apply_response.at + make_interval(secs => private.poll_interval_seconds(
                             extract(epoch from apply_response.at - jp.accepted_at))::double precision),
             last_error = reason
       where jp.job_id = request.job_id and jp.stage = 'finalizing' and jp.attempt = request.attempt;
    end if;

  else -- credit
    if o.outcome = 'ok' then
      balance := private.json_numeric(body -> 'data');
      if balance is null then
        update private.requests r set outcome = 'transient', error = 'chat/credit data is not a number' where r.id = request.id;
        return 'transient';
      end if;
      insert into private.kie_account as a (id, balance, checked_at) values (true, balance, at)
      on conflict on constraint kie_account_pkey do update set balance = excluded.balance, checked_at = excluded.checked_at;
      if balance < private.setting_number('account.low_balance_threshold') then
        perform private.raise_alert('kie_low_balance',
          format('KIE credits are low: %s left (threshold %s). Top up the KIE account.', balance,
                 private.setting_number('account.low_balance_threshold')),
          false, jsonb_build_object('balance', balance), at);
      else
        update private.alerts a set cleared_at = apply_response.at where a.key = 'kie_low_balance' and a.cleared_at is null;
      end if;
      if balance > 0 then
        -- Credits are back: a pause lifts by itself only when running out of credits (402) is
        -- all that raised it. A refused key (401) or a capped sub-key (433) leaves credits on
        -- the account, so only an operator (private.clear_alert) lifts those.
        update private.alerts a set cleared_at = apply_response.at
         where a.key = 'kie_account' and a.cleared_at is null
           and coalesce(a.details -> 'codes', jsonb_build_array(a.details ->> 'code')) <@ '["402"]'::jsonb;
      end if;
    elsif o.outcome = 'account' then
      perform private.pause_for_account(format('KIE refused the credit check (%s).', reason), verdict.source, verdict.code, null, at);
    end if;
  end if;
  return o.outcome;
end
$$;
comment on function private.apply_response(private.requests, integer, text, boolean, text, timestamptz) is
  'API: Private. Classifies one pg_net response (private.kie_outcomes) and applies it: task accepted, retry with backoff (a 429 holds the create budget a full window), fail + refund, pause on account errors (lifted by a credit check only for 402), poll results, finalize, account balance.';

comment on function private.account_tick(timestamptz) is
  'API: Private. Tick: alerts on missing Vault secrets and sends the KIE credit check (low-balance alert, and the probe that lifts a pause raised only by 402).';

select private.pin_search_paths();
