-- Why: the callback function stored result images before the guarded completion, so a delivery
-- that lost the race left readable images of a failed, refunded job, and a concurrent delivery
-- could overwrite a completed job's images. It downloaded any http(s) URL a callback named
-- (following redirects), completed a job with any task id, and stored as many images as the
-- body listed. Now:
--   * a user reads a generated image only while it is listed in result_urls of their own
--     completed, non-deleted job (the function writes each delivery under a fresh folder of the
--     job's, so a losing delivery's objects are never listed, and the job's purge removes them);
--   * result URLs must be on results.allowed_hosts (KIE's file hosts), checked where a report is
--     read, so a report naming another host is unreadable and changes nothing;
--   * a success completes the job only when its task id is one this job created (or may have
--     created: a createTask whose answer is not known yet), and with at most image_count images.

insert into private.settings (key, value, description) values
  ('results.allowed_hosts', '["tempfile.aiquickdraw.com", "tempfile.redpandaai.co"]',
   'Hosts the callback function downloads KIE result images from (JSON array of lowercase strings). An entry is a '
   || 'host name (https on port 443 only) or an exact origin scheme://host[:port] (the only way an IP address or plain '
   || 'http is accepted; local development only). Redirects are followed only to accepted hosts.')
on conflict (key) do nothing;

-- Why a result URL is not accepted, or null. Stricter than image_url_problem: no wildcards, and
-- host names only over https on 443.
create function private.result_url_problem(url text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  allowed text[] := array(select lower(e) from jsonb_array_elements_text(coalesce(private.setting('results.allowed_hosts'), '[]')) e);
  parts text[];
  scheme text;
  host text;
  port integer;
begin
  if url is null or length(url) > 2048 then
    return 'the URL is missing or longer than 2048 characters';
  end if;
  if url !~ '^[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$' then
    return 'the URL has characters that must be percent-encoded';
  end if;
  parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([/?#].*)?$');
  if parts is null then
    return 'not an absolute URL';
  end if;
  scheme := lower(parts[1]);
  if scheme not in ('http', 'https') then
    return 'not an http(s) URL';
  end if;
  parts := regexp_match(parts[2], '^([A-Za-z0-9.-]+)(:([1-9][0-9]{0,4}))?$');
  if parts is null or coalesce(parts[3]::integer, 0) > 65535 then
    return 'the host or port is malformed (user info and IPv6 are not accepted)';
  end if;
  host := lower(parts[1]);
  port := coalesce(parts[3]::integer, case scheme when 'https' then 443 else 80 end);
  -- Exact origins first: the local emulator's loopback address is listed this way.
  if exists (select 1 from unnest(allowed) a
              where a ~ '^https?://[a-z0-9.-]+(:[0-9]+)?$'
                and a || case when a ~ ':[0-9]+$' then '' when a like 'https:%' then ':443' else ':80' end
                    = scheme || '://' || host || ':' || port) then
    return null;
  end if;
  if scheme <> 'https' or port <> 443 then
    return 'only https on port 443 is accepted';
  end if;
  if host ~ '(^|\.)([0-9]+|0x[0-9a-f]*)$' or host ~ '(^|[.-])([0-9]{1,3}[.-]){3}[0-9]{1,3}([.-]|$)' then
    return 'the host is an IP address';
  end if;
  if private.is_private_host_name(host) then
    return 'the host is a private network name';
  end if;
  if not host = any (allowed) then
    return 'the host is not an accepted result host';
  end if;
  return null;
end
$$;
comment on function private.result_url_problem(text) is
  'API: Private. Why a KIE result URL breaks results.allowed_hosts, or null when the callback function may download it. The function applies the same rule to every redirect.';

create or replace function private.interpret_task_report(report jsonb)
returns table (kind text, task_id text, state text, result_urls text[], fail_code text, fail_message text,
               body_code integer, message text, credits_consumed numeric)
language plpgsql stable
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
  -- One rule for every result URL: a host KIE serves files from (results.allowed_hosts). One
  -- URL elsewhere makes the whole report unreadable: nothing is fetched, nothing changes.
  if exists (select 1 from unnest(result_urls) u where private.result_url_problem(u) is not null) then
    kind := 'unreadable';
    message := 'a result URL is not on an accepted result host';
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
  'API: Private. Reads a recordInfo reply or a callback body (taskId or task_id, resultJson as string or object, creditsConsumed or consumeCredits, msg or message, numbers as strings): kind success (result_urls), failed (fail_code, fail_message; fail_code unusable when KIE said success without a usable URL), running, or unreadable (body_code says why when it is another KIE code; also when a result URL breaks results.allowed_hosts).';

-- Whether a task id belongs to this job: the one the pipeline holds, any a createTask of the job
-- returned (a resent POST can create two), or, while a createTask of this attempt has no known
-- answer (not reconciled yet, or lost), any: KIE may have created a task we have not heard of.
create function private.is_job_task(job_id uuid, attempt integer, task_id text)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select exists (select 1 from private.job_pipeline p
                  where p.job_id = is_job_task.job_id and p.task_id = is_job_task.task_id)
      or exists (select 1 from private.requests r
                  where r.job_id = is_job_task.job_id and r.kind = 'create'
                    and (r.task_id = is_job_task.task_id
                         or (r.attempt = is_job_task.attempt and r.task_id is null
                             and (r.resolved_at is null or r.maybe_accepted))))
$$;
comment on function private.is_job_task(uuid, integer, text) is
  'API: Private. Whether task_id may complete the job: the pipeline''s task, a task a createTask of the job returned, or any while a createTask of that attempt has no known answer.';

drop function private.callback_target(uuid, integer);
create function private.callback_target(job_id uuid, attempt integer, task_id text)
returns table (user_id uuid, token_hash text, accepting boolean, task_known boolean, max_results integer,
               result_hosts text[])
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select j.user_id, encode(r.callback_token_hash, 'hex'), p.stage not in ('completed', 'failed'),
         private.is_job_task(callback_target.job_id, callback_target.attempt, callback_target.task_id),
         j.image_count,
         array(select lower(e) from jsonb_array_elements_text(coalesce(private.setting('results.allowed_hosts'), '[]')) e)
    from private.requests r
    join private.job_pipeline p on p.job_id = r.job_id
    join public.generation_jobs j on j.id = r.job_id
   where r.job_id = callback_target.job_id and r.attempt = callback_target.attempt
     and r.kind = 'create' and r.callback_token_hash is not null
   order by r.id desc
   limit 1
$$;
comment on function private.callback_target(uuid, integer, text) is
  'API: Private. Callback function: the job''s owner, the hex sha-256 of the callback token issued for that attempt, whether the job still accepts results, whether task_id may complete it (private.is_job_task), how many images it may have (image_count), and results.allowed_hosts (to check redirects). No row for an unknown job or an attempt never sent.';

create or replace function private.callback_complete(job_id uuid, attempt integer, task_id text, object_paths text[],
                                                     at timestamptz default now())
returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  before_stage text;
  wanted integer;
begin
  -- Held until commit, so the stage read here is the one complete_job sees.
  select p.stage into before_stage from private.job_pipeline p where p.job_id = callback_complete.job_id for update;
  if found and not private.is_job_task(job_id, attempt, task_id) then
    perform private.record_late_result(job_id, attempt, task_id, 'complete', 'unknown_task',
      jsonb_build_object('object_paths', to_jsonb(object_paths), 'stage', before_stage), at);
    return 'unknown_task';
  end if;
  select j.image_count into wanted from public.generation_jobs j where j.id = callback_complete.job_id;
  if cardinality(object_paths) > wanted then
    perform private.raise_error('KL041', 'invalid result',
      format('%s images for a job of %s', cardinality(object_paths), wanted), null);
  end if;
  perform private.complete_job(job_id, attempt, task_id, object_paths, at);
  return case when before_stage in ('completed', 'failed') then 'duplicate' else 'applied' end;
end
$$;
comment on function private.callback_complete(uuid, integer, text, text[], timestamptz) is
  'API: Private. Callback function: private.complete_job, answering applied (the job completed now), duplicate (it had already finished; recorded in late_results) or unknown_task (the task is not this job''s, private.is_job_task; recorded in late_results, nothing changed). More images than image_count: KL041. KL040/KL041/KL042 like complete_job.';

-- Reading generated images: only what a completed, non-deleted job of mine lists.
drop policy "Users can read their own images and uploads" on storage.objects;

create policy "Users can read their own uploads" on storage.objects
  for select to authenticated
  using (
    bucket_id = 'user-uploads'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

create policy "Users can read the images of their completed jobs" on storage.objects
  for select to authenticated
  using (
    bucket_id = 'generated-images'
    and (storage.foldername(name))[1] = (select auth.uid())::text
    and exists (
      select 1 from public.generation_jobs j
       where j.user_id = (select auth.uid())
         and j.id::text = (storage.foldername(objects.name))[2]
         and j.status = 'completed' and j.deleted_at is null
         and j.result_urls @> array['generated-images/' || objects.name])
  );

select private.pin_search_paths();
