-- Why: the queue check of a start with a free create token (20261201150000) read the waiting jobs
-- through an index by next_run_at only: it skipped jobs backing off, but read every due job of a
-- lower rank. In a burst of free users' starts (thousands due, waiting for the budget) a paid
-- user's start read them all: beside 50k due rank-0 jobs (and 100k backing off, 300k finished) it
-- took 33 ms (median of 25 starts), against 2.3 ms now.
--
-- The index is now by (priority, next_run_at), and the check walks the ranks from the start's own
-- up (a loose index scan): per rank present, one probe finds the next rank (min(priority), through
-- job_pipeline_waiting_idx) and one reads its due rows (job_pipeline_waiting_rank_due_idx).
-- Neither a backlog backing off nor due jobs of lower ranks are read. The bench's cost-growth part
-- times a start beside both.
--
-- The index by next_run_at alone is dropped rather than kept beside the new one (every start would
-- write both): the dispatch tick, which used it when nothing is due, now reads the rank index
-- instead, measured at 2.4 ms per tick with 100k jobs backing off and none due (0.07 ms before);
-- once per tick, against an index entry on every start.

drop index private.job_pipeline_waiting_due_idx;
create index job_pipeline_waiting_rank_due_idx on private.job_pipeline (priority, next_run_at) where stage = 'waiting';
comment on index private.job_pipeline_waiting_rank_due_idx is
  'The waiting jobs by rank, then by when they are due: a start''s queue check reads, rank by rank from its own up, only the due ones.';

create or replace function private.enqueue_job()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  job_priority integer;
begin
  insert into private.job_pipeline (job_id, priority, next_run_at, deadline_at, created_at)
  values (new.id,
          coalesce((select pl.rank from public.profiles pr join public.plans pl on pl.id = pr.plan where pr.id = new.user_id), 0),
          new.created_at,
          -- private.job_deadline_seconds, written out: three nested function calls cost more than the
          -- pipeline insert itself, on every start.
          new.created_at + make_interval(secs => coalesce(
            (select m.deadline_seconds from private.model_requests m where m.model_key = new.model_key),
            (select (s.value #>> '{}')::numeric from private.settings s where s.key = 'jobs.deadline_seconds'))::double precision),
          new.created_at)
  returning priority into job_priority;
  -- Cheapest first: in a burst the budget is spent and nothing else is read.
  if exists (select 1 from private.rate_slots s
              where s.bucket = 'create' and s.available_at <= now()
                and s.slot <= (select (x.value #>> '{}')::numeric from private.settings x where x.key = 'dispatch.create_per_window'))
     and not private.dispatch_paused()
     -- The queue first: a due job of the same or a higher rank is sent before this one (by the
     -- tick, in its order). The ranks present among the waiting jobs, from this one's up, are
     -- walked one index probe at a time (a loose index scan), and within a rank only its due rows
     -- are read (job_pipeline_waiting_rank_due_idx): neither jobs backing off nor due jobs of lower
     -- ranks.
     and not exists (with recursive ranks (priority) as (
                        select min(w.priority) from private.job_pipeline w
                         where w.stage = 'waiting' and w.priority >= job_priority
                        union all
                        select (select min(w.priority) from private.job_pipeline w
                                 where w.stage = 'waiting' and w.priority > r.priority)
                          from ranks r where r.priority is not null)
                      select 1 from ranks r
                       where exists (select 1 from private.job_pipeline w
                                      where w.stage = 'waiting' and w.priority = r.priority and w.next_run_at <= now()
                                        and w.job_id <> new.id and w.deadline_at > now()))
     and private.secret('kie_api_key') is not null and private.secret('functions_base_url') is not null
     and private.take_tokens('create', 1, now()) = 1 then
    perform private.send_create_task(new.id, now());
  end if;
  return null;
end
$$;
comment on function private.enqueue_job() is
  'API: Private. Trigger: creates the job''s pipeline row and queues createTask right away when the budget allows, no alert holds createTask and no due job of the same or a higher plan rank is waiting (a spent budget is seen without locking anything).';

select private.pin_search_paths();
