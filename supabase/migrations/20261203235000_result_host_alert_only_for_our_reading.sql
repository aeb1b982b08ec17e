-- Why: the result_host_refused alert (20261203234000) was raised for any failure whose fail_code
-- was "unusable" and whose message started like interpret_task_report's reading of a result URL off
-- results.allowed_hosts ("result URL n of m is not on an accepted result host ..."). But a task KIE
-- reports as failed (state fail, or code 501) brings its own failCode and failMsg, which the reading
-- passes on as they are, to callback_fail on the callback path and to apply_task_failure on the poll
-- path. So a failure report with failCode "unusable" and a failMsg of that opening raised the
-- operator's alert for a failure KIE reported itself, with whatever the failMsg went on to say in
-- details.reason (a URL's path and signed query included) and a host of its choosing in
-- details.host, the host the alert tells the operator to add to results.allowed_hosts.
--
-- The alert now needs the message exactly as the reading words it: which URL of how many, a reason
-- of words alone (result_url_problem's, none of which holds a dot, colon, slash or query, so no URL
-- or part of one fits), then at most " (host <plain host[:port]>)". Any other failure with code
-- unusable still fails its job as before, and raises nothing. apply_task_failure as in
-- 20261203234000 otherwise.

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
  refused_host text[];
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
  -- so the operator gets the alert: only for the message exactly as private.interpret_task_report
  -- words it, which URL of how many, a reason of words alone (no character a URL needs: no dot,
  -- colon, slash or query), and at most a plain host.
  -- A task KIE reports as failed passes its own failCode and failMsg on as they are, and a failMsg
  -- that merely starts like this one is KIE's failure, not our reading of a result URL.
  refused_host := regexp_match(fail_message,
    '^result URL [0-9]+ of [0-9]+ is not on an accepted result host [(]results[.]allowed_hosts[)]: [A-Za-z0-9 ()]+?'
    || '(?: [(]host ([a-z0-9.-]{1,253}(?::[0-9]{1,5})?)[)])?$');
  if fail_code = 'unusable' and refused_host is not null then
    perform private.raise_alert('result_host_refused',
      'a job failed because KIE reported a result on a host that results.allowed_hosts does not accept; '
        || 'if KIE serves its files from a new host, add it to the setting, then clear this alert',
      false,
      jsonb_strip_nulls(jsonb_build_object(
        'host', refused_host[1],
        'job_id', job_id, 'task_id', task_id, 'reason', clean_message)),
      at);
  end if;
  return 'failed';
end
$function$;


comment on function private.apply_task_failure(job_id uuid, attempt integer, task_id text, fail_code text, fail_message text, source text, at timestamp with time zone) is
  'API: Private. Applies a failed task report to its job: classified by failCode (private.kie_outcomes, operation task), the user shown only the outcome''s user_message, KIE''s failMsg kept (cleaned, at most 300 characters) in last_error; ignored (recorded) when the job is terminal or the task is not the current one. A job failed for a result host off results.allowed_hosts (fail_code unusable with the message exactly as private.interpret_task_report words it, never a failMsg KIE sent) raises the result_host_refused alert, naming the host alone.';

comment on function private.interpret_task_report(jsonb) is
  'API: Private. Reads a recordInfo reply or a callback body (taskId or task_id, resultJson as string or object, creditsConsumed or consumeCredits, msg or message, numbers as strings): kind success (result_urls), failed (fail_code, fail_message; fail_code unusable when KIE said success without a usable URL, or with a result URL that breaks results.allowed_hosts: fail_message names which of how many, why and the URL''s host when it is a plain host name, never the rest of the URL), running, or unreadable (body_code says why when it is another KIE code).';
