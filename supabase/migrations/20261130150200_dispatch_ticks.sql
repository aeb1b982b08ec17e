-- Why: pg_net is fire-and-forget and KIE answers late, twice or never, so periodic ticks drive
-- every job to a terminal state: reconcile responses into our log, dispatch waiting jobs within
-- the budget, poll late tasks on KIE's cadence, enforce deadlines, watch the KIE account, purge
-- old rows. Each tick takes its time as a parameter, claims rows with `for update skip locked`
-- (ticks overlap: pg_cron and the local driver may run the same tick at once) and reads only
-- partial indexes over active rows, so an idle tick costs almost nothing.

-- ---------------------------------------------------------------------------------------------
-- Reconcile: one response applied to its request and job.
-- ---------------------------------------------------------------------------------------------
create function private.apply_response(request private.requests, status_code integer, content text, timed_out boolean,
                                       error_msg text, at timestamptz default now())
returns text
language plpgsql volatile
set search_path = ''
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
  reason := left(format('%s %s %s: %s', request.kind, verdict.source, verdict.code, detail), 500);

  update private.requests r
     set resolved_at = apply_response.at, http_status = status_code, body_code = private.json_int(body -> 'code'),
         outcome = o.outcome, maybe_accepted = o.maybe_accepted, task_id = coalesce(task, r.task_id),
         error = case when o.outcome in ('accepted', 'ok', 'report') then null else reason end
   where r.id = request.id;

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
        perform private.raise_alert('kie_account',
          format('KIE refused createTask (%s). Dispatch is paused until a credit check succeeds or an operator clears this alert.', reason),
          true, jsonb_build_object('source', verdict.source, 'code', verdict.code, 'job_id', request.job_id), at);
        update private.job_pipeline jp set stage = 'waiting', next_run_at = apply_response.at, last_error = reason
         where jp.job_id = request.job_id and jp.stage = 'creating' and jp.attempt = request.attempt;
      when 'permanent' then
        perform private.fail_job(request.job_id, array['creating'], request.attempt, 'provider_rejected', o.user_message, reason, at);
      else
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
        perform private.raise_alert('kie_account',
          format('KIE refused recordInfo (%s). Dispatch is paused until a credit check succeeds or an operator clears this alert.', reason),
          true, jsonb_build_object('source', verdict.source, 'code', verdict.code, 'job_id', request.job_id), at);
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
        -- The probe succeeded: an account pause lifts by itself.
        update private.alerts a set cleared_at = apply_response.at where a.key = 'kie_account' and a.cleared_at is null;
      end if;
    elsif o.outcome = 'account' then
      perform private.raise_alert('kie_account',
        format('KIE refused the credit check (%s). Dispatch stays paused until a credit check succeeds or an operator clears this alert.', reason),
        true, jsonb_build_object('source', verdict.source, 'code', verdict.code), at);
    end if;
  end if;
  return o.outcome;
end
$$;
comment on function private.apply_response(private.requests, integer, text, boolean, text, timestamptz) is
  'API: Private. Classifies one pg_net response (private.kie_outcomes) and applies it: task accepted, retry with backoff, fail + refund, pause on account errors, poll results, finalize, account balance.';

-- A request with no response long after its timeout: the pg_net queue did not survive.
create function private.apply_lost_request(request private.requests, at timestamptz default now())
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  o private.kie_outcomes := private.kie_outcome('create', 'transport', 'lost');
  reason text := format('%s request %s (pg_net id %s) got no response: lost', request.kind, request.id, request.net_request_id);
begin
  update private.requests r
     set resolved_at = apply_lost_request.at, outcome = 'lost', maybe_accepted = (request.kind = 'create'), error = reason
   where r.id = request.id;
  if request.kind = 'create' then
    perform private.retry_or_fail(request.job_id, 'creating', request.attempt, o, reason, at);
  elsif request.kind = 'finalize' then
    update private.job_pipeline jp set next_run_at = apply_lost_request.at, last_error = reason
     where jp.job_id = request.job_id and jp.stage = 'finalizing' and jp.attempt = request.attempt;
  end if;
  return 'lost';
end
$$;
comment on function private.apply_lost_request(private.requests, timestamptz) is
  'API: Private. Resolves a request that never got a response: createTask counts as an unknown outcome and is retried within the attempt budget.';

create function private.reconcile_tick(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  batch integer := private.setting_number('reconcile.batch_size');
  lost_after numeric := private.setting_number('reconcile.lost_after_seconds');
  r record;
  lost private.requests;
  handled integer := 0;
  problem text;
begin
  -- A response belongs to the newest request of ours with its id that was queued before it was
  -- stored (pg_net ids restart at 1 after a crash); one second of slack covers a worker
  -- transaction that began just before the request committed.
  for r in
    with pending as (
      select q.id, q.net_request_id, q.queued_at from private.requests q where q.resolved_at is null
    ), matched as (
      select distinct on (p.id) p.id, h.status_code, h.content, h.timed_out, h.error_msg
        from pending p
        join net._http_response h on h.id = p.net_request_id and h.created >= p.queued_at - interval '1 second'
       where h.created >= (select min(x.queued_at) from pending x) - interval '1 second'
         and not exists (select 1 from private.requests newer
                          where newer.net_request_id = p.net_request_id and newer.queued_at > p.queued_at
                            and newer.queued_at <= h.created + interval '1 second')
       order by p.id, h.created
    )
    select q as request, m.status_code, m.content, m.timed_out, m.error_msg
      from matched m join private.requests q on q.id = m.id
     where q.resolved_at is null
     order by q.id
     limit batch
     for update of q skip locked
  loop
    begin
      perform private.apply_response(r.request, r.status_code, r.content, r.timed_out, r.error_msg, at);
    exception when others then
      -- One response that cannot be applied must not stop the batch.
      get stacked diagnostics problem = message_text;
      update private.requests q set resolved_at = reconcile_tick.at, outcome = 'error', error = left(problem, 500)
       where q.id = (r.request).id;
      perform private.raise_alert('reconcile_error', format('A response could not be applied: %s', left(problem, 300)), false,
        jsonb_build_object('request_id', (r.request).id, 'job_id', (r.request).job_id), at);
    end;
    handled := handled + 1;
  end loop;

  for lost in
    select q.* from private.requests q
     where q.resolved_at is null
       and q.sent_at + make_interval(secs => (q.timeout_ms / 1000.0 + lost_after)::double precision) < at
       and (exists (select 1 from private.requests newer
                     where newer.net_request_id = q.net_request_id and newer.queued_at > q.queued_at)
            or not exists (select 1 from net._http_response h
                            where h.id = q.net_request_id and h.created >= q.queued_at - interval '1 second'))
     order by q.id
     limit batch
     for update of q skip locked
  loop
    begin
      perform private.apply_lost_request(lost, at);
    exception when others then
      get stacked diagnostics problem = message_text;
      update private.requests q set resolved_at = reconcile_tick.at, outcome = 'error', error = left(problem, 500)
       where q.id = lost.id;
    end;
    handled := handled + 1;
  end loop;
  return handled;
end
$$;
comment on function private.reconcile_tick(timestamptz) is
  'API: Private. Tick: applies new pg_net responses to our request log and jobs, then resolves requests lost without a response. Returns how many it handled.';

-- ---------------------------------------------------------------------------------------------
-- Dispatch: waiting jobs, higher plans first, then oldest, within the create budget.
-- ---------------------------------------------------------------------------------------------
create function private.dispatch_tick(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  ids uuid[];
  granted integer;
  sent integer := 0;
begin
  if private.dispatch_paused() then
    return 0;
  end if;
  select array_agg(x.job_id order by x.priority desc, x.created_at) into ids
    from (select p.job_id, p.priority, p.created_at from private.job_pipeline p
           where p.stage = 'waiting' and p.next_run_at <= at and p.deadline_at > at
           order by p.priority desc, p.created_at
           limit private.setting_number('dispatch.batch_size')
           for update skip locked) as x;
  if ids is null then
    return 0;
  end if;
  if private.secret('kie_api_key') is null or private.secret('functions_base_url') is null then
    perform private.raise_alert('missing_secret',
      'Vault secret kie_api_key or functions_base_url is missing: jobs wait and nothing is sent. See README "Secrets".',
      false, jsonb_build_object('secrets', array['kie_api_key', 'functions_base_url'], 'waiting_jobs', cardinality(ids)), at);
    return 0;
  end if;
  granted := private.take_tokens('create', cardinality(ids), at);
  for i in 1 .. granted loop
    if private.send_create_task(ids[i], at) then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;
comment on function private.dispatch_tick(timestamptz) is
  'API: Private. Tick: sends createTask for due waiting jobs (higher plan rank first, then oldest) as far as the create budget allows; nothing while dispatch is paused. Returns how many were sent.';

-- ---------------------------------------------------------------------------------------------
-- Poll: tasks whose callback is late, oldest due first, within the poll budget.
-- ---------------------------------------------------------------------------------------------
create function private.poll_tick(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  ids uuid[];
  granted integer;
  sent integer := 0;
begin
  select array_agg(x.job_id order by x.next_run_at) into ids
    from (select p.job_id, p.next_run_at from private.job_pipeline p
           where p.stage in ('generating', 'finalizing') and p.next_run_at <= at and p.deadline_at > at
           order by p.next_run_at
           limit private.setting_number('dispatch.batch_size')
           for update skip locked) as x;
  if ids is null then
    return 0;
  end if;
  granted := private.take_tokens('poll', cardinality(ids), at);
  for i in 1 .. granted loop
    if private.send_poll(ids[i], at, false) then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;
comment on function private.poll_tick(timestamptz) is
  'API: Private. Tick: sends recordInfo for due tasks (generating, or finalizing without completion) as far as the poll budget allows. Returns how many were sent.';

-- ---------------------------------------------------------------------------------------------
-- Deadlines: one final poll for tasks at KIE, then failed timed_out + refund.
-- ---------------------------------------------------------------------------------------------
create function private.deadline_tick(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  p private.job_pipeline;
  grace numeric := private.setting_number('deadline.final_grace_seconds');
  failed integer := 0;
begin
  for p in
    select * from private.job_pipeline jp
     where jp.stage in ('waiting', 'creating', 'generating', 'finalizing') and jp.deadline_at <= at
     order by jp.deadline_at
     limit private.setting_number('dispatch.batch_size')
     for update skip locked
  loop
    if p.stage in ('generating', 'finalizing') and p.final_poll_at is null and private.secret('kie_api_key') is not null then
      if private.take_tokens('poll', 1, at) = 1 then
        perform private.send_poll(p.job_id, at, true);
      end if;
      continue; -- no token: the next tick tries again
    end if;
    if p.final_poll_at is not null and at < p.final_poll_at + make_interval(secs => grace::double precision) then
      continue;
    end if;
    if private.fail_job(p.job_id, array[p.stage], p.attempt, 'timed_out',
                        'The image took too long to generate. Your credits were refunded.', 'deadline passed', at) then
      failed := failed + 1;
    end if;
  end loop;
  return failed;
end
$$;
comment on function private.deadline_tick(timestamptz) is
  'API: Private. Tick: jobs past their deadline get one final poll (tasks at KIE), then fail with error_code timed_out and a refund. Returns how many failed.';

-- ---------------------------------------------------------------------------------------------
-- Account health: secrets present, KIE credits above the threshold (the credit check also
-- probes a paused account and lifts the pause when it succeeds).
-- ---------------------------------------------------------------------------------------------
create function private.account_tick(at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  missing text[] := array(select n from unnest(array['kie_api_key', 'functions_base_url', 'finalize_credential']) as n
                           where private.secret(n) is null);
begin
  if cardinality(missing) > 0 then
    perform private.raise_alert('missing_secret',
      format('Vault secrets missing: %s. Jobs wait (and time out) until they are set. See README "Secrets".', array_to_string(missing, ', ')),
      false, jsonb_build_object('secrets', missing), at);
  else
    update private.alerts a set cleared_at = account_tick.at where a.key = 'missing_secret' and a.cleared_at is null;
  end if;
  return private.send_credit_check(at);
end
$$;
comment on function private.account_tick(timestamptz) is
  'API: Private. Tick: alerts on missing Vault secrets and sends the KIE credit check (low-balance alert, and the probe that lifts an account pause).';

-- ---------------------------------------------------------------------------------------------
-- Housekeeping: pg_net responses, cron history and our own log past their retention.
-- ---------------------------------------------------------------------------------------------
create function private.housekeeping_tick(at timestamptz default now())
returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  responses integer;
  cron_runs integer;
  log_rows integer;
  late_rows integer;
begin
  delete from net._http_response h
   where h.created < at - make_interval(secs => private.setting_number('housekeeping.net_response_retention_seconds')::double precision);
  get diagnostics responses = row_count;
  delete from cron.job_run_details d
   where d.end_time < at - make_interval(secs => private.setting_number('housekeeping.cron_history_retention_seconds')::double precision);
  get diagnostics cron_runs = row_count;
  delete from private.requests q
   where q.resolved_at < at - make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision);
  get diagnostics log_rows = row_count;
  delete from private.late_results l
   where l.received_at < at - make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision);
  get diagnostics late_rows = row_count;
  return jsonb_build_object('net_responses', responses, 'cron_runs', cron_runs, 'requests', log_rows, 'late_results', late_rows);
end
$$;
comment on function private.housekeeping_tick(timestamptz) is
  'API: Private. Tick: deletes net._http_response, cron.job_run_details, resolved private.requests and late results past their retention settings.';

create index requests_resolved_at_idx on private.requests (resolved_at) where resolved_at is not null;
create index late_results_received_at_idx on private.late_results (received_at);

-- ---------------------------------------------------------------------------------------------
-- The schedules.
-- ---------------------------------------------------------------------------------------------
insert into private.ticks (name, every_seconds, command, description) values
  ('kiln-reconcile', 1, 'select private.reconcile_tick()', 'Applies pg_net responses to the request log and jobs; resolves lost requests.'),
  ('kiln-dispatch', 1, 'select private.dispatch_tick()', 'Sends createTask for waiting jobs within the create budget.'),
  ('kiln-poll', 1, 'select private.poll_tick()', 'Polls recordInfo for late tasks within the poll budget.'),
  ('kiln-deadlines', 5, 'select private.deadline_tick()', 'Final poll, then timed_out + refund, for jobs past their deadline.'),
  ('kiln-account', 60, 'select private.account_tick()', 'Checks Vault secrets and the KIE credit balance (and probes a paused account).'),
  ('kiln-housekeeping', 600, 'select private.housekeeping_tick()', 'Purges pg_net responses, cron history and old request log rows.');
select private.schedule_ticks();
