-- Why: stored results are kept for as long as the owner's plan says, and a user may delete one
-- of their finished generations with its images. The images are Storage objects, and Storage
-- objects can only be removed through the Storage API: the platform refuses direct deletes from
-- storage.objects (storage.protect_delete), and deleting rows would orphan the files anyway.
-- So the database decides and records what must go (the job's references at once, and a durable
-- purge row), and a tick asks the Storage API to delete the job's objects through pg_net with
-- the service key from Vault. A purge is finished only when no object is left under the job's
-- folder, so a lost request, a Storage outage or a late upload is retried on the next visit.
--
-- Vault secrets read at run time (never stored here): `project_url` (the project's base URL,
-- e.g. https://<ref>.supabase.co) and `service_role_key`.

-- ---------------------------------------------------------------------------------------------
-- Retention per plan
-- ---------------------------------------------------------------------------------------------
alter table public.plans
  add column result_retention_days integer not null default 30
    constraint plans_result_retention_days_range check (result_retention_days between 1 and 3650);
comment on column public.plans.result_retention_days is
  'Days the generated images of a finished job are kept (counted from completed_at); then they are removed.';
update public.plans set result_retention_days = case id when 'free' then 30 when 'paid' then 90 when 'pro' then 365 else result_retention_days end;

-- ---------------------------------------------------------------------------------------------
-- The job's side: references go at once, deleted jobs disappear from the app
-- ---------------------------------------------------------------------------------------------
alter table public.generation_jobs
  add column results_removed_at timestamptz,
  add column deleted_at timestamptz,
  add constraint generation_jobs_removed_results_are_gone check (results_removed_at is null or result_urls = '{}'),
  add constraint generation_jobs_deleted_results_removed check (deleted_at is null or results_removed_at is not null);
comment on column public.generation_jobs.results_removed_at is
  'When the stored images were removed (the plan''s retention ran out, or the owner deleted the job); result_urls is then empty.';
comment on column public.generation_jobs.deleted_at is
  'When the owner deleted the job (delete_generation); deleted jobs are no longer visible to the app.';

-- The retention scan: finished jobs whose images are still kept, oldest first.
create index generation_jobs_results_kept_idx on public.generation_jobs (completed_at)
  where results_removed_at is null and status in ('completed', 'failed');

alter policy "Users can read their own jobs" on public.generation_jobs
  using (user_id = (select auth.uid()) and deleted_at is null);

-- ---------------------------------------------------------------------------------------------
-- Purges: one durable row per job whose stored images must go
-- ---------------------------------------------------------------------------------------------
create table private.result_purges (
  job_id uuid primary key references public.generation_jobs (id) on delete cascade,
  user_id uuid not null,
  reason text not null constraint result_purges_reason_valid check (reason in ('deleted', 'expired')),
  requested_at timestamptz not null,
  attempts integer not null default 0 constraint result_purges_attempts_non_negative check (attempts >= 0),
  next_attempt_at timestamptz not null,
  last_request_id bigint,
  last_error text,
  done_at timestamptz
);
comment on table private.result_purges is
  'API: Private. Stored images to remove from the generated-images bucket, one row per job, until no object is left under <user_id>/<job_id>/.';
comment on column private.result_purges.reason is 'deleted (the owner deleted the job) or expired (the plan''s retention ran out).';
comment on column private.result_purges.attempts is 'Delete requests sent to the Storage API so far.';
comment on column private.result_purges.next_attempt_at is 'When the purge tick looks at this job next (backoff after each request).';
comment on column private.result_purges.last_request_id is 'The pg_net request id of the last delete request (net._http_response, while pg_net keeps it).';
comment on column private.result_purges.last_error is 'Why the last visit could not send a request.';
comment on column private.result_purges.done_at is 'When the job''s folder was found empty.';
alter table private.result_purges enable row level security;
revoke all on private.result_purges from public;
create index result_purges_due_idx on private.result_purges (next_attempt_at) where done_at is null;

-- ---------------------------------------------------------------------------------------------
-- delete_generation: the owner deletes one finished generation with its images
-- ---------------------------------------------------------------------------------------------
-- Security definer: users never write generation_jobs or purge rows directly; this is the door.
create function public.delete_generation(job_id uuid)
returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  job record;
  at timestamptz := pg_catalog.now();
begin
  select j.id, j.user_id, j.status into job
    from public.generation_jobs j
   where j.id = delete_generation.job_id and j.user_id = auth.uid() and j.deleted_at is null
     for update;
  if not found then
    perform private.raise_error('KL050', 'generation not found',
      pg_catalog.format('no generation %s of yours', delete_generation.job_id), null);
  end if;
  if job.status not in ('completed', 'failed') then
    perform private.raise_error('KL051', 'this generation has not finished',
      pg_catalog.format('its status is %s', job.status), 'Cancel it, or delete it once it has finished.');
  end if;
  update public.generation_jobs j
     set deleted_at = at, result_urls = '{}', results_removed_at = coalesce(j.results_removed_at, at)
   where j.id = job.id;
  insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at)
  values (job.id, job.user_id, 'deleted', at, at)
  on conflict on constraint result_purges_pkey do update
    set reason = 'deleted', next_attempt_at = excluded.next_attempt_at, done_at = null;
end
$$;
comment on function public.delete_generation(uuid) is
  'Deletes one of my finished (completed or failed) generations: it disappears from my jobs at once and its stored images are removed within a minute or two.';
grant execute on function public.delete_generation(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Retention: finished jobs past their plan's retention lose their references and get a purge
-- ---------------------------------------------------------------------------------------------
create function private.expire_results(at timestamptz default now(), max_jobs integer default 500)
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  expired integer;
begin
  if max_jobs is null or max_jobs < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_jobs must be at least 1, got %s', max_jobs), null);
  end if;
  with due as (
    select j.id, j.user_id
      from public.generation_jobs j
      join public.profiles p on p.id = j.user_id
      join public.plans pl on pl.id = p.plan
     where j.results_removed_at is null
       and j.status in ('completed', 'failed')
       and j.completed_at < at - pl.result_retention_days * interval '1 day'
     order by j.completed_at
     limit max_jobs
       for update of j skip locked
  ), removed as (
    update public.generation_jobs j
       set result_urls = '{}', results_removed_at = at
      from due
     where j.id = due.id
    returning j.id, j.user_id
  )
  insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at)
  select removed.id, removed.user_id, 'expired', at, at from removed
  on conflict on constraint result_purges_pkey do nothing;
  get diagnostics expired = row_count;
  return expired;
end
$$;
comment on function private.expire_results(timestamptz, integer) is
  'API: Private. Tick: finished jobs older than their owner''s plan result_retention_days lose their result_urls and get a purge row. Returns how many.';

-- The Storage API's delete endpoint for the bucket, or null while the Vault secrets are missing.
create function private.storage_delete_target()
returns table (url text, service_key text)
language sql stable
set search_path = ''
as $$
  select rtrim(u.decrypted_secret, '/') || '/storage/v1/object/generated-images', k.decrypted_secret
    from vault.decrypted_secrets u, vault.decrypted_secrets k
   where u.name = 'project_url' and k.name = 'service_role_key'
$$;
comment on function private.storage_delete_target() is
  'API: Private. The Storage delete URL of generated-images and the service key, from the Vault secrets project_url and service_role_key.';

create function private.purge_results(at timestamptz default now(), max_jobs integer default 50)
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  purge record;
  target record;
  names text[];
  sent integer := 0;
begin
  if max_jobs is null or max_jobs < 1 then
    perform private.raise_error('KL052', 'invalid batch size', pg_catalog.format('max_jobs must be at least 1, got %s', max_jobs), null);
  end if;
  select * into target from private.storage_delete_target();
  for purge in
    select r.job_id, r.user_id, r.attempts
      from private.result_purges r
     where r.done_at is null and r.next_attempt_at <= at
     order by r.next_attempt_at
     limit max_jobs
       for update skip locked
  loop
    select array_agg(o.name order by o.name) into names
      from storage.objects o
     where o.bucket_id = 'generated-images' and o.name like purge.user_id::text || '/' || purge.job_id::text || '/%';
    if names is null then
      update private.result_purges r set done_at = at, last_error = null where r.job_id = purge.job_id;
    elsif target.url is null then
      update private.result_purges r
         set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
             next_attempt_at = at + interval '1 minute'
       where r.job_id = purge.job_id;
    else
      -- Backoff 30 s, 1 min, 2 min ... capped at 1 hour; the next visit checks the folder again.
      update private.result_purges r
         set attempts = r.attempts + 1,
             last_error = null,
             next_attempt_at = at + least(interval '1 hour', interval '30 seconds' * power(2, least(purge.attempts, 10))),
             last_request_id = net.http_delete(
               url := target.url,
               headers := pg_catalog.jsonb_build_object(
                 'Authorization', 'Bearer ' || target.service_key, 'apikey', target.service_key,
                 'Content-Type', 'application/json'),
               body := pg_catalog.jsonb_build_object('prefixes', names),
               timeout_milliseconds := 10000)
       where r.job_id = purge.job_id;
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;
comment on function private.purge_results(timestamptz, integer) is
  'API: Private. Tick: for each due purge, finishes it when the job''s folder is empty, otherwise asks the Storage API (pg_net, service key) to delete what is left. Returns the requests sent.';

create function private.results_retention_tick(at timestamptz default now())
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  perform private.expire_results(at);
  perform private.purge_results(at);
end
$$;
comment on function private.results_retention_tick(timestamptz) is
  'API: Private. The scheduled job: expire results past retention, then purge what is due.';

insert into private.ticks (name, every_seconds, command, description)
values ('kiln-results-retention', 60, 'select private.results_retention_tick()',
        'Expires stored results past their plan''s retention and purges them through the Storage API.');
select private.schedule_ticks();
