-- Why: the reconcile tick deadlocked with a provider's failure callback (and could with any
-- transaction that takes a job's pipeline row, then the profile). The tick claims a batch of
-- requests and applies them one by one in one transaction; applying one that fails a job refunds
-- it, which keeps the user's profile locked to the tick's end. Applying a later answer for
-- another job of the same user then waited for that job's pipeline row, held by callback_fail,
-- which waited for the profile: 40P01 for one of them.
--
-- The tick now claims its answered and lost requests first, as before (skip locked), then locks
-- all their jobs' pipeline rows, in job id order, and only then applies them. It waits for a
-- pipeline row while holding no job or profile, as every other transaction. The answers are
-- applied as before; a request both answered and lost is applied as answered.

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
  answered bigint[];
  lost_ids bigint[];
  handled integer := 0;
  problem text;
  stalled record;
begin
  -- One refunding tick at a time: each keeps every profile it refunded locked to its end.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('kiln refunding ticks'));
  -- A response belongs to the newest request of ours with its id that was queued before it was
  -- stored (pg_net ids restart at 1 after a crash); one second of slack covers a worker
  -- transaction that began just before the request committed.
  answered := array(
    with pending as (
      select q.id, q.net_request_id, q.queued_at from private.requests q where q.resolved_at is null
    ), matched as (
      select distinct on (p.id) p.id
        from pending p
        join net._http_response h on h.id = p.net_request_id and h.created >= p.queued_at - interval '1 second'
       where h.created >= (select min(x.queued_at) from pending x) - interval '1 second'
         and not exists (select 1 from private.requests newer
                          where newer.net_request_id = p.net_request_id and newer.queued_at > p.queued_at
                            and newer.queued_at <= h.created + interval '1 second')
       order by p.id, h.created
    )
    select q.id from matched m join private.requests q on q.id = m.id
     where q.resolved_at is null
     order by q.id
     limit batch
     for update of q skip locked);
  lost_ids := array(
    select q.id from private.requests q
     where q.resolved_at is null and not (q.id = any (answered))
       and q.sent_at + make_interval(secs => (q.timeout_ms / 1000.0 + lost_after)::double precision) < at
       and (exists (select 1 from private.requests newer
                     where newer.net_request_id = q.net_request_id and newer.queued_at > q.queued_at)
            or (not exists (select 1 from net._http_response h
                             where h.id = q.net_request_id and h.created >= q.queued_at - interval '1 second')
                -- Still queued is not lost: pg_net has not sent it yet.
                and not exists (select 1 from net.http_request_queue nq where nq.id = q.net_request_id)))
     order by q.id
     limit batch
     for update of q skip locked);
  -- The claimed requests' pipeline rows, before any job moves: a refund keeps the profile locked
  -- to the tick's end, and waiting for another job's pipeline row after it deadlocked with a
  -- callback or user call holding that row and waiting for the profile. Job id order, as the
  -- account deletion and set_plan.
  perform from private.job_pipeline p
   where p.job_id in (select q.job_id from private.requests q where q.id = any (answered || lost_ids))
   order by p.job_id
     for update of p;

  for r in
    with pending as (
      select q.id, q.net_request_id, q.queued_at from private.requests q where q.id = any (answered)
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
     order by q.id
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
    select q.* from private.requests q where q.id = any (lost_ids) and q.resolved_at is null order by q.id
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
