-- Why: deleting an account could deadlock with the reconcile tick over a request sent while the
-- deletion's trigger was locking. private.lock_rows_of_account locks the account's unanswered
-- request rows, then its pipeline rows. The dispatch tick, holding a job's pipeline row, could
-- insert and commit that job's createTask between the two statements: the trigger then held the
-- pipeline row but not the new request. The reconcile tick claimed the request (skip locked
-- passes it, nobody held it) and waited for the pipeline row; the cascade, deleting the request,
-- waited for the tick: 40P01 for one of them.
--
-- Each round of the trigger now takes every lock inside its subtransaction, and ends the round
-- only when the account has no job whose pipeline row it failed to lock and no unanswered
-- request it failed to lock. Otherwise it rolls the subtransaction back, which releases the
-- round's row locks and the profile's key share (a tick waiting for the pipeline row goes on and
-- resolves or keeps its request), and goes round. Another round is needed only when a start or a
-- tick of the account committed during the round before.
--
-- Also: the deletion took the account's unsent createTasks back out of pg_net's queue, and left
-- its unsent recordInfo polls there. They carry no user content, but each would still spend a
-- token of KIE's recordInfo budget on a job that no longer exists, and its token stayed held until
-- housekeeping. The deletion now takes those back too, under the same rules.

-- The KIE operation a queued pg_net request performs, read from its URL: 'create' (createTask),
-- 'poll' (recordInfo, its task id in the query string) or null (not a KIE job request).
create function private.kie_request_kind(url text)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case
           when url like '%/api/v1/jobs/createTask' then 'create'
           when url like '%/api/v1/jobs/recordInfo' or url like '%/api/v1/jobs/recordInfo?%' then 'poll'
         end
$$;
comment on function private.kie_request_kind(text) is
  'API: Private. The kind of our request (private.requests.kind) a queued pg_net URL performs at KIE: create (createTask), poll (recordInfo), or null for any other URL.';

drop function private.lock_rows_of_account(uuid);

-- The account's unanswered requests, then its pipeline rows (the ticks' order), each in id order;
-- returns what the caller now holds.
create function private.lock_rows_of_account(account uuid, out jobs uuid[], out requests bigint[])
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  select coalesce(array_agg(locked.id), '{}') into requests
    from (select r.id from private.requests r
           where r.job_id in (select j.id from public.generation_jobs j where j.user_id = account)
             and r.resolved_at is null
           order by r.id
             for update of r) locked;
  select coalesce(array_agg(locked.job_id), '{}') into jobs
    from (select p.job_id from private.job_pipeline p
           where p.job_id in (select j.id from public.generation_jobs j where j.user_id = account)
           order by p.job_id
             for update of p) locked;
end
$$;
comment on function private.lock_rows_of_account(uuid) is
  'API: Private. Locks the account''s unanswered request rows, then its pipeline rows, each in id order (the ticks'' lock order); returns the jobs whose pipeline rows and the requests whose rows are now held. Used by the trigger before an account is deleted.';

create or replace function private.lock_pipeline_of_deleted_user()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  held record;
  problem text;
begin
  loop
    begin
      held := private.lock_rows_of_account(old.id);
      -- A start (or retry, or grant) in flight holds the profile for update: wait for it to
      -- commit. Key share does not wait for a refund.
      perform from public.profiles pr where pr.id = old.id for key share;
      exit when not exists (select from private.job_pipeline p
                             where p.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
                               and p.job_id <> all (held.jobs))
            and not exists (select from private.requests r
                             where r.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
                               and r.resolved_at is null
                               and r.id <> all (held.requests));
      -- A job or a request committed that this round did not lock: give back every lock of the
      -- round, so a start or a tick waiting for one can go on, and go round.
      raise exception using errcode = 'P0001';
    exception when raise_exception then
      null;
    end;
  end loop;
  -- The account's createTasks and polls pg_net has not taken yet: never sent, and now never will be.
  begin
    with queued as (
      select nq.id
        from net.http_request_queue nq join private.requests r on nq.id = r.net_request_id
       where r.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
         and r.resolved_at is null
         and r.kind in ('create', 'poll') and private.kie_request_kind(nq.url) = r.kind
         and not exists (select 1 from private.requests newer
                          where newer.net_request_id = r.net_request_id and newer.queued_at > r.queued_at)
         for update of nq skip locked
    )
    delete from net.http_request_queue nq using queued where nq.id = queued.id;
  exception when others then
    get stacked diagnostics problem = message_text;
    raise warning 'account %: its queued createTasks and polls could not be taken back: %', old.id, problem;
  end;
  return old;
end
$$;
comment on function private.lock_pipeline_of_deleted_user() is
  'API: Private. Trigger before a delete on auth.users: locks the user''s unanswered request rows, then pipeline rows, in the ticks'' lock order (request row, pipeline row, job, profile), then waits for a start in flight (the profile, for key share); a round that missed a job or request committed meanwhile gives every lock back and goes round, so the cascade cannot deadlock with a tick, a callback, a cancel or a retry; then takes the user''s createTasks and recordInfo polls pg_net has not taken out of its queue.';
