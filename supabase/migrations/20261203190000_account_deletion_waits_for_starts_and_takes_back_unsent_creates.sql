-- Why: deleting an account could still deadlock with a retry of one of its jobs (the gap left by
-- 20261203150000). The trigger before the delete on auth.users locked the rows it could see, then
-- held the profile for key share to wait for a start in flight, then locked the rows again. A job
-- committed between the first pass and the key share (a start the first pass could not see yet),
-- failed or cancelled, and retried: the retry holds that job's pipeline row and waits for the
-- profile (for update, which key share excludes), while the trigger, holding key share, waits for
-- that pipeline row. Postgres aborted one side with 40P01.
--
-- The trigger now waits for a start in flight without keeping the profile: it takes key share in
-- a subtransaction and, if the account has a job whose rows it has not locked yet, rolls the
-- subtransaction back (which releases the key share and nothing else), locks the rows again and
-- waits again. It keeps the key share only once every job of the account is locked. A retry that
-- holds a new job's pipeline row then gets the profile, makes its job and commits; the next round
-- takes both. Holding the key share with every job's rows locked, nothing can start, and the
-- cascade finds every pipeline row of the account already held, as before.
--
-- Another round is needed only when a start of the account committed during the round before:
-- a start that is refused makes no job, and the loop ends at the first round without a new one.
--
-- Also: deleting an account while pg_net's worker was stalled (or behind a backlog) left the
-- account's createTasks in pg_net's queue: the cascade deleted our request log rows, not the
-- queued requests. When the worker came back it sent them, so the deleted user's prompt and photo
-- URL still reached KIE, which ran the tasks and billed them; their callbacks then found no job.
--
-- Once the trigger holds every request and pipeline row of the account, it now takes the
-- account's unanswered createTasks back out of the queue, as the deadline tick does for a job
-- past its deadline. The queue row must be ours: the newest of our
-- requests with its id (pg_net reuses ids after a crash) and a createTask. A row the worker has
-- locked is being sent and is left to it (its answer finds no job). Polls and finalize requests
-- carry no user content and are left to run out. If the withdrawal fails (pg_net's tables
-- changed), the account is deleted all the same, with a warning in the log.

-- The account's unanswered requests, then its pipeline rows (the ticks' order), each in id order;
-- returns the jobs whose pipeline rows the caller now holds.
create function private.lock_rows_of_account(account uuid)
returns uuid[]
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  held uuid[];
begin
  perform from private.requests r
   where r.job_id in (select j.id from public.generation_jobs j where j.user_id = account)
     and r.resolved_at is null
   order by r.id
     for update of r;
  select coalesce(array_agg(locked.job_id), '{}') into held
    from (select p.job_id from private.job_pipeline p
           where p.job_id in (select j.id from public.generation_jobs j where j.user_id = account)
           order by p.job_id
             for update of p) locked;
  return held;
end
$$;
comment on function private.lock_rows_of_account(uuid) is
  'API: Private. Locks the account''s unanswered request rows, then its pipeline rows, each in id order (the ticks'' lock order); returns the ids of the jobs whose pipeline rows are now held. Used by the trigger before an account is deleted.';

create or replace function private.lock_pipeline_of_deleted_user()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  held uuid[];
  problem text;
begin
  loop
    held := private.lock_rows_of_account(old.id);
    begin
      -- A start (or retry, or grant) in flight holds the profile for update: wait for it to
      -- commit. Key share does not wait for a refund.
      perform from public.profiles pr where pr.id = old.id for key share;
      exit when not exists (select from private.job_pipeline p
                             where p.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
                               and p.job_id <> all (held));
      -- A job committed that this round did not lock: give the key share back, so a retry
      -- holding its pipeline row can go on, and go round.
      raise exception using errcode = 'P0001';
    exception when raise_exception then
      null;
    end;
  end loop;
  -- The account's createTasks pg_net has not taken yet: never sent, and now never will be.
  begin
    with queued as (
      select nq.id
        from net.http_request_queue nq join private.requests r on nq.id = r.net_request_id
       where r.job_id in (select j.id from public.generation_jobs j where j.user_id = old.id)
         and r.kind = 'create' and r.resolved_at is null
         and nq.url like '%/api/v1/jobs/createTask'
         and not exists (select 1 from private.requests newer
                          where newer.net_request_id = r.net_request_id and newer.queued_at > r.queued_at)
         for update of nq skip locked
    )
    delete from net.http_request_queue nq using queued where nq.id = queued.id;
  exception when others then
    get stacked diagnostics problem = message_text;
    raise warning 'account %: its queued createTasks could not be taken back: %', old.id, problem;
  end;
  return old;
end
$$;
comment on function private.lock_pipeline_of_deleted_user() is
  'API: Private. Trigger before a delete on auth.users: locks the user''s unanswered request rows, then pipeline rows, in the ticks'' lock order (request row, pipeline row, job, profile); then waits for a start in flight (the profile, for key share, given back and taken again until every job''s rows are held), so the cascade cannot deadlock with a tick, a callback, a cancel or a retry; then takes the user''s createTasks pg_net has not taken out of its queue.';
