-- Why: the dispatch tick reads the waiting jobs in queue order (higher rank first, then oldest,
-- through job_pipeline_waiting_idx) and skips those not due yet. During a KIE outage nearly every
-- waiting job is backing off, and how many of them a tick read depended on the planner: once
-- PL/pgSQL used its generic plan (from the sixth call in a session, as the tick driver calls it)
-- the tick read every waiting row to send nothing. Measured with 100k jobs backing off (three
-- ranks, nothing else in the table), 300 calls in one session: 13-14 ms each, once a second,
-- growing with the backlog; with this change 0.03-0.09 ms. (With the bench's fixtures the old
-- tick's plan happened to stay cheap; the check makes the cost independent of that choice.)
--
-- The tick now first asks whether any waiting job is due, the way a start's queue check does: the
-- ranks present are walked one index probe at a time and only each rank's due rows are looked at
-- (job_pipeline_waiting_rank_due_idx). With none due it returns at once. When some are due it
-- reads in queue order as before (a burst: the first probe finds a due job); what it sends and in
-- which order is unchanged.

create or replace function private.dispatch_tick(at timestamptz default now())
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  ids uuid[];
  granted integer;
  sent integer := 0;
begin
  if private.dispatch_paused() then
    return 0;
  end if;
  if not exists (with recursive ranks (priority) as (
                   select min(w.priority) from private.job_pipeline w where w.stage = 'waiting'
                   union all
                   select (select min(w.priority) from private.job_pipeline w
                            where w.stage = 'waiting' and w.priority > r.priority)
                     from ranks r where r.priority is not null)
                 select 1 from ranks r
                  where exists (select 1 from private.job_pipeline w
                                 where w.stage = 'waiting' and w.priority = r.priority and w.next_run_at <= at
                                   and w.deadline_at > at)) then
    return 0;
  end if;
  select array_agg(x.job_id order by x.priority desc, x.created_at) into ids
    from (select p.job_id, p.priority, p.created_at from private.job_pipeline p
           where p.stage = 'waiting' and p.next_run_at <= at and p.deadline_at > at
           order by p.priority desc, p.created_at
           limit private.setting_number('dispatch.batch_size')
           for update skip locked) as x;
  if ids is null then
    return 0;
  end if;
  if private.secret('kie_api_key') is null or private.secret('functions_base_url') is null then
    perform private.raise_alert('missing_secret',
      'Vault secret kie_api_key or functions_base_url is missing: jobs wait and nothing is sent. See README "Secrets".',
      false, jsonb_build_object('secrets', array['kie_api_key', 'functions_base_url'], 'waiting_jobs', cardinality(ids)), at);
    return 0;
  end if;
  granted := private.take_tokens('create', cardinality(ids), at);
  for i in 1 .. granted loop
    if private.send_create_task(ids[i], at) then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;
comment on function private.dispatch_tick(timestamptz) is
  'API: Private. Tick: sends createTask for due waiting jobs (higher plan rank first, then oldest) as far as the create budget allows; nothing while dispatch is paused, and returns at once when no waiting job is due. Returns how many were sent.';

select private.pin_search_paths();
