-- Why: the deadline tick and the reconcile tick deadlocked when they refunded jobs of two users
-- in opposite orders. Each handles many jobs in one transaction, and a refund keeps the job's
-- profile locked until the tick ends. The deadline sweep refunded a job of user A, then waited for
-- user B's profile to refund another; the reconcile tick had refunded a job of user B (a rejected
-- createTask) and waited for the pipeline row of A's job the sweep held (or for A's profile).
-- Both run every minute, at the same second. Postgres aborted one with 40P01: the reconcile tick
-- recorded the answer as an error (reconcile_error alert), or the sweep left the job past its
-- deadline for another minute (deadline_error alert).
--
-- The lock order (pipeline row, job, profile) cannot hold across the jobs of one transaction, so
-- the two ticks that refund now run one at a time: each takes a transaction-level advisory lock
-- first, before any row. The other waits for it (a tick lasts milliseconds), holding nothing.
-- Single-job transactions (user calls, callbacks) lock one profile, last, and never take it.

create or replace function private.reconcile_tick(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  batch integer := private.setting_number('reconcile.batch_size');
  lost_after numeric := private.setting_number('reconcile.lost_after_seconds');
  r record;
  lost private.requests;
  handled integer := 0;
  problem text;
  stalled record;
begin
  -- One refunding tick at a time: each keeps every profile it refunded locked to its end.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('kiln refunding ticks'));
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
            or (not exists (select 1 from net._http_response h
                             where h.id = q.net_request_id and h.created >= q.queued_at - interval '1 second')
                -- Still queued is not lost: pg_net has not sent it yet.
                and not exists (select 1 from net.http_request_queue nq where nq.id = q.net_request_id)))
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
      perform private.raise_alert('reconcile_error', format('A lost request could not be handled: %s', left(problem, 300)), false,
        jsonb_build_object('request_id', lost.id, 'job_id', lost.job_id), at);
    end;
    handled := handled + 1;
  end loop;

  -- Our requests still in pg_net's queue past the time they would have been answered: its worker
  -- is not sending.
  select count(*) as waiting, min(q.sent_at) as since into stalled
    from private.requests q
   where q.resolved_at is null
     and q.sent_at + make_interval(secs => (q.timeout_ms / 1000.0 + lost_after)::double precision) < at
     and exists (select 1 from net.http_request_queue nq where nq.id = q.net_request_id);
  if stalled.waiting > 0 then
    perform private.raise_alert('pg_net_stalled',
      format('%s requests have waited in pg_net''s queue since %s: its worker is not sending. Jobs wait and time out at their deadline.',
             stalled.waiting, stalled.since), false,
      jsonb_build_object('waiting', stalled.waiting, 'since', stalled.since), at);
  else
    update private.alerts a set cleared_at = reconcile_tick.at where a.key = 'pg_net_stalled' and a.cleared_at is null;
  end if;
  return handled;
end
$$;

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
  -- One refunding tick at a time: each keeps every profile it refunded locked to its end.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('kiln refunding ticks'));
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
