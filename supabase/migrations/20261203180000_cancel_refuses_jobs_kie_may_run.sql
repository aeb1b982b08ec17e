-- Why: cancelling means "not yet handed to pg_net" (KL023: "the job's createTask is already in
-- pg_net's hands (or at KIE)"), but the guard only looked at the pipeline stage. A job whose
-- createTask timed out (or got an unreadable 2xx, or was lost) goes back to `waiting` for its
-- retry, and KIE may well have made that task. Cancelled in those seconds, the job was failed
-- ("Cancelled before it was sent.") and refunded while KIE ran the task and billed it; its success
-- callback then came as a duplicate and the image was thrown away, where without the cancel it
-- would have completed the job.
--
-- The guard now also refuses a job that has a createTask KIE may have accepted
-- (private.requests.maybe_accepted): such a job goes on to its retry, and the first result (that
-- task's or the retry's) completes it; it times out with its refund otherwise. A job whose earlier
-- createTasks provably made nothing (429, 455, connection refused, an account error) can still be
-- cancelled while it waits. Otherwise as in 20261130150100.

create or replace function private.guard_cancel()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  update private.job_pipeline p
     set stage = 'failed', finished_at = coalesce(new.completed_at, now()), last_error = 'cancelled by the user', next_run_at = null
   where p.job_id = new.id and p.stage = 'waiting'
     and not exists (select 1 from private.requests r
                      where r.job_id = new.id and r.kind = 'create' and r.maybe_accepted);
  if not found and exists (select 1 from private.job_pipeline p where p.job_id = new.id) then
    perform private.raise_error('KL023', 'this job can no longer be cancelled', 'it was already sent or has finished', null);
  end if;
  return new;
end
$$;
comment on function private.guard_cancel() is
  'API: Private. Trigger: a job may be cancelled only while its createTask is not in pg_net''s hands (pipeline stage waiting) and no earlier createTask of it may have made a task at KIE (maybe_accepted); claims the pipeline row or refuses with KL023.';
