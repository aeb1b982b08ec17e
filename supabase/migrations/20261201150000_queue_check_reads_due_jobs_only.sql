-- Why: a start with a free create token first checks that no due job of its plan rank or higher is
-- waiting (20261201140200). That check walked job_pipeline_waiting_idx from the highest rank down
-- and read every waiting row to test next_run_at: after a KIE outage, with every waiting job backing
-- off (due later), a start read them all. Measured: 200k backing-off jobs made a start take
-- 60-140 ms instead of about 10 ms.
--
-- An index of the waiting jobs by next_run_at lets the check read only the due ones. A start
-- writes one more index entry (its pipeline row is waiting when inserted); the A/B on the
-- start_generation pgbench script showed no difference beyond noise. The bench's cost-growth part
-- times a start with a free token beside a growing backlog of backing-off jobs.
--
-- The paused check now comes before the queue check: while an alert holds createTask the due jobs
-- pile up, and the start cannot be sent anyway.

create index job_pipeline_waiting_due_idx on private.job_pipeline (next_run_at) where stage = 'waiting';
comment on index private.job_pipeline_waiting_due_idx is
  'The waiting jobs by when they are due: a start''s queue check reads only the due ones, not those backing off.';

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
     -- tick, in its order). job_pipeline_waiting_due_idx: only the due rows are read.
     and not exists (select 1 from private.job_pipeline w
                      where w.stage = 'waiting' and w.next_run_at <= now() and w.priority >= job_priority
                        and w.job_id <> new.id and w.deadline_at > now())
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
