-- Why: an unanswered createTask or recordInfo keeps its rate token held ('infinity') until it is
-- resolved. Deleting an account deletes its request rows (cascade) without resolving them: the
-- createTasks the deletion took back out of pg_net's queue, and those in flight. Their tokens
-- stayed held until housekeeping found more held tokens than unanswered requests, up to ten
-- minutes later. An account with a burst of queued jobs thus took that much of KIE's budget from
-- everyone for those minutes.
--
-- Deleting an unanswered request now gives back one held token of its bucket, as resolving it
-- does: free one window from the delete (a request in flight reached KIE before that).
-- Housekeeping still frees any token no request stands for.

create function private.release_slot_of_deleted_request()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  -- The trigger's arguments: the rate bucket and the setting that holds its window in seconds.
  slot_bucket text := tg_argv[0];
  window_length interval := make_interval(secs => private.setting_number(tg_argv[1])::double precision);
begin
  update private.rate_slots s
     set available_at = now() + window_length
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
  'API: Private. Trigger (arguments: bucket, window setting key): a request deleted before its answer gives back one held token of its bucket, free one window after the delete.';

create trigger requests_release_create_slot_when_deleted
  after delete on private.requests
  for each row
  when (old.kind = 'create' and old.resolved_at is null)
  execute function private.release_slot_of_deleted_request('create', 'dispatch.create_window_seconds');
comment on trigger requests_release_create_slot_when_deleted on private.requests is
  'An unanswered createTask deleted with its account gives its token back at once, not at the next housekeeping.';

create trigger requests_release_poll_slot_when_deleted
  after delete on private.requests
  for each row
  when (old.kind = 'poll' and old.resolved_at is null)
  execute function private.release_slot_of_deleted_request('poll', 'poll.window_seconds');
comment on trigger requests_release_poll_slot_when_deleted on private.requests is
  'An unanswered recordInfo deleted with its account gives its token back at once, not at the next housekeeping.';
