-- Why: the recordInfo budget had the same gap the createTask budget had before
-- 20261130185000: a poll token counted one window from when it was taken, while pg_net sends the
-- request later (after a busy batch, about a second). A soak run under CPU load drew 20
-- recordInfo 429s in one slow stretch. The hold now covers both budgets: when a create or poll
-- request is reconciled, the token it used stays taken until one window after that moment.

create function private.hold_slot_until_answered()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  -- The trigger's arguments: the rate bucket and the setting that holds its window in seconds.
  slot_bucket text := tg_argv[0];
  window_length interval := make_interval(secs => private.setting_number(tg_argv[1])::double precision);
begin
  -- Slots are not tied to requests: any slot taken at this request's sent_at stands for it (each
  -- resolution moves one of them, so one slot per request). A slot already taken again is left.
  update private.rate_slots s
     set available_at = new.resolved_at + window_length
   where s.bucket = slot_bucket
     and s.slot = (select x.slot from private.rate_slots x
                    where x.bucket = slot_bucket and x.available_at = new.sent_at + window_length
                    order by x.slot
                    limit 1
                      for update skip locked);
  return null;
end
$$;
comment on function private.hold_slot_until_answered() is
  'API: Private. Trigger (arguments: bucket, window setting key): when a request is resolved, the token it used stays taken until one window after the resolution (the request reached KIE before it).';

drop trigger requests_hold_create_slot on private.requests;
drop function private.hold_create_slot_until_answered();

create trigger requests_hold_create_slot
  after update of resolved_at on private.requests
  for each row
  when (new.kind = 'create' and old.resolved_at is null and new.resolved_at > new.sent_at)
  execute function private.hold_slot_until_answered('create', 'dispatch.create_window_seconds');
comment on trigger requests_hold_create_slot on private.requests is
  'Keeps the createTask budget counting from when a request reached KIE, not from when it was queued.';

create trigger requests_hold_poll_slot
  after update of resolved_at on private.requests
  for each row
  when (new.kind = 'poll' and old.resolved_at is null and new.resolved_at > new.sent_at)
  execute function private.hold_slot_until_answered('poll', 'poll.window_seconds');
comment on trigger requests_hold_poll_slot on private.requests is
  'Keeps the recordInfo budget counting from when a request reached KIE, not from when it was queued.';

select private.pin_search_paths();
