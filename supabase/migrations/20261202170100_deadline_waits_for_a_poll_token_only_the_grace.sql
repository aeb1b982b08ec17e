-- Why: a job at KIE that reaches its deadline gets one final poll before it is failed, and the
-- deadline tick takes that poll's token from the same budget as the poll tick. With the budget
-- kept spent by regular polling (a backlog of generating jobs), the tick found no token and tried
-- again next time, with no end: the job stayed generating past its deadline, its credits held and
-- counted against the user's active jobs, for as long as the backlog lasted.
--
-- The final poll now waits for a token at most deadline.final_grace_seconds (the time a sent final
-- poll gets for its answer); after that the job fails timed_out with its refund, unpolled. A result
-- KIE still reports later is kept aside as a late result, as for any failed job.
--
-- A job still creating at its deadline may have its createTask waiting in pg_net's queue (the
-- worker stopped). It used to go out anyway once the worker was back, making a task (billed) for a
-- job already failed and refunded. The tick now takes such a request back out of the queue and
-- resolves it as withdrawn; one the worker is sending (its row locked by the worker's batch) is
-- left to be answered, and its result is kept as a late result, as before.
--
-- Also: one job whose timeout raised an error rolled back the whole batch, so nothing past its
-- deadline failed any more. The deadline tick is what guarantees every job ends; like the reconcile
-- tick it now handles each job on its own. A job that cannot be timed out is left as it was, with
-- the error in its last_error and its place in the sweep moved a minute on (so a few such jobs
-- cannot fill every batch), and the deadline_error alert names every such job of the run
-- (details.job_ids). A withdrawal that fails does not stop the job from ending: its createTask
-- may then still go out, and its result is kept as a late result.

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
          -- commits): skipped, it will be answered.
          with queued as (
            select nq.id, r.id as request_id
              from net.http_request_queue nq join private.requests r on nq.id = r.net_request_id
             where r.job_id = p.job_id and r.kind = 'create' and r.resolved_at is null
               and nq.url like '%/api/v1/jobs/createTask'
               and not exists (select 1 from private.requests newer
                                where newer.net_request_id = r.net_request_id and newer.queued_at > r.queued_at)
               for update of nq skip locked
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
comment on function private.deadline_tick(timestamptz) is
  'API: Private. Tick: jobs past their deadline get one final poll (tasks at KIE; a poll token is awaited at most deadline.final_grace_seconds), then fail with error_code timed_out and a refund; a createTask still in pg_net''s queue is withdrawn. A job that raises is left as it was, retried a minute later, and named in the deadline_error alert. Returns how many failed.';
comment on column private.requests.outcome is
  'Classification (private.kie_outcomes.outcome), lost, withdrawn (taken back out of pg_net''s queue unsent at the job''s deadline), or error.';
