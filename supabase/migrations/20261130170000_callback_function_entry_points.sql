-- Why: the kie-callback Edge Function must check a callback's token in constant time (in
-- TypeScript, against the stored hash) and must answer a repeated delivery "duplicate" without
-- redoing its downloads. complete_job and fail_job_from_provider return the job row, which
-- cannot tell a call that changed the job from one that changed nothing. These three small
-- functions give the function what it needs; every rule stays in the functions they call.
-- Owner only, like every private function: no API role may execute them.

create function private.callback_target(job_id uuid, attempt integer)
returns table (user_id uuid, token_hash text, accepting boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select j.user_id, encode(r.callback_token_hash, 'hex'), p.stage not in ('completed', 'failed')
    from private.requests r
    join private.job_pipeline p on p.job_id = r.job_id
    join public.generation_jobs j on j.id = r.job_id
   where r.job_id = callback_target.job_id and r.attempt = callback_target.attempt
     and r.kind = 'create' and r.callback_token_hash is not null
   order by r.id desc
   limit 1
$$;
comment on function private.callback_target(uuid, integer) is
  'API: Private. Callback function: the job''s owner, the hex sha-256 of the callback token issued for that attempt, and whether the job still accepts results (not completed or failed). No row for an unknown job or an attempt never sent.';

create function private.callback_complete(job_id uuid, attempt integer, task_id text, object_paths text[],
                                          at timestamptz default now())
returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  before_stage text;
begin
  -- Held until commit, so the stage read here is the one complete_job sees.
  select p.stage into before_stage from private.job_pipeline p where p.job_id = callback_complete.job_id for update;
  perform private.complete_job(job_id, attempt, task_id, object_paths, at);
  return case when before_stage in ('completed', 'failed') then 'duplicate' else 'applied' end;
end
$$;
comment on function private.callback_complete(uuid, integer, text, text[], timestamptz) is
  'API: Private. Callback function: private.complete_job, answering applied (the job completed now) or duplicate (it had already finished; recorded in late_results). KL040/KL041/KL042 like complete_job.';

create function private.callback_fail(job_id uuid, attempt integer, task_id text, fail_code text, fail_message text,
                                      at timestamptz default now())
returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  prior private.job_pipeline;
  latest private.job_pipeline;
begin
  select * into prior from private.job_pipeline p where p.job_id = callback_fail.job_id for update;
  perform private.fail_job_from_provider(job_id, attempt, task_id, fail_code, fail_message, at);
  select * into latest from private.job_pipeline p where p.job_id = callback_fail.job_id;
  -- A failure that counts either ends the job or schedules a retry; an ignored one changes neither.
  return case when (latest.stage, latest.retries) is distinct from (prior.stage, prior.retries) then 'applied' else 'duplicate' end;
end
$$;
comment on function private.callback_fail(uuid, integer, text, text, text, timestamptz) is
  'API: Private. Callback function: private.fail_job_from_provider, answering applied (the job failed with its refund, or a retry was scheduled) or duplicate (a late, repeated or other task''s report, recorded in late_results). KL040/KL041/KL042 like fail_job_from_provider.';
