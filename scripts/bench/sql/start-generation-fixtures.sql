-- Fixtures of the start_generation part, run as the cluster's superuser on the bench cluster only.
-- Users get ids from their number (bench.user_id), so pgbench scripts can pick one at random.
-- :users is set by the caller (psql -v users=N).
\set ON_ERROR_STOP on
create schema bench;
grant usage on schema bench to authenticated;

-- No SET clause, so the planner inlines it: the scripts' user id is then as cheap as a parameter
-- (a SQL function with SET is parsed and planned again on every call). Only pg_catalog and
-- immutable functions are used, both conditions of inlining.
create function bench.user_id(n integer) returns uuid
language sql immutable
as $$ select pg_catalog.textcat('00000000-0000-4000-8000-', pg_catalog.lpad(n::text, 12, '0'))::uuid $$;

-- The ticks would run every minute under pg_cron and disturb the numbers: the bench calls them itself.
delete from cron.job;

-- A plan whose limits are checked on every start but do not bite: between runs the bench finishes
-- the active jobs, so a user holds a handful of active jobs at most, as in real use.
insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits)
values ('bench', 'Benchmark', 100, 50, 600, 0);
insert into auth.users (id, email)
select bench.user_id(n), 'user' || n || '@bench.invalid' from generate_series(1, :users) n;
do $$
declare
  u uuid;
  users uuid[] := array(select id from auth.users where email like '%@bench.invalid');
begin
  set local role service_role;
  foreach u in array users loop
    perform public.set_plan(u, 'bench');
    perform public.grant_credits(u, 1000000, 'benchmark credits');
  end loop;
end
$$;

-- The dispatch trigger takes its budget path only when the KIE key and the functions URL exist.
-- Nothing drains the request queue here, so nothing is sent anywhere.
do $$
begin
  if not exists (select 1 from vault.secrets where name = 'kie_api_key') then
    perform vault.create_secret('bench-key-never-sent', 'kie_api_key', 'benchmark');
  end if;
end
$$;

-- Baseline 1: one conditional balance update per transaction.
create table bench.balances (id uuid primary key, credits integer not null check (credits >= 0));
insert into bench.balances select bench.user_id(n), 1000000000 from generate_series(1, :users) n;

-- Baseline 2, the floor of this design: lock the profile, count active jobs through a partial
-- index, debit, insert a job row and a ledger row; called through the same PostgREST wrapper, and
-- once more in one plain statement.
create table bench.profiles (id uuid primary key, credits integer not null check (credits >= 0));
insert into bench.profiles select bench.user_id(n), 1000000000 from generate_series(1, :users) n;
create table bench.jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references bench.profiles (id),
  status text not null default 'pending',
  prompt text not null,
  created_at timestamptz not null default now()
);
create index jobs_user_active_idx on bench.jobs (user_id) where status in ('pending', 'generating');
create table bench.ledger (
  id bigint generated always as identity primary key,
  user_id uuid not null references bench.profiles (id),
  amount integer not null,
  balance_after integer not null,
  job_id uuid not null references bench.jobs (id)
);

-- It returns the job row, as start_generation does, so PostgREST serializes a row for both.
-- Declared like ours (PL/pgSQL, security definer, pinned search_path).
create function bench.floor_body(uid uuid, prompt text) returns bench.jobs
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
  active integer;
  balance integer;
  job bench.jobs;
begin
  perform 1 from bench.profiles p where p.id = uid for update;
  select count(*) into active from bench.jobs j where j.user_id = uid and j.status in ('pending', 'generating');
  if active >= 50 then
    raise exception 'too many active jobs';
  end if;
  update bench.profiles p set credits = p.credits - 1 where p.id = uid and p.credits >= 1 returning p.credits into balance;
  insert into bench.jobs (user_id, prompt) values (uid, prompt) returning * into job;
  insert into bench.ledger (user_id, amount, balance_after, job_id) values (uid, -1, balance, job.id);
  return job;
end
$$;
-- The floor behind PostgREST's wrapper: the caller from the JWT claims, as auth.uid() reads it.
create function bench.floor_start(prompt text) returns bench.jobs
language plpgsql volatile set search_path = pg_catalog, pg_temp
as $$
begin
  return bench.floor_body((current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid, prompt);
end
$$;
grant execute on function bench.floor_body(uuid, text), bench.floor_start(text) to authenticated;

-- The wrapper-only run calls this: an RPC declared like ours (PL/pgSQL, security definer, pinned
-- search_path) that does nothing, so its transaction is what any RPC called this way costs.
create function bench.noop_start(prompt text) returns bench.jobs
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
  return null;
end
$$;
grant execute on function bench.noop_start(text) to authenticated;

-- Between runs: every active job finishes, in both the real tables and the floor's.
create procedure bench.finish_active()
language sql set search_path = pg_catalog
as $$
  update private.job_pipeline set stage = 'completed', finished_at = now(), next_run_at = null
   where stage in ('waiting', 'creating', 'generating', 'finalizing');
  update public.generation_jobs set status = 'completed', stage = 'completed', completed_at = now()
   where status in ('pending', 'generating');
  update bench.jobs set status = 'completed' where status in ('pending', 'generating');
$$;
grant usage on schema bench to postgres; grant all on all tables in schema bench to postgres;
