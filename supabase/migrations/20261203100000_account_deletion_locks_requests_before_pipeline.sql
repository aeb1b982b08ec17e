-- Why: deleting an account deadlocked with the reconcile tick applying an answer for one of its
-- jobs. The tick claims the request row (for update skip locked), then apply_response updates the
-- job's pipeline row; the deletion locked the pipeline rows first (on_auth_user_deleted) and its
-- cascade then deletes the request rows. With the deletion holding the pipeline row and the tick
-- holding the request, Postgres aborted one side with 40P01: the tick recorded the answer as an
-- error (reconcile_error alert), or the auth service's delete failed.
--
-- The deletion now locks the account's unanswered request rows (the only ones the tick claims)
-- before the pipeline rows, in id order: request row, pipeline row, job, profile, as the tick. The
-- tick passes over a request the deletion holds (skip locked), or the deletion waits for the tick.
--
-- The deadline tick took the other order for one row: holding a job's pipeline row, it withdraws
-- the job's createTask from pg_net's queue and resolves its request. It now skips the request if
-- another transaction holds it (as it skips a queue row the pg_net worker holds); the createTask
-- may then still go out, and its result is kept as a late result.

create or replace function private.lock_pipeline_of_deleted_user()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform from private.requests r
   where r.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
     and r.resolved_at is null
   order by r.id
     for update of r;
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
   order by p.job_id
     for update of p;
  return old;
end
$$;
comment on function private.lock_pipeline_of_deleted_user() is
  'API: Private. Trigger before a delete on auth.users: locks the user''s unanswered request rows, then pipeline rows, in the ticks'' lock order (request row, pipeline row, job, profile), so the cascade cannot deadlock with a tick.';

create or replace function private.deadline_tick(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  p private.job_pipeline;
  grace numeric := private.setting_number('deadline.final_grace_seconds');
  failed integer := 0;
  reason text;
  problem text;
  stuck uuid[] := '{}';
begin
  for p in
    select * from private.job_pipeline jp
     where jp.stage in ('waiting', 'creating', 'generating', 'finalizing') and jp.deadline_at <= at
     order by jp.deadline_at
     limit private.setting_number('dispatch.batch_size')
     for update skip locked
  loop
    begin
      reason := 'deadline passed';
      if p.stage in ('generating', 'finalizing') and p.final_poll_at is null and private.secret('kie_api_key') is not null then
        if private.take_tokens('poll', 1, at) = 1 then
          perform private.send_poll(p.job_id, at, true);
          continue;
        end if;
        -- No token: the next tick tries again, within the grace only.
        if at < p.deadline_at + make_interval(secs => grace::double precision) then
          continue;
        end if;
        reason := 'deadline passed; no poll token for the final poll within the grace';
      end if;
      if p.final_poll_at is not null and at < p.final_poll_at + make_interval(secs => grace::double precision) then
        continue;
      end if;
      if p.stage = 'creating' then
        begin
          -- Ours only: the queue row carries the request's id, which pg_net reuses after a crash,
          -- so the newest of our requests with that id must be this one and the row a createTask.
          -- A row the worker has locked is being sent (it deletes what it takes when its batch
          -- commits): skipped, it will be answered. A request another transaction holds (an
          -- account deletion takes it before this pipeline row) is skipped too: no wait for it.
          with queued as (
            select nq.id, r.id as request_id
              from net.http_request_queue nq join private.requests r on nq.id = r.net_request_id
             where r.job_id = p.job_id and r.kind = 'create' and r.resolved_at is null
               and nq.url like '%/api/v1/jobs/createTask'
               and not exists (select 1 from private.requests newer
                                where newer.net_request_id = r.net_request_id and newer.queued_at > r.queued_at)
               for update of nq, r skip locked
          ), withdrawn as (
            delete from net.http_request_queue nq using queued where nq.id = queued.id returning queued.request_id
          )
          update private.requests r set resolved_at = at, outcome = 'withdrawn',
                 error = 'still in pg_net''s queue when the job reached its deadline; taken back unsent'
            from withdrawn w where r.id = w.request_id;
        exception when others then
          get stacked diagnostics problem = message_text;
          reason := reason || '; its queued createTask could not be withdrawn: ' || left(problem, 200);
        end;
      end if;
      if private.fail_job(p.job_id, array[p.stage], p.attempt, 'timed_out',
                          'The image took too long to generate. Your credits were refunded.', reason, at) then
        failed := failed + 1;
      end if;
    exception when others then
      get stacked diagnostics problem = message_text;
      update private.job_pipeline jp
         set deadline_at = at + interval '1 minute', last_error = private.log_excerpt('deadline tick: ' || problem, 500)
       where jp.job_id = p.job_id;
      stuck := stuck || p.job_id;
    end;
  end loop;
  if cardinality(stuck) > 0 then
    perform private.raise_alert('deadline_error',
      format('%s job(s) past their deadline could not be timed out; the last error: %s', cardinality(stuck), left(problem, 300)),
      false, jsonb_build_object('job_ids', to_jsonb(stuck)), at);
  end if;
  return failed;
end
$$;
