-- Why: housekeeping frees held rate tokens beyond what stands for them (unanswered requests,
-- KIE requests still in pg_net's queue): it counts the excess of a bucket, then frees that many
-- held tokens, skipping those another transaction has locked. Two runs at once (an operator's
-- select private.housekeeping_tick() beside pg_cron's, or a kiln-housekeeping job scheduled by a
-- second role) both counted the same excess before either committed; the second skipped the
-- tokens the first had just freed and freed as many others, tokens that stood for live requests.
-- Measured: 4 poll tokens held for 2 unanswered polls, two overlapping runs freed 2 each, leaving
-- none held for the 2 polls still on their way to KIE, so the next window could send 2 more
-- recordInfo requests than the budget allows (429s from KIE).
--
-- (Two housekeeping runs whose deletes meet the same old rows already wait for each other there;
-- runs with nothing old in common to delete, the usual case right after a run, did not.)
--
-- The release now takes a transaction-level advisory lock first: a second run waits for the
-- first to commit (a release takes milliseconds) and then counts what the first left.

create or replace function private.release_orphaned_tokens(at timestamptz default now())
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
  -- One release at a time: a second one waits here, holding nothing of this function's, and
  -- then counts what the first left (each statement reads what has committed before it).
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('kiln orphaned tokens'));
  foreach bucket_name in array array['create', 'poll'] loop
    select (select count(*) from private.rate_slots s where s.bucket = bucket_name and s.available_at = 'infinity')
         - (select count(*) from private.requests q where q.kind = bucket_name and q.resolved_at is null)
         - (select count(*) from net.http_request_queue nq
             where private.kie_request_kind(nq.url) = bucket_name
               and not exists (select 1 from private.requests q
                                where q.net_request_id = nq.id and q.kind = bucket_name and q.resolved_at is null))
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
  'API: Private. Frees held rate tokens beyond what stands for them in their bucket: unanswered requests, and KIE requests still in pg_net''s queue whose request row is gone (pg_net may still send them). One release at a time (a transaction-level advisory lock): two at once would each free the same excess. Returns how many.';
