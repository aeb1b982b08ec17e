-- Why: a createTask or recordInfo token was free again one window after it was taken unless its
-- request had been answered by then. The real pg_net sends a queued request only at its next
-- batch (it rests a second after a busy one), so a request still waiting in pg_net's queue could
-- lose its token to the next one and both reach KIE inside one window: a soak run on the real
-- pg_net drew two recordInfo 429s. Now a token stays taken for as long as its request is
-- unanswered (until it is answered or reconcile declares it lost), and one window past that.
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
  -- Any held token stands for this request (one per unresolved request): one window past the
  -- answer, and never before one window past the take (a resolution logged at an earlier time).
  update private.rate_slots s
     set available_at = greatest(new.resolved_at, new.sent_at) + window_length
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

-- Every resolution releases a held token, whatever its logged time (it used to need
-- resolved_at > sent_at, which left a token held when a resolution carried an earlier time).
drop trigger requests_hold_create_slot on private.requests;
create trigger requests_hold_create_slot
  after update of resolved_at on private.requests
  for each row
  when (new.kind = 'create' and old.resolved_at is null and new.resolved_at is not null)
  execute function private.hold_slot_until_answered('create', 'dispatch.create_window_seconds');
comment on trigger requests_hold_create_slot on private.requests is
  'Keeps the createTask budget counting from when a request reached KIE, not from when it was queued.';
drop trigger requests_hold_poll_slot on private.requests;
create trigger requests_hold_poll_slot
  after update of resolved_at on private.requests
  for each row
  when (new.kind = 'poll' and old.resolved_at is null and new.resolved_at is not null)
  execute function private.hold_slot_until_answered('poll', 'poll.window_seconds');
comment on trigger requests_hold_poll_slot on private.requests is
  'Keeps the recordInfo budget counting from when a request reached KIE, not from when it was queued.';

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

-- Requests unanswered when this runs took their tokens under the old rule: hold as many tokens as
-- there are such requests (the latest taken), so that their answers release held tokens.
update private.rate_slots s
   set available_at = 'infinity'
  from (select r.bucket, r.slot,
               row_number() over (partition by r.bucket order by r.available_at desc, r.slot) as n
          from private.rate_slots r
         where r.available_at <> 'infinity') taken
  join (select q.kind, count(*) as unanswered
          from private.requests q
         where q.kind in ('create', 'poll') and q.resolved_at is null
         group by q.kind) u on u.kind = taken.bucket
 where s.bucket = taken.bucket and s.slot = taken.slot and taken.n <= u.unanswered;

-- Operators see held tokens beside the requests in the window: dispatch waits while they are all held.
create or replace view private.dispatch_rate with (security_invoker = true) as
  select (select count(*) from private.requests r
           where r.kind = 'create'
             and r.sent_at > now() - make_interval(secs => private.setting_number('dispatch.create_window_seconds')::double precision))::integer
           as creates_in_window,
         private.setting_number('dispatch.create_per_window')::integer as create_budget,
         private.setting_number('dispatch.create_window_seconds') as create_window_seconds,
         (select count(*) from private.requests r where r.kind = 'create' and r.sent_at > now() - interval '1 minute')::integer
           as creates_last_minute,
         (select count(*) from private.requests r
           where r.kind = 'poll'
             and r.sent_at > now() - make_interval(secs => private.setting_number('poll.window_seconds')::double precision))::integer
           as polls_in_window,
         private.setting_number('poll.per_window')::integer as poll_budget,
         private.dispatch_paused() as dispatch_paused,
         (select count(*) from private.rate_slots s where s.bucket = 'create' and s.available_at = 'infinity')::integer
           as create_tokens_held,
         (select count(*) from private.rate_slots s
           where s.bucket = 'create' and s.available_at <= now()
             and s.slot <= private.setting_number('dispatch.create_per_window'))::integer as create_tokens_free,
         (select count(*) from private.rate_slots s where s.bucket = 'poll' and s.available_at = 'infinity')::integer
           as poll_tokens_held,
         (select count(*) from private.rate_slots s
           where s.bucket = 'poll' and s.available_at <= now()
             and s.slot <= private.setting_number('poll.per_window'))::integer as poll_tokens_free;
comment on view private.dispatch_rate is
  'API: Private. Operators: createTask and recordInfo requests in the current window against their budgets, tokens held by unanswered requests and free now, and whether dispatch is paused.';

comment on table private.rate_slots is
  'API: Private. Token slots of the createTask and recordInfo budgets: a slot taken at t is held while its request is unanswered and free one window after the answer (one window after t if no request was logged with it). Only slots up to the configured capacity are used.';
comment on column private.rate_slots.available_at is
  'When the slot may be used again; infinity while the request that took it is unanswered.';

select private.pin_search_paths();
