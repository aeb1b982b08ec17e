-- Why: since 20261203230000 a result on a host that results.allowed_hosts does not accept fails
-- its job at once, with the refund, on the callback path and the poll path alike. That is right for
-- one job, but if KIE starts serving its files from a new host every job fails that way, and the
-- user sees only "could not be generated" while nothing told the operator: each job's last_error
-- was the only trace, and it did not name the host.
--
-- Now the failure's reason names the URL's host (only the host: the rest of a result URL can carry
-- a signed query, and a host with user info or odd characters is left out), and applying such a
-- failure raises the alert result_host_refused, whose details name the host, the job and the task.
-- Raised once and counted (occurrences) while it stays active; the operator adds the host to
-- results.allowed_hosts if it is KIE's, and clears it with private.clear_alert('result_host_refused').
-- interpret_task_report as in 20261203230000 and apply_task_failure as in 20261130192000 otherwise.

create or replace function private.interpret_task_report(report jsonb)
 RETURNS TABLE(kind text, task_id text, state text, result_urls text[], fail_code text, fail_message text, body_code integer, message text, credits_consumed numeric)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  data jsonb;
  camel text;
  snake text;
  result_json jsonb;
  raw_urls jsonb;
  off_host record;
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
  -- One rule for every result URL: a host KIE serves files from (results.allowed_hosts). One URL
  -- elsewhere fails the job: the same report comes on every delivery and every poll, so waiting
  -- would only hold the refund until the deadline. Nothing is fetched; the URL is never quoted.
  select u.n, u.url, private.result_url_problem(u.url) as problem into off_host
    from unnest(result_urls) with ordinality as u (url, n)
   where private.result_url_problem(u.url) is not null
   order by u.n
   limit 1;
  if found then
    kind := 'failed';
    fail_code := 'unusable';
    -- The host, never the rest of the URL, so the operator's alert can name what to accept; only
    -- when it is a plain host name (user info, which can hold a password, never gets this far).
    fail_message := format('result URL %s of %s is not on an accepted result host (results.allowed_hosts): %s%s',
                           off_host.n, cardinality(result_urls), off_host.problem,
                           (select format(' (host %s)', h)
                              from lower(substring(off_host.url from '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)')) as h
                             where h ~ '^[a-z0-9.-]{1,253}(:[0-9]{1,5})?$'));
    result_urls := null;
    return next;
    return;
  end if;
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
$function$;

create or replace function private.apply_task_failure(job_id uuid, attempt integer, task_id text, fail_code text, fail_message text, source text, at timestamp with time zone)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  p private.job_pipeline;
  outcome private.kie_outcomes := private.kie_outcome('task', 'task', coalesce(fail_code, '*'));
  clean_code text := private.log_excerpt(fail_code, 64);
  clean_message text := private.log_excerpt(fail_message, 300);
  reason text := format('task %s failed: %s %s', task_id, coalesce(clean_code, '-'), coalesce(clean_message, ''));
begin
  select * into p from private.job_pipeline jp where jp.job_id = apply_task_failure.job_id for update;
  -- A fast failure callback can beat the reconcile of its createTask: in stage creating the task
  -- id is not known yet, and the attempt (its token was checked) says whose task it is.
  if p.stage in ('completed', 'failed', 'waiting') or p.attempt <> apply_task_failure.attempt
     or (p.stage <> 'creating' and p.task_id is distinct from apply_task_failure.task_id) then
    perform private.record_late_result(job_id, attempt, task_id, source, 'failed',
      jsonb_build_object('fail_code', clean_code, 'fail_message', clean_message, 'stage', p.stage, 'current_task', p.task_id), at);
    return 'ignored';
  end if;
  if outcome.outcome = 'transient' then
    return private.retry_or_fail(job_id, p.stage, p.attempt, outcome, reason, at);
  end if;
  -- The user sees our message for the outcome only; KIE's failMsg stays in last_error.
  perform private.fail_job(job_id, array[p.stage], p.attempt, 'provider_failed', outcome.user_message, reason, at);
  -- A result on a host results.allowed_hosts does not accept fails its job at once, with the
  -- refund; if KIE has moved its files, every job fails that way. The user sees only a failure,
  -- so the operator gets the alert. The message is private.interpret_task_report's.
  if fail_code = 'unusable' and fail_message like 'result URL % is not on an accepted result host (results.allowed_hosts)%' then
    perform private.raise_alert('result_host_refused',
      'a job failed because KIE reported a result on a host that results.allowed_hosts does not accept; '
        || 'if KIE serves its files from a new host, add it to the setting, then clear this alert',
      false,
      jsonb_strip_nulls(jsonb_build_object(
        'host', substring(fail_message from '[(]host ([a-z0-9.:-]+)[)]$'),
        'job_id', job_id, 'task_id', task_id, 'reason', clean_message)),
      at);
  end if;
  return 'failed';
end
$function$;

comment on function private.apply_task_failure(job_id uuid, attempt integer, task_id text, fail_code text, fail_message text, source text, at timestamp with time zone) is
  'API: Private. Applies a failed task report to its job: classified by failCode (private.kie_outcomes, operation task), the user shown only the outcome''s user_message, KIE''s failMsg kept (cleaned, at most 300 characters) in last_error; ignored (recorded) when the job is terminal or the task is not the current one. A job failed for a result host off results.allowed_hosts raises the result_host_refused alert.';

comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error, deadline_error, pg_net_stalled, retention_error, storage_purge_failing, result_host_refused, tick_schedule_drift, tick_failing). Active while cleared_at is null; clear with private.clear_alert(key). Most are also cleared by the tick that finds the problem gone. private.active_alerts adds ticks_silent, computed when read (private.silent_ticks), and names kiln-account under tick_failing when its own runs keep failing, computed when read (private.tick_failure): it is the tick that raises tick_failing.';
