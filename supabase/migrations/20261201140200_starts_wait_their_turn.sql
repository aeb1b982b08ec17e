-- Why: a start sent its job to KIE at once whenever a create token was free, without looking at
-- the queue. The dispatch tick sends waiting jobs higher plans first, then oldest first, but runs
-- once a second: a start landing between a token coming back and the next tick took that token.
-- In a sustained burst of free starts, a paid user's waiting job (or an older free one) could keep
-- losing until its deadline.
--
-- A start now sends at once only when no job of the same or a higher plan rank is waiting and due;
-- otherwise it waits its turn with the others. The check runs only when a token is free, so a
-- burst (budget spent) costs the same as before.

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
  if exists (select 1 from private.rate_slots s
              where s.bucket = 'create' and s.available_at <= now()
                and s.slot <= (select (x.value #>> '{}')::numeric from private.settings x where x.key = 'dispatch.create_per_window'))
     -- The queue first: a due job of the same or a higher rank is sent before this one (by the
     -- tick, in its order). job_pipeline_waiting_idx, from the highest rank down to this one's.
     and not exists (select 1 from private.job_pipeline w
                      where w.stage = 'waiting' and w.priority >= job_priority and w.job_id <> new.id
                        and w.next_run_at <= now() and w.deadline_at > now())
     and not private.dispatch_paused()
     and private.secret('kie_api_key') is not null and private.secret('functions_base_url') is not null
     and private.take_tokens('create', 1, now()) = 1 then
    perform private.send_create_task(new.id, now());
  end if;
  return null;
end
$$;
comment on function private.enqueue_job() is
  'API: Private. Trigger: creates the job''s pipeline row and queues createTask right away when the budget allows and no due job of the same or a higher plan rank is waiting (a spent budget is seen without locking anything).';

select private.pin_search_paths();
