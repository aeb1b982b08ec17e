-- Why: the state machine of a job lives in SQL, nowhere else. This file holds the pieces every
-- path shares: secrets from Vault, the rate budgets, the one reading of a KIE task report, the
-- classification of responses, the guarded transitions (complete, fail, retry) and the requests
-- sent through pg_net. The after-insert trigger dispatches a new job when the budget allows;
-- everything else happens in the ticks (next migration). All functions are owned by the
-- migration owner and executable by nobody else: the ticks and the callback function run as it.

-- ---------------------------------------------------------------------------------------------
-- Small utilities
-- ---------------------------------------------------------------------------------------------
create function private.setting_number(key text)
returns numeric
language sql stable
set search_path = ''
as $$
  select (private.setting(key) #>> '{}')::numeric
$$;
comment on function private.setting_number(text) is 'API: Private. A numeric setting.';

create function private.setting_text(key text)
returns text
language sql stable
set search_path = ''
as $$
  select private.setting(key) #>> '{}'
$$;
comment on function private.setting_text(text) is 'API: Private. A text setting.';

-- Vault secrets are read at run time and never stored elsewhere. Null when missing or blank.
create function private.secret(name text)
returns text
language sql stable
set search_path = ''
as $$
  select nullif(btrim(s.decrypted_secret), '') from vault.decrypted_secrets as s where s.name = secret.name
   order by s.updated_at desc limit 1
$$;
comment on function private.secret(text) is
  'API: Private. The decrypted Vault secret of that name, or null. Names: kie_api_key, functions_base_url, finalize_credential, kie_webhook_hmac_key.';

-- JSON parsing that never throws: a response body may be anything, including bytes that are not
-- valid UTF-8 (real pg_net stores them raw; ::jsonb then fails with 22021).
create function private.try_jsonb(content text)
returns jsonb
language plpgsql immutable
set search_path = ''
as $$
begin
  return content::jsonb;
exception when others then
  return null;
end
$$;
comment on function private.try_jsonb(text) is 'API: Private. content as jsonb, or null when it is not valid JSON (or not valid text).';

create function private.log_excerpt(content text, max_length integer default 300)
returns text
language plpgsql immutable
set search_path = ''
as $$
begin
  return left(regexp_replace(content, '\s+', ' ', 'g'), max_length);
exception when others then
  return '(unreadable bytes)';
end
$$;
comment on function private.log_excerpt(text, integer) is 'API: Private. A trimmed one-line excerpt for logs; never throws.';

-- An integer from a JSON number or a numeric string (KIE sends both), else null.
create function private.json_int(value jsonb)
returns integer
language sql immutable
set search_path = ''
as $$
  select case
    when jsonb_typeof(value) = 'number' and (value #>> '{}') ~ '^-?[0-9]{1,9}$' then (value #>> '{}')::integer
    when jsonb_typeof(value) = 'string' and btrim(value #>> '{}') ~ '^-?[0-9]{1,9}$' then btrim(value #>> '{}')::integer
  end
$$;
comment on function private.json_int(jsonb) is 'API: Private. An integer sent as a JSON number or numeric string; null otherwise.';

create function private.json_numeric(value jsonb)
returns numeric
language sql immutable
set search_path = ''
as $$
  select case
    when jsonb_typeof(value) = 'number' then (value #>> '{}')::numeric
    when jsonb_typeof(value) = 'string' and btrim(value #>> '{}') ~ '^-?[0-9]+(\.[0-9]+)?$' then btrim(value #>> '{}')::numeric
  end
$$;
comment on function private.json_numeric(jsonb) is 'API: Private. A number sent as a JSON number or numeric string; null otherwise.';

-- ---------------------------------------------------------------------------------------------
-- Alerts
-- ---------------------------------------------------------------------------------------------
create function private.raise_alert(key text, message text, pauses_dispatch boolean default false,
                                    details jsonb default '{}', at timestamptz default now())
returns void
language sql volatile
set search_path = ''
as $$
  insert into private.alerts as a (key, message, pauses_dispatch, details, raised_at, last_seen_at)
  values (raise_alert.key, raise_alert.message, raise_alert.pauses_dispatch, raise_alert.details, raise_alert.at, raise_alert.at)
  on conflict on constraint alerts_pkey do update
     set message = excluded.message,
         pauses_dispatch = excluded.pauses_dispatch,
         details = excluded.details,
         last_seen_at = excluded.last_seen_at,
         occurrences = case when a.cleared_at is null then a.occurrences + 1 else 1 end,
         raised_at = case when a.cleared_at is null then a.raised_at else excluded.raised_at end,
         cleared_at = null
$$;
comment on function private.raise_alert(text, text, boolean, jsonb, timestamptz) is
  'API: Private. Raises (or re-raises) an operator alert; pauses_dispatch holds createTask while it is active.';

create function private.clear_alert(key text, at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = ''
as $$
begin
  if not exists (select 1 from private.alerts a where a.key = clear_alert.key) then
    perform private.raise_error('KL043', 'no such alert', format('no alert %s', clear_alert.key), 'See private.active_alerts.');
  end if;
  update private.alerts a set cleared_at = clear_alert.at where a.key = clear_alert.key and a.cleared_at is null;
  return found;
end
$$;
comment on function private.clear_alert(text, timestamptz) is
  'API: Private. Operators: clears an active alert (a cleared kie_account alert resumes dispatch). True when it was active.';

create function private.dispatch_paused()
returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1 from private.alerts a where a.cleared_at is null and a.pauses_dispatch)
$$;
comment on function private.dispatch_paused() is 'API: Private. True while an alert holds createTask.';

-- ---------------------------------------------------------------------------------------------
-- Rate budgets
-- ---------------------------------------------------------------------------------------------
create function private.take_tokens(bucket text, wanted integer, at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  capacity integer := least(private.setting_number(case bucket when 'create' then 'dispatch.create_per_window' else 'poll.per_window' end),
                            case bucket when 'create' then 200 else 100 end);
  window_seconds numeric := private.setting_number(case bucket when 'create' then 'dispatch.create_window_seconds' else 'poll.window_seconds' end);
  taken integer;
begin
  if wanted is null or wanted <= 0 then
    return 0;
  end if;
  with free as (
    select s.slot from private.rate_slots s
     where s.bucket = take_tokens.bucket and s.slot <= capacity and s.available_at <= take_tokens.at
     order by s.slot
     limit wanted
     for update skip locked
  )
  update private.rate_slots s
     set available_at = take_tokens.at + make_interval(secs => window_seconds::double precision)
    from free
   where s.bucket = take_tokens.bucket and s.slot = free.slot;
  get diagnostics taken = row_count;
  return taken;
end
$$;
comment on function private.take_tokens(text, integer, timestamptz) is
  'API: Private. Takes up to `wanted` tokens of the create or poll budget at time `at`; never waits for a slot another transaction holds. Returns how many were taken.';

-- ---------------------------------------------------------------------------------------------
-- Timing rules
-- ---------------------------------------------------------------------------------------------
-- Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^retry)], never below
-- the outcome's minimum (429: a full window). `jitter` in [0, 1) is a parameter for tests.
create function private.backoff_seconds(retry integer, min_seconds numeric default 0, jitter double precision default random())
returns numeric
language sql volatile
set search_path = ''
as $$
  select greatest(coalesce(min_seconds, 0),
                  jitter::numeric * least(private.setting_number('retry.cap_seconds'),
                                          private.setting_number('retry.base_seconds') * power(2::numeric, greatest(retry, 0))))
$$;
comment on function private.backoff_seconds(integer, numeric, double precision) is
  'API: Private. Seconds to wait before retry number `retry`: full jitter over min(cap, base * 2^retry), at least min_seconds.';

create function private.poll_interval_seconds(age_seconds numeric)
returns numeric
language sql stable
set search_path = ''
as $$
  select (e.entry ->> 'every_seconds')::numeric
    from jsonb_array_elements(private.setting('poll.cadence')) with ordinality as e (entry, n)
   where e.entry ->> 'until_seconds' is null or age_seconds < (e.entry ->> 'until_seconds')::numeric
   order by e.n
   limit 1
$$;
comment on function private.poll_interval_seconds(numeric) is
  'API: Private. Seconds until the next recordInfo for a task of this age (KIE''s cadence: 2-3 s, then 5-10 s until 2 min, then 15-30 s).';

create function private.job_deadline_seconds(model_key text)
returns numeric
language sql stable
set search_path = ''
as $$
  select coalesce((select m.deadline_seconds from private.model_requests m where m.model_key = job_deadline_seconds.model_key),
                  private.setting_number('jobs.deadline_seconds'))
$$;
comment on function private.job_deadline_seconds(text) is 'API: Private. A model''s job deadline in seconds.';

-- ---------------------------------------------------------------------------------------------
-- One reading of KIE: a recordInfo reply or a callback body (kie-api.md §3, §4).
-- ---------------------------------------------------------------------------------------------
create function private.interpret_task_report(report jsonb)
returns table (kind text, task_id text, state text, result_urls text[], fail_code text, fail_message text,
               body_code integer, message text, credits_consumed numeric)
language plpgsql immutable
set search_path = ''
as $$
declare
  data jsonb;
  camel text;
  snake text;
  result_json jsonb;
  raw_urls jsonb;
begin
  kind := 'unreadable';
  if jsonb_typeof(report) is distinct from 'object' then
    message := 'the report is not a JSON object';
    return next;
    return;
  end if;
  body_code := private.json_int(report -> 'code');
  message := coalesce(nullif(btrim(report ->> 'msg'), ''), nullif(btrim(report ->> 'message'), ''));
  data := report -> 'data';
  if body_code is null then
    message := coalesce(message, 'the report has no integer code');
    return next;
    return;
  end if;
  if body_code not in (200, 501) or jsonb_typeof(data) is distinct from 'object' then
    return next;
    return;
  end if;

  camel := nullif(btrim(data ->> 'taskId'), '');
  snake := nullif(btrim(data ->> 'task_id'), '');
  if camel is not null and snake is not null and camel <> snake then
    message := 'data.taskId and data.task_id disagree';
    return next;
    return;
  end if;
  task_id := case when camel is not null then data ->> 'taskId' when snake is not null then data ->> 'task_id' end;
  if task_id is null or length(task_id) > 64 then
    message := case when task_id is null then 'data.taskId is missing' else 'data.taskId is longer than 64 characters' end;
    task_id := null;
    return next;
    return;
  end if;

  state := nullif(lower(btrim(data ->> 'state')), '');
  credits_consumed := coalesce(private.json_numeric(data -> 'creditsConsumed'), private.json_numeric(data -> 'consumeCredits'));

  if body_code = 501 or state = 'fail' then
    kind := 'failed';
    fail_code := nullif(btrim(data ->> 'failCode'), '');
    fail_message := coalesce(nullif(btrim(data ->> 'failMsg'), ''), message, 'KIE reported the task as failed');
    return next;
    return;
  end if;
  if state is not null and state <> 'success' then
    kind := 'running';
    return next;
    return;
  end if;

  -- Success (callbacks may omit state): resultJson is a JSON string, or (tolerated) an object.
  result_json := case jsonb_typeof(data -> 'resultJson')
    when 'string' then case when btrim(data ->> 'resultJson') = '' then 'null'::jsonb else private.try_jsonb(data ->> 'resultJson') end
    when 'object' then data -> 'resultJson'
    else 'null'::jsonb
  end;
  if result_json is null or jsonb_typeof(result_json) not in ('object', 'null') then
    kind := 'failed';
    fail_code := 'unusable';
    fail_message := 'KIE reported success but resultJson is not a JSON object';
    return next;
    return;
  end if;
  raw_urls := result_json -> 'resultUrls';
  select coalesce(array_agg(u.url order by u.first_seen), '{}') into result_urls
    from (select btrim(e.value #>> '{}') as url, min(e.n) as first_seen
            from jsonb_array_elements(case jsonb_typeof(raw_urls) when 'array' then raw_urls
                                                                   when 'string' then jsonb_build_array(raw_urls)
                                                                   else '[]'::jsonb end) with ordinality as e (value, n)
           where jsonb_typeof(e.value) = 'string' and btrim(e.value #>> '{}') ~* '^https?://[^\s/?#]+'
           group by 1) as u;
  if cardinality(result_urls) = 0 then
    result_urls := null;
    kind := 'failed';
    fail_code := 'unusable';
    fail_message := 'KIE reported success but resultJson has no http(s) result URL';
    return next;
    return;
  end if;
  kind := 'success';
  return next;
end
$$;
comment on function private.interpret_task_report(jsonb) is
  'API: Private. Reads a recordInfo reply or a callback body (taskId or task_id, resultJson as string or object, creditsConsumed or consumeCredits, msg or message, numbers as strings): kind success (result_urls), failed (fail_code, fail_message; fail_code unusable when KIE said success without a usable URL), running, or unreadable (body_code says why when it is another KIE code).';

-- ---------------------------------------------------------------------------------------------
-- Classification of a response (HTTP status and body code, or transport error)
-- ---------------------------------------------------------------------------------------------
create function private.kie_outcome(operation text, source text, code text)
returns private.kie_outcomes
language sql stable
set search_path = ''
as $$
  select o.* from private.kie_outcomes o
   where o.operation = kie_outcome.operation and o.source = kie_outcome.source
     and o.code in (kie_outcome.code, case when kie_outcome.code ~ '^[2-5][0-9][0-9]$' then left(kie_outcome.code, 1) || 'xx' end, '*')
   order by case when o.code = kie_outcome.code then 0 when o.code = '*' then 2 else 1 end
   limit 1
$$;
comment on function private.kie_outcome(text, text, text) is
  'API: Private. The kie_outcomes row for a code: exact, else its class (4xx, 5xx), else *.';

create function private.classify_response(operation text, status_code integer, timed_out boolean, error_msg text, body jsonb)
returns table (source text, code text)
language sql immutable
set search_path = ''
as $$
  select s.source, s.code from (
    select case
      when error_msg is not null or coalesce(timed_out, false) or status_code is null then 'transport'
      when operation = 'finalize' then 'http'
      when private.json_int(body -> 'code') is not null
           and (status_code between 200 and 299 or private.json_int(body -> 'code') <> 200) then 'body'
      when status_code not between 200 and 299 then 'http'
      else 'body'
    end as source,
    case
      when coalesce(timed_out, false) then 'timeout'
      when error_msg is not null or status_code is null then
        case when error_msg ~* '^couldn''t (connect|resolve)' then 'connect' else 'other' end
      when operation = 'finalize' then status_code::text
      when private.json_int(body -> 'code') is not null
           and (status_code between 200 and 299 or private.json_int(body -> 'code') <> 200) then private.json_int(body -> 'code')::text
      when status_code not between 200 and 299 then status_code::text
      else 'unreadable'
    end as code
  ) as s
$$;
comment on function private.classify_response(text, integer, boolean, text, jsonb) is
  'API: Private. Where a response''s verdict comes from: a transport error, the KIE body code (when the body is an envelope and does not claim success over a failed HTTP status), or the HTTP status.';

-- ---------------------------------------------------------------------------------------------
-- Guarded transitions. Each is one update of the pipeline row that names the stage (and
-- attempt) it expects; the loser of a race updates nothing and changes nothing.
-- ---------------------------------------------------------------------------------------------
create function private.fail_job(job_id uuid, from_stages text[], expected_attempt integer, error_code text,
                                 user_message text, reason text, at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = ''
as $$
begin
  update private.job_pipeline p
     set stage = 'failed', finished_at = fail_job.at, last_error = left(fail_job.reason, 500), next_run_at = null
   where p.job_id = fail_job.job_id and p.stage = any (fail_job.from_stages)
     and (fail_job.expected_attempt is null or p.attempt = fail_job.expected_attempt);
  if not found then
    return false;
  end if;
  update public.generation_jobs j
     set status = 'failed', stage = 'failed', error_code = fail_job.error_code, error_message = fail_job.user_message,
         completed_at = fail_job.at
   where j.id = fail_job.job_id and j.status in ('pending', 'generating');
  perform private.refund_job(fail_job.job_id, 'Refund: ' || fail_job.user_message);
  return true;
end
$$;
comment on function private.fail_job(uuid, text[], integer, text, text, text, timestamptz) is
  'API: Private. Fails a job in one of the expected stages (and attempt, unless null), with the user''s message, and refunds it once. False when the job had moved on.';

-- A transient failure: back to waiting with backoff while attempts remain, else fail + refund.
create function private.retry_or_fail(job_id uuid, from_stage text, expected_attempt integer, outcome private.kie_outcomes,
                                      reason text, at timestamptz default now())
returns text
language plpgsql volatile
set search_path = ''
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
  if p.retries + 1 < private.setting_number('retry.max_attempts') and p.deadline_at > at then
    update private.job_pipeline jp
       set stage = 'waiting', retries = jp.retries + 1, task_id = null, accepted_at = null, final_poll_at = null,
           callback_token_hash = null,
           next_run_at = retry_or_fail.at + make_interval(secs => private.backoff_seconds(jp.retries, outcome.min_backoff_seconds)::double precision),
           unknown_outcomes = jp.unknown_outcomes + outcome.maybe_accepted::integer,
           last_error = left(reason, 500)
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
  'API: Private. After a transient failure: schedules a new attempt with backoff (full jitter, the outcome''s minimum) while attempts and time remain, else fails the job with a refund.';

create function private.record_late_result(job_id uuid, attempt integer, task_id text, source text, outcome text,
                                           detail jsonb, at timestamptz)
returns void
language sql volatile
set search_path = ''
as $$
  insert into private.late_results (job_id, attempt, task_id, source, outcome, detail, received_at)
  values (job_id, attempt, task_id, source, outcome, coalesce(detail, '{}'), at)
$$;
comment on function private.record_late_result(uuid, integer, text, text, text, jsonb, timestamptz) is
  'API: Private. Records a result that changed nothing for the user, for operators.';

-- A KIE task failed (callback code 501, or state fail in a poll). Only the current task can fail
-- the job: a failure of a duplicate task (libcurl re-sent the createTask) is recorded only.
create function private.apply_task_failure(job_id uuid, attempt integer, task_id text, fail_code text,
                                           fail_message text, source text, at timestamptz)
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  p private.job_pipeline;
  outcome private.kie_outcomes := private.kie_outcome('task', 'task', coalesce(fail_code, '*'));
  reason text := format('task %s failed: %s %s', task_id, coalesce(fail_code, '-'), coalesce(fail_message, ''));
begin
  select * into p from private.job_pipeline jp where jp.job_id = apply_task_failure.job_id for update;
  -- A fast failure callback can beat the reconcile of its createTask: in stage creating the task
  -- id is not known yet, and the attempt (its token was checked) says whose task it is.
  if p.stage in ('completed', 'failed', 'waiting') or p.attempt <> apply_task_failure.attempt
     or (p.stage <> 'creating' and p.task_id is distinct from apply_task_failure.task_id) then
    perform private.record_late_result(job_id, attempt, task_id, source, 'failed',
      jsonb_build_object('fail_code', fail_code, 'fail_message', fail_message, 'stage', p.stage, 'current_task', p.task_id), at);
    return 'ignored';
  end if;
  if outcome.outcome = 'transient' then
    return private.retry_or_fail(job_id, p.stage, p.attempt, outcome, reason, at);
  end if;
  perform private.fail_job(job_id, array[p.stage], p.attempt, 'provider_failed',
    case when fail_code = 'unusable' then outcome.user_message
         else outcome.user_message || coalesce(' ' || nullif(btrim(fail_message), ''), '') end,
    reason, at);
  return 'failed';
end
$$;
comment on function private.apply_task_failure(uuid, integer, text, text, text, text, timestamptz) is
  'API: Private. Applies a failed task report to its job: classified by failCode (private.kie_outcomes, operation task); ignored (recorded) when the job is terminal or the task is not the current one.';

-- ---------------------------------------------------------------------------------------------
-- What the callback function calls (and nothing else). Run as the owner: no API role may.
-- ---------------------------------------------------------------------------------------------
create function private.verify_callback_token(job_id uuid, attempt integer, token text)
returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(length(token) between 32 and 128, false)
     and exists (select 1 from private.requests r
                  where r.job_id = verify_callback_token.job_id and r.attempt = verify_callback_token.attempt
                    and r.kind = 'create' and r.callback_token_hash = sha256(convert_to(token, 'UTF8')))
$$;
comment on function private.verify_callback_token(uuid, integer, text) is
  'API: Private. Callback function: true when the token of the callback URL is the one issued for that job and attempt.';

create function private.complete_job(job_id uuid, attempt integer, task_id text, object_paths text[], at timestamptz default now())
returns public.generation_jobs
language plpgsql volatile
set search_path = ''
as $$
declare
  p private.job_pipeline;
  job public.generation_jobs;
begin
  if task_id is null or btrim(task_id) = '' or length(task_id) > 64 then
    perform private.raise_error('KL041', 'invalid result', 'task_id must be 1 to 64 characters', null);
  end if;
  if object_paths is null or cardinality(object_paths) = 0
     or exists (select 1 from unnest(object_paths) o where o is null or btrim(o) = '') then
    perform private.raise_error('KL041', 'invalid result', 'object_paths must list at least one non-blank path', null);
  end if;
  select * into p from private.job_pipeline jp where jp.job_id = complete_job.job_id for update;
  if not found then
    perform private.raise_error('KL040', 'pipeline job not found', format('no job %s in the pipeline', job_id), null);
  end if;
  if attempt is null or attempt < 1 or attempt > p.attempt then
    perform private.raise_error('KL042', 'unknown attempt', format('job %s has attempts 1 to %s, got %s', job_id, p.attempt, attempt), null);
  end if;

  -- First result wins: any non-terminal stage, any attempt or duplicate task of this job.
  update private.job_pipeline jp
     set stage = 'completed', task_id = complete_job.task_id, finished_at = complete_job.at, next_run_at = null, last_error = null
   where jp.job_id = complete_job.job_id and jp.stage not in ('completed', 'failed');
  if not found then
    perform private.record_late_result(job_id, attempt, task_id, 'complete', 'success',
      jsonb_build_object('object_paths', to_jsonb(object_paths), 'stage', p.stage), at);
    select * into job from public.generation_jobs j where j.id = complete_job.job_id;
    return job;
  end if;
  update public.generation_jobs j
     set status = 'completed', stage = 'completed', result_urls = object_paths, completed_at = complete_job.at
   where j.id = complete_job.job_id
  returning * into job;
  return job;
end
$$;
comment on function private.complete_job(uuid, integer, text, text[], timestamptz) is
  'API: Private. Callback function: completes a job with the stored object paths (result_urls). First result wins; a call for a terminal job is recorded in late_results and changes nothing. Refuses a bad result (KL041), an unknown job (KL040) or attempt (KL042).';

create function private.fail_job_from_provider(job_id uuid, attempt integer, task_id text, fail_code text, fail_message text,
                                               at timestamptz default now())
returns public.generation_jobs
language plpgsql volatile
set search_path = ''
as $$
declare
  p private.job_pipeline;
  job public.generation_jobs;
begin
  if task_id is null or btrim(task_id) = '' or length(task_id) > 64 then
    perform private.raise_error('KL041', 'invalid result', 'task_id must be 1 to 64 characters', null);
  end if;
  select * into p from private.job_pipeline jp where jp.job_id = fail_job_from_provider.job_id;
  if not found then
    perform private.raise_error('KL040', 'pipeline job not found', format('no job %s in the pipeline', job_id), null);
  end if;
  if attempt is null or attempt < 1 or attempt > p.attempt then
    perform private.raise_error('KL042', 'unknown attempt', format('job %s has attempts 1 to %s, got %s', job_id, p.attempt, attempt), null);
  end if;
  perform private.apply_task_failure(job_id, attempt, task_id, nullif(btrim(fail_code), ''), fail_message, 'provider_failure', at);
  select * into job from public.generation_jobs j where j.id = fail_job_from_provider.job_id;
  return job;
end
$$;
comment on function private.fail_job_from_provider(uuid, integer, text, text, text, timestamptz) is
  'API: Private. Callback function: KIE reported the task failed. Fails (and refunds) or retries the job per its failCode; a duplicate, late or stale report changes nothing. KL040/KL041/KL042 like complete_job.';

-- ---------------------------------------------------------------------------------------------
-- Requests through pg_net. Secrets go in headers only: pg_net echoes a bad URL in its error.
-- ---------------------------------------------------------------------------------------------
create function private.kie_headers()
returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'Authorization', 'Bearer ' || private.secret('kie_api_key'),
    'Content-Type', 'application/json',
    'User-Agent', private.setting_text('kie.user_agent'))
$$;
comment on function private.kie_headers() is 'API: Private. Headers of every KIE request: the key from Vault, JSON, our User-Agent.';

create function private.create_task_body(job public.generation_jobs, callback_url text)
returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'model', m.kie_model,
    'callBackUrl', callback_url,
    'input', jsonb_strip_nulls(jsonb_build_object(
        'prompt', job.prompt,
        'aspect_ratio', job.aspect_ratio,
        'output_format', r.output_format,
        'negative_prompt', case when coalesce(r.sends_negative_prompt, false) then job.negative_prompt end))
      || case when m.image_input_field is not null then jsonb_build_object(m.image_input_field, to_jsonb(job.input_image_urls)) else '{}'::jsonb end
      || coalesce(r.extra_input, '{}'::jsonb))
    from public.models m
    left join private.model_requests r on r.model_key = m.key
   where m.key = job.model_key
$$;
comment on function private.create_task_body(public.generation_jobs, text) is
  'API: Private. The createTask body of a job, from its models row and private.model_requests: every field sent explicitly.';

-- Sends createTask for a job whose pipeline row the caller holds in stage waiting. Returns false
-- (and sends nothing) when a secret is missing.
create function private.send_create_task(job_id uuid, at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  job public.generation_jobs;
  base_url text := rtrim(private.secret('functions_base_url'), '/');
  api_key text := private.secret('kie_api_key');
  next_attempt integer;
  token text;
  token_hash bytea;
  net_id bigint;
  timeout_ms integer := private.setting_number('kie.create_timeout_ms');
begin
  if base_url is null or api_key is null then
    return false;
  end if;
  select * into job from public.generation_jobs j where j.id = send_create_task.job_id;
  select jp.attempt + 1 into next_attempt from private.job_pipeline jp where jp.job_id = send_create_task.job_id;
  -- 256 random bits, fresh per attempt; only its hash is stored.
  token := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  token_hash := sha256(convert_to(token, 'UTF8'));
  net_id := net.http_post(
    url := private.setting_text('kie.base_url') || '/api/v1/jobs/createTask',
    body := private.create_task_body(job, format('%s/kie-callback?job=%s&attempt=%s&token=%s', base_url, job.id, next_attempt, token)),
    params := '{}'::jsonb,
    headers := private.kie_headers(),
    timeout_milliseconds := timeout_ms);
  insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms, callback_token_hash)
  values (job.id, next_attempt, 'create', net_id, at, timeout_ms, token_hash);
  update private.job_pipeline jp
     set stage = 'creating', attempt = next_attempt, callback_token_hash = token_hash, next_run_at = null
   where jp.job_id = send_create_task.job_id and jp.stage = 'waiting';
  return true;
end
$$;
comment on function private.send_create_task(uuid, timestamptz) is
  'API: Private. Queues createTask through pg_net for a waiting job (caller holds its row and a create token), with a fresh callback token, and logs it. False when the KIE key or functions base URL is missing from Vault.';

create function private.send_poll(job_id uuid, at timestamptz default now(), is_final boolean default false)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  p private.job_pipeline;
  net_id bigint;
  timeout_ms integer := private.setting_number('kie.poll_timeout_ms');
begin
  if private.secret('kie_api_key') is null then
    return false;
  end if;
  select * into p from private.job_pipeline jp where jp.job_id = send_poll.job_id;
  net_id := net.http_get(
    url := private.setting_text('kie.base_url') || '/api/v1/jobs/recordInfo',
    params := jsonb_build_object('taskId', p.task_id),
    headers := private.kie_headers() - 'Content-Type',
    timeout_milliseconds := timeout_ms);
  insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms, is_final_poll, task_id)
  values (p.job_id, p.attempt, 'poll', net_id, at, timeout_ms, is_final, p.task_id);
  update private.job_pipeline jp
     set polls = jp.polls + 1,
         final_poll_at = case when is_final then send_poll.at else jp.final_poll_at end,
         next_run_at = send_poll.at + make_interval(secs => private.poll_interval_seconds(
                         extract(epoch from send_poll.at - coalesce(jp.accepted_at, send_poll.at)))::double precision)
   where jp.job_id = send_poll.job_id;
  return true;
end
$$;
comment on function private.send_poll(uuid, timestamptz, boolean) is
  'API: Private. Queues GET recordInfo for a job''s task (caller holds a poll token) and schedules the next poll on KIE''s cadence.';

create function private.send_finalize(job_id uuid, attempt integer, report jsonb, at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  base_url text := rtrim(private.secret('functions_base_url'), '/');
  credential text := private.secret('finalize_credential');
  net_id bigint;
  timeout_ms integer := private.setting_number('kie.finalize_timeout_ms');
begin
  if base_url is null or credential is null then
    perform private.raise_alert('missing_secret',
      'Vault secret functions_base_url or finalize_credential is missing: polled results cannot be finalized.',
      false, jsonb_build_object('secrets', array['functions_base_url', 'finalize_credential']), at);
    return false;
  end if;
  net_id := net.http_post(
    url := base_url || '/kie-callback',
    body := report,
    params := jsonb_build_object('job', job_id, 'attempt', attempt, 'source', 'poll'),
    headers := jsonb_build_object('Authorization', 'Bearer ' || credential, 'Content-Type', 'application/json',
                                  'User-Agent', private.setting_text('kie.user_agent')),
    timeout_milliseconds := timeout_ms);
  insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms, task_id)
  values (job_id, attempt, 'finalize', net_id, at, timeout_ms, report #>> '{data,taskId}');
  return true;
end
$$;
comment on function private.send_finalize(uuid, integer, jsonb, timestamptz) is
  'API: Private. Sends a polled success to the callback function (POST <functions_base_url>/kie-callback?job=&attempt=&source=poll, Authorization: Bearer <finalize_credential>, body = the recordInfo reply).';

create function private.send_credit_check(at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  net_id bigint;
  timeout_ms integer := private.setting_number('kie.poll_timeout_ms');
begin
  if private.secret('kie_api_key') is null then
    return false;
  end if;
  net_id := net.http_get(
    url := private.setting_text('kie.base_url') || '/api/v1/chat/credit',
    headers := private.kie_headers() - 'Content-Type',
    timeout_milliseconds := timeout_ms);
  insert into private.requests (kind, net_request_id, sent_at, timeout_ms) values ('credit', net_id, at, timeout_ms);
  return true;
end
$$;
comment on function private.send_credit_check(timestamptz) is 'API: Private. Queues GET /api/v1/chat/credit (account health).';

-- ---------------------------------------------------------------------------------------------
-- Dispatch from the start transaction. The pipeline row is created with the job; createTask is
-- queued at once when a create token is free (skip locked: a token another start or a tick
-- holds is not waited for), dispatch is not paused and the secrets exist. Otherwise the job
-- waits for the dispatch tick. pg_net sends only what commits.
-- ---------------------------------------------------------------------------------------------
create function private.enqueue_job()
returns trigger
language plpgsql volatile
set search_path = ''
as $$
begin
  insert into private.job_pipeline (job_id, priority, next_run_at, deadline_at, created_at)
  values (new.id,
          coalesce((select pl.rank from public.profiles pr join public.plans pl on pl.id = pr.plan where pr.id = new.user_id), 0),
          new.created_at,
          new.created_at + make_interval(secs => private.job_deadline_seconds(new.model_key)::double precision),
          new.created_at);
  if not private.dispatch_paused()
     and private.secret('kie_api_key') is not null and private.secret('functions_base_url') is not null
     and private.take_tokens('create', 1, now()) = 1 then
    perform private.send_create_task(new.id, now());
  end if;
  return null;
end
$$;
comment on function private.enqueue_job() is
  'API: Private. Trigger: creates the job''s pipeline row and queues createTask right away when the budget allows.';

create trigger generation_jobs_enqueue after insert on public.generation_jobs
  for each row when (new.status = 'pending') execute function private.enqueue_job();

-- Cancelling means "not yet handed to pg_net": cancel_generation's update is refused (KL023)
-- unless this claims the pipeline row in stage waiting. A dispatch holding the row makes the
-- cancel wait for it, then refuse; a cancel holding it makes dispatch skip the job.
create function private.guard_cancel()
returns trigger
language plpgsql volatile
set search_path = ''
as $$
begin
  update private.job_pipeline p
     set stage = 'failed', finished_at = coalesce(new.completed_at, now()), last_error = 'cancelled by the user', next_run_at = null
   where p.job_id = new.id and p.stage = 'waiting';
  if not found and exists (select 1 from private.job_pipeline p where p.job_id = new.id) then
    perform private.raise_error('KL023', 'this job can no longer be cancelled', 'it was already sent or has finished', null);
  end if;
  return new;
end
$$;
comment on function private.guard_cancel() is
  'API: Private. Trigger: a job may be cancelled only while its createTask is not in pg_net''s hands (pipeline stage waiting); claims the pipeline row or refuses with KL023.';

create trigger generation_jobs_guard_cancel before update of stage on public.generation_jobs
  for each row when (new.stage = 'cancelled' and old.stage is distinct from 'cancelled') execute function private.guard_cancel();

-- Jobs started before the pipeline existed join it as waiting.
insert into private.job_pipeline (job_id, priority, next_run_at, deadline_at, created_at)
select j.id, coalesce(pl.rank, 0), now(), greatest(now(), j.created_at + make_interval(secs => private.job_deadline_seconds(j.model_key)::double precision)), j.created_at
  from public.generation_jobs j
  left join public.profiles pr on pr.id = j.user_id
  left join public.plans pl on pl.id = pr.plan
 where j.status = 'pending';
insert into private.job_pipeline (job_id, stage, deadline_at, created_at, finished_at)
select j.id, case when j.status = 'completed' then 'completed' else 'failed' end, j.created_at, j.created_at, j.completed_at
  from public.generation_jobs j
 where j.status in ('completed', 'failed');
