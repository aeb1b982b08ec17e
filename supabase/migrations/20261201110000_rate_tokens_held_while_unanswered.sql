-- Why: a createTask or recordInfo token was free again one window after it was taken unless its
-- request had been answered by then. The real pg_net sends a queued request only at its next
-- batch (it rests a second after a busy one), so a request still waiting in pg_net's queue could
-- lose its token to the next one and both reach KIE inside one window: a soak run on the real
-- pg_net drew two recordInfo 429s. Now a token stays taken for as long as its request is
-- unanswered, and one window past the answer, however long pg_net takes to send it.
--
-- How: a token is still taken by take_tokens (free again one window later, so a token taken for a
-- request that is never queued comes back by itself). When the request is logged in
-- private.requests, its token is marked held ('infinity'); when the request is resolved, one held
-- token of its bucket gets one window past the resolution. Slots are not tied to requests, so
-- counts are what matters: held tokens = unresolved requests. Housekeeping frees held tokens
-- beyond that count (a request row deleted before its answer), so none is lost for good.

create function private.hold_slot_while_unanswered()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  -- The trigger's arguments: the rate bucket and the setting that holds its window in seconds.
  slot_bucket text := tg_argv[0];
  window_length interval := make_interval(secs => private.setting_number(tg_argv[1])::double precision);
begin
  -- The token this request took in this transaction, at its sent_at (take_tokens' `at`).
  update private.rate_slots s
     set available_at = 'infinity'
   where s.bucket = slot_bucket
     and s.slot = (select x.slot from private.rate_slots x
                    where x.bucket = slot_bucket and x.available_at = new.sent_at + window_length
                    order by x.slot
                    limit 1
                      for update skip locked);
  return null;
end
$$;
comment on function private.hold_slot_while_unanswered() is
  'API: Private. Trigger (arguments: bucket, window setting key): a logged request keeps the token it took until it is resolved.';

create or replace function private.hold_slot_until_answered()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  slot_bucket text := tg_argv[0];
  window_length interval := make_interval(secs => private.setting_number(tg_argv[1])::double precision);
begin
  -- Any held token stands for this request (one per unresolved request): one window past the answer.
  update private.rate_slots s
     set available_at = new.resolved_at + window_length
   where s.bucket = slot_bucket
     and s.slot = (select x.slot from private.rate_slots x
                    where x.bucket = slot_bucket and x.available_at = 'infinity'
                    order by x.slot
                    limit 1
                      for update skip locked);
  return null;
end
$$;
comment on function private.hold_slot_until_answered() is
  'API: Private. Trigger (arguments: bucket, window setting key): when a request is resolved, one held token of its bucket is free one window after the resolution (the request reached KIE before it).';

create trigger requests_hold_create_slot_while_unanswered
  after insert on private.requests
  for each row
  when (new.kind = 'create' and new.resolved_at is null)
  execute function private.hold_slot_while_unanswered('create', 'dispatch.create_window_seconds');
comment on trigger requests_hold_create_slot_while_unanswered on private.requests is
  'A createTask token stays taken while its request waits in pg_net''s queue or at KIE.';

create trigger requests_hold_poll_slot_while_unanswered
  after insert on private.requests
  for each row
  when (new.kind = 'poll' and new.resolved_at is null)
  execute function private.hold_slot_while_unanswered('poll', 'poll.window_seconds');
comment on trigger requests_hold_poll_slot_while_unanswered on private.requests is
  'A recordInfo token stays taken while its request waits in pg_net''s queue or at KIE.';

-- Held tokens beyond the unresolved requests of their bucket: free them (one window from `at`).
create function private.release_orphaned_tokens(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  bucket_name text;
  excess integer;
  released integer := 0;
  moved integer;
begin
  foreach bucket_name in array array['create', 'poll'] loop
    select (select count(*) from private.rate_slots s where s.bucket = bucket_name and s.available_at = 'infinity')
         - (select count(*) from private.requests q where q.kind = bucket_name and q.resolved_at is null)
      into excess;
    continue when excess <= 0;
    -- Skip locked: a token being held or released right now belongs to a live request.
    update private.rate_slots s
       set available_at = release_orphaned_tokens.at + make_interval(secs => private.setting_number(
             case bucket_name when 'create' then 'dispatch.create_window_seconds' else 'poll.window_seconds' end)::double precision)
     where s.bucket = bucket_name
       and s.slot in (select x.slot from private.rate_slots x
                       where x.bucket = bucket_name and x.available_at = 'infinity'
                       order by x.slot desc
                       limit excess
                         for update skip locked);
    get diagnostics moved = row_count;
    released := released + moved;
  end loop;
  return released;
end
$$;
comment on function private.release_orphaned_tokens(timestamptz) is
  'API: Private. Frees held rate tokens beyond the unresolved requests of their bucket (a request row deleted before its answer). Returns how many.';

create or replace function private.housekeeping_tick(at timestamptz default now())
returns jsonb
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  responses integer;
  cron_runs integer;
  log_rows integer;
  late_rows integer;
begin
  delete from net._http_response h
   where h.created < at - make_interval(secs => private.setting_number('housekeeping.net_response_retention_seconds')::double precision);
  get diagnostics responses = row_count;
  delete from cron.job_run_details d
   where d.end_time < at - make_interval(secs => private.setting_number('housekeeping.cron_history_retention_seconds')::double precision);
  get diagnostics cron_runs = row_count;
  delete from private.requests q
   where q.resolved_at < at - make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision);
  get diagnostics log_rows = row_count;
  delete from private.late_results l
   where l.received_at < at - make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision);
  get diagnostics late_rows = row_count;
  return jsonb_build_object('net_responses', responses, 'cron_runs', cron_runs, 'requests', log_rows, 'late_results', late_rows,
                            'orphaned_tokens', private.release_orphaned_tokens(at));
end
$$;
comment on function private.housekeeping_tick(timestamptz) is
  'API: Private. Tick: deletes net._http_response, cron.job_run_details, resolved private.requests and late results past their retention settings, and frees orphaned rate tokens.';

comment on table private.rate_slots is
  'API: Private. Token slots of the createTask and recordInfo budgets: a slot taken at t is held while its request is unanswered and free one window after the answer (one window after t if no request was logged with it). Only slots up to the configured capacity are used.';
comment on column private.rate_slots.available_at is
  'When the slot may be used again; infinity while the request that took it is unanswered.';

select private.pin_search_paths();
