-- Why: a recordInfo reply was read by the same rule as a callback body, and "callbacks may omit
-- state", so a reply whose data had no state was read as a success. With no result URL (or a
-- resultJson that is not an object) that became a success without a usable result: the job
-- failed as `unusable` with its refund while KIE was most likely still running the task. KIE
-- documents state as always present in recordInfo (kie-api.md §3), so a reply without it is a
-- malformed or truncated answer, not news about the task.
--
-- The poll path now reads replies through private.interpret_poll_report: a reply without state
-- and without a usable result is unreadable, changes nothing, and the job is polled again on the
-- cadence, bounded by its deadline like any other unanswered poll (final poll, then timed_out
-- with a refund). A reply without state that carries result URLs on results.allowed_hosts is
-- still a success: KIE fills resultJson only for a successful task, it is what a callback without
-- state is read as, and refusing it would let a finished, billed image time out. Callbacks are
-- read exactly as before (private.interpret_task_report is unchanged). A poll whose report
-- cannot be used now says why in its request's error. apply_response is otherwise as in
-- 20261130192200.

create function private.interpret_poll_report(report jsonb)
returns table (kind text, task_id text, state text, result_urls text[], fail_code text, fail_message text,
               body_code integer, message text, credits_consumed numeric)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  -- With body code 200 and no state, interpret_task_report says failed only for a success
  -- without a usable result (fail_code unusable): for a recordInfo reply, that is unreadable.
  select case when s.stateless then 'unreadable' else r.kind end,
         r.task_id, r.state, r.result_urls,
         case when s.stateless then null else r.fail_code end,
         case when s.stateless then null else r.fail_message end,
         r.body_code,
         case when s.stateless then 'recordInfo answered without data.state and without a usable result: not read as a success'
              else r.message end,
         r.credits_consumed
    from private.interpret_task_report(report) r
   cross join lateral (select r.kind = 'failed' and r.state is null and r.body_code = 200 as stateless) s
$$;
comment on function private.interpret_poll_report(jsonb) is
  'API: Private. Reads a recordInfo reply as private.interpret_task_report does, except that a reply without data.state and without a usable result is unreadable (poll again), not a success without a usable URL: recordInfo always names its state, callbacks may not.';

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
        -- recordInfo always names its state: one without it and without a result is unreadable.
        select * into report from private.interpret_poll_report(body);
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
        else
          -- Running or unreadable: the next poll follows the cadence; an unreadable one says why.
          update private.requests r set error = private.log_excerpt(coalesce(report.message, 'the report could not be read'), 500)
           where r.id = request.id and report.kind = 'unreadable';
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
  'API: Private. Classifies one pg_net response (private.kie_outcomes) and applies it: task accepted, retry with backoff (a 429 holds the create budget a full window), fail + refund, pause on account errors (lifted by a credit check only for 402), poll results (read by private.interpret_poll_report; one it cannot use records why and waits for the next poll), finalize, account balance.';

select private.pin_search_paths();
