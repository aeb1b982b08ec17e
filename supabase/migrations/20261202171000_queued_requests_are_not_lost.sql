-- Why: a request counted as lost when no response had come timeout + reconcile.lost_after_seconds
-- after it was queued, without looking at pg_net's queue. A request pg_net had not sent yet (its
-- worker stopped, or a backlog over about a minute) was declared lost, and a lost createTask is
-- sent again: with the worker stalled for twelve minutes one job queued four createTasks, was
-- failed and refunded at its deadline, and all four reached KIE (and were billed) when the worker
-- came back. Storage purges already counted a request lost only when neither queued nor answered.
--
-- Now a request still in net.http_request_queue is waiting, not lost (a crash empties that
-- unlogged queue, so what it held is still found lost). And nothing told the operator that pg_net
-- had stopped sending: the tick raises pg_net_stalled (details: how many of our requests wait in
-- the queue past the time they would have been answered, and since when) and clears it itself on
-- the first tick that finds none.
--
-- (pg_net's queue has no index on id; it holds what is waiting, normally a second's worth.)

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
comment on function private.reconcile_tick(timestamptz) is
  'API: Private. Tick: applies new pg_net responses to our request log and jobs, then resolves requests lost without a response (a request still in pg_net''s queue is waiting, not lost). A response or lost request that cannot be applied is marked error with the reconcile_error alert (cleared by an operator), and the rest of the batch goes on. Raises pg_net_stalled while requests wait in the queue past their answer time, and clears it. Returns how many it handled.';
comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error, deadline_error, pg_net_stalled, retention_error, storage_purge_failing). Active while cleared_at is null; clear with private.clear_alert(key).';
