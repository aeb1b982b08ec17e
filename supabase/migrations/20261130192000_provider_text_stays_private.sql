-- Why: a failed task's failMsg is KIE's text, of any length and with any characters (a bidi
-- override, control characters, 200k characters were seen to reach the app through
-- generation_jobs.error_message and Realtime). The app now sees only our own message for the
-- outcome (private.kie_outcomes.user_message); the provider's text goes to the pipeline's
-- last_error and the late-results log, one line, without control or bidi characters, capped.

-- Control characters, bidi embeddings/overrides/isolates and invisible format characters become
-- spaces; runs of white space become one. Only a bounded prefix is read, so a huge text costs
-- no more than a short one.
create or replace function private.log_excerpt(content text, max_length integer default 300)
returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return left(btrim(regexp_replace(
           regexp_replace(left(content, greatest(max_length, 0) * 4 + 16),
                          '[\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]', ' ', 'g'),
           '\s+', ' ', 'g')), max_length);
exception when others then
  return '(unreadable bytes)';
end
$$;
comment on function private.log_excerpt(text, integer) is
  'API: Private. A one-line excerpt for logs and last_error: control, bidi and invisible format characters removed, white space folded, at most max_length characters; never throws.';

create or replace function private.fail_job(job_id uuid, from_stages text[], expected_attempt integer, error_code text,
                                            user_message text, reason text, at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  update private.job_pipeline p
     set stage = 'failed', finished_at = fail_job.at, last_error = private.log_excerpt(fail_job.reason, 500), next_run_at = null
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
  'API: Private. Fails a job in one of the expected stages (and attempt, unless null), with the user''s message (always our own text, never a provider''s), and refunds it once. The reason goes to last_error as a clean excerpt. False when the job had moved on.';

create or replace function private.apply_task_failure(job_id uuid, attempt integer, task_id text, fail_code text,
                                                      fail_message text, source text, at timestamptz)
returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
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
  return 'failed';
end
$$;
comment on function private.apply_task_failure(uuid, integer, text, text, text, text, timestamptz) is
  'API: Private. Applies a failed task report to its job: classified by failCode (private.kie_outcomes, operation task), the user shown only the outcome''s user_message, KIE''s failMsg kept (cleaned, at most 300 characters) in last_error; ignored (recorded) when the job is terminal or the task is not the current one.';

select private.pin_search_paths();
