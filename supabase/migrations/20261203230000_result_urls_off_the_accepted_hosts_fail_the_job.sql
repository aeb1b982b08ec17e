-- Why: a success report naming a result URL off results.allowed_hosts was read as unreadable, and
-- nothing ever read it otherwise. On the poll path reconcile recorded the poll's error and polled
-- again on the cadence, getting the same answer every time (recordInfo lists the same resultUrls
-- for a finished task), so the job waited for its deadline, 15 minutes by default, and then failed
-- as timed_out with its refund. The callback path was no faster: the function answered 422 and
-- changed nothing, which left the job to that same poll path.
--
-- Such a report is now read as a failure with fail_code unusable, like a success without any http(s)
-- result URL: the job fails at once on either path, provider_failed with the outcome's message for
-- the user and exactly one refund (private.fail_job), the reason (which URL of how many, and why,
-- never the URL itself: it can carry a signed query) kept in last_error. The callback function
-- records it through private.callback_fail and answers 200 failure_recorded; reconcile applies it
-- through private.apply_task_failure. A report of a task that is not the job's still changes
-- nothing (apply_task_failure records it in late_results), and a repeated report finds the job
-- failed. The function still checks every download and redirect against the list itself.

create or replace function private.interpret_task_report(report jsonb)
returns table (kind text, task_id text, state text, result_urls text[], fail_code text, fail_message text,
               body_code integer, message text, credits_consumed numeric)
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
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
  select u.n, private.result_url_problem(u.url) as problem into off_host
    from unnest(result_urls) with ordinality as u (url, n)
   where private.result_url_problem(u.url) is not null
   order by u.n
   limit 1;
  if found then
    kind := 'failed';
    fail_code := 'unusable';
    fail_message := format('result URL %s of %s is not on an accepted result host (results.allowed_hosts): %s',
                           off_host.n, cardinality(result_urls), off_host.problem);
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
$$;
comment on function private.interpret_task_report(jsonb) is
  'API: Private. Reads a recordInfo reply or a callback body (taskId or task_id, resultJson as string or object, creditsConsumed or consumeCredits, msg or message, numbers as strings): kind success (result_urls), failed (fail_code, fail_message; fail_code unusable when KIE said success without a usable URL, or with a result URL that breaks results.allowed_hosts: fail_message names which of how many and why, never the URL), running, or unreadable (body_code says why when it is another KIE code).';

update private.kie_outcomes set description = 'KIE reported success without a usable result URL (none, or one off results.allowed_hosts), or the callback function found a result no retry can store'
 where operation = 'task' and source = 'task' and code = 'unusable';
