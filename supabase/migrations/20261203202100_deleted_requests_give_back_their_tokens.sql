-- Why: an unanswered createTask or recordInfo keeps its rate token held ('infinity') until it is
-- resolved. Deleting an account deletes its request rows (cascade) without resolving them: the
-- createTasks the deletion took back out of pg_net's queue, and those in flight. Their tokens
-- stayed held until housekeeping found more held tokens than unanswered requests, up to ten
-- minutes later. An account with a burst of queued jobs thus took that much of KIE's budget from
-- everyone for those minutes.
--
-- Deleting an unanswered request now gives back one held token of its bucket once the request
-- can no longer reach KIE, the rule every token follows (reconcile never declares a request lost
-- while it is still in pg_net's queue):
--   * no longer in pg_net's queue: taken back by the deletion (never sent), or taken by pg_net's
--     worker, which gets it to KIE within its timeout if at all. The token is free one timeout
--     plus one window after the delete, by the clock (the deleting transaction may have waited
--     for locks since it began), so no request sent with it shares a window with this one.
--   * still in the queue (a recordInfo, which the deletion leaves there; a createTask the worker
--     is sending; any of them when the deletion could not take them back): pg_net may send it at
--     any later time, so the token stays held, and housekeeping frees it as one no request stands
--     for, as before.
-- Nothing waits: pg_net's queue is only read, and the token is taken with skip locked.
--
-- The trigger function is security definer: the cascade that deletes the request rows runs as the
-- role that deleted the account, and Supabase Auth deletes users as supabase_auth_admin, which
-- has no rights on private or net. As the deleting role, every account deletion of a user with an
-- unanswered request would fail ("permission denied for schema private").

create function private.release_slot_of_deleted_request()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  -- The trigger's arguments: the rate bucket and the setting that holds its window in seconds.
  slot_bucket text := tg_argv[0];
  window_length interval := make_interval(secs => private.setting_number(tg_argv[1])::double precision);
  still_queued boolean;
  problem text;
begin
  -- The queue row must be this request's: the newest of ours with its id (pg_net reuses ids
  -- after a crash). A worker that keeps its claim open while it sends leaves the row visible.
  begin
    still_queued := exists (select 1 from net.http_request_queue nq where nq.id = old.net_request_id)
                    and not exists (select 1 from private.requests newer
                                     where newer.net_request_id = old.net_request_id and newer.queued_at > old.queued_at);
  exception when others then
    get stacked diagnostics problem = message_text;
    raise warning 'request %: pg_net''s queue could not be read, so its token stays held until housekeeping: %', old.id, problem;
    still_queued := true;
  end;
  if still_queued then
    return null;
  end if;
  update private.rate_slots s
     set available_at = clock_timestamp() + make_interval(secs => old.timeout_ms / 1000.0) + window_length
   where s.bucket = slot_bucket
     and s.slot = (select x.slot from private.rate_slots x
                    where x.bucket = slot_bucket and x.available_at = 'infinity'
                    order by x.slot
                    limit 1
                      for update skip locked);
  return null;
end
$$;
comment on function private.release_slot_of_deleted_request() is
  'API: Private. Trigger (arguments: bucket, window setting key): a request deleted before its answer gives back one held token of its bucket once it can no longer reach KIE: free one request timeout plus one window after the delete when it is no longer in pg_net''s queue; left held (for housekeeping) while it is still queued. Security definer: the account deletion''s cascade runs as the deleting role (supabase_auth_admin for Supabase Auth), which has no rights on private or net.';
revoke all on function private.release_slot_of_deleted_request() from public;

create trigger requests_release_create_slot_when_deleted
  after delete on private.requests
  for each row
  when (old.kind = 'create' and old.resolved_at is null)
  execute function private.release_slot_of_deleted_request('create', 'dispatch.create_window_seconds');
comment on trigger requests_release_create_slot_when_deleted on private.requests is
  'An unanswered createTask deleted with its account gives its token back once it cannot reach KIE (out of pg_net''s queue: one timeout plus one window after the delete), not at the next housekeeping.';

create trigger requests_release_poll_slot_when_deleted
  after delete on private.requests
  for each row
  when (old.kind = 'poll' and old.resolved_at is null)
  execute function private.release_slot_of_deleted_request('poll', 'poll.window_seconds');
comment on trigger requests_release_poll_slot_when_deleted on private.requests is
  'An unanswered recordInfo deleted with its account gives its token back once it cannot reach KIE (out of pg_net''s queue: one timeout plus one window after the delete), not at the next housekeeping.';
