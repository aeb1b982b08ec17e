-- Why: profiling start_generation under load (npm run bench: pg_stat_statements and
-- track_functions) showed that in a burst, once the create budget of the window is spent, each
-- start still read two Vault secrets, checked the dispatch pause and ran the locking token update
-- before learning that no token was free, and the job's deadline took three nested function
-- calls. Now the dispatch trigger first looks (without locking) for a free create token and reads
-- the deadline with two plain lookups; every outcome is unchanged. (The same profile found the
-- blocklist matcher running on the absent negative prompt: the input-policy migration's
-- create_generation_job skips empty texts.)

-- The pipeline row is created with the job; createTask is queued at once when a create token is
-- free, dispatch is not paused and the secrets exist, else the job waits for the dispatch tick.
-- The first test is a plain read of the budget: when every token of the window is spent (most
-- starts of a burst) nothing else is read or locked. take_tokens still decides, skipping tokens
-- another transaction holds, so the read only filters out starts that could not send anyway.
create or replace function private.enqueue_job()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
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
          new.created_at);
  if exists (select 1 from private.rate_slots s
              where s.bucket = 'create' and s.available_at <= now()
                and s.slot <= (select (x.value #>> '{}')::numeric from private.settings x where x.key = 'dispatch.create_per_window'))
     and not private.dispatch_paused()
     and private.secret('kie_api_key') is not null and private.secret('functions_base_url') is not null
     and private.take_tokens('create', 1, now()) = 1 then
    perform private.send_create_task(new.id, now());
  end if;
  return null;
end
$$;
comment on function private.enqueue_job() is
  'API: Private. Trigger: creates the job''s pipeline row and queues createTask right away when the budget allows (a spent budget is seen without locking anything).';

select private.pin_search_paths();
