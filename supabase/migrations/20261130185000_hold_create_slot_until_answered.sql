-- Why: a createTask token was held for one window from the moment it was taken, but the request
-- reaches KIE later (after the commit, when pg_net's worker gets to it). In a burst the first
-- window's requests arrived late while the next window's went out at once, so with the budget set
-- to KIE's limit KIE refused some with 429 (npm run bench, dispatch burst: 81 of 281 requests at
-- 100 per 10 s). Now, when a createTask's outcome is reconciled, the token it used stays taken
-- until one window after that moment, which is after the request reached KIE: the budget can be
-- KIE's own limit without a 429.

create function private.hold_create_slot_until_answered()
returns trigger
language plpgsql volatile
set search_path = ''
as $$
declare
  window_length interval := make_interval(secs => private.setting_number('dispatch.create_window_seconds')::double precision);
begin
  -- Slots are not tied to requests: any slot taken at this request's sent_at stands for it (each
  -- resolution moves one of them, so one slot per request). A slot already taken again is left.
  update private.rate_slots s
     set available_at = new.resolved_at + window_length
   where s.bucket = 'create'
     and s.slot = (select x.slot from private.rate_slots x
                    where x.bucket = 'create' and x.available_at = new.sent_at + window_length
                    order by x.slot
                    limit 1
                      for update skip locked);
  return null;
end
$$;
comment on function private.hold_create_slot_until_answered() is
  'API: Private. Trigger: when a createTask request is resolved, the create token it used stays taken until one window after the resolution (the request reached KIE before it).';

create trigger requests_hold_create_slot
  after update of resolved_at on private.requests
  for each row
  when (new.kind = 'create' and old.resolved_at is null and new.resolved_at > new.sent_at)
  execute function private.hold_create_slot_until_answered();
comment on trigger requests_hold_create_slot on private.requests is
  'Keeps the createTask budget counting from when a request reached KIE, not from when it was queued.';
