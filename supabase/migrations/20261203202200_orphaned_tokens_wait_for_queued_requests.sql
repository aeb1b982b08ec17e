-- Why: housekeeping frees held rate tokens beyond the unanswered requests of their bucket. A
-- request whose row was deleted while it still waited in pg_net's queue (an account deleted while
-- pg_net's worker was taking that row, so the deletion's take-back passed over it) counted for
-- nothing: its token was freed at the next housekeeping run, and pg_net could still send the
-- request afterwards, in the same KIE window as a new one sent with the freed token (a 429).
--
-- A KIE request waiting in pg_net's queue with no unanswered request of ours behind it now counts
-- as one more request standing for a held token of its bucket: its token is freed by the first
-- run after it has left the queue. Its bucket is read from its URL (private.kie_request_kind).

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
  'API: Private. Frees held rate tokens beyond what stands for them in their bucket: unanswered requests, and KIE requests still in pg_net''s queue whose request row is gone (pg_net may still send them). Returns how many.';
