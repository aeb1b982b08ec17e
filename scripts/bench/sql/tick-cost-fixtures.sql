-- Fixtures of the cost-growth part, run as the cluster's superuser on the bench cluster only.
-- Rows are written set-based with session_replication_role = replica, which skips the ordinary
-- triggers (the dispatch trigger, the ledger chain and the balance check) and foreign-key checks;
-- the procedures write what those triggers would have written, consistently: every job has its
-- pipeline row and its ledger entries, each ledger entry chains onto the previous balance and the
-- profile's balance is the last one.
\set ON_ERROR_STOP on

-- Users 1 to 1000 of the 5000 are on the long-retention plan.
create function bench.long_retention(user_id uuid) returns boolean
language sql immutable set search_path = pg_catalog
as $$ select right(user_id::text, 12)::integer <= 1000 $$;

-- An empty pipeline, each bench user with one grant.
create procedure bench.tick_reset(t timestamptz)
language plpgsql set search_path = pg_catalog
as $$
begin
  set local session_replication_role = replica;
  truncate public.generation_jobs, private.job_pipeline, private.requests, public.credit_ledger, private.late_results,
           private.result_purges, private.alerts, net._http_response, net.http_request_queue cascade;
  update private.rate_slots set available_at = '-infinity';
  update public.profiles set credits = 1000000;
  -- One user in five keeps results a year, so finished jobs aged 30 to 360 days are still kept:
  -- the retention tick must not re-read them every minute.
  insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, result_retention_days)
  values ('bench_long', 'Benchmark, long retention', 101, 50, 600, 0, 365)
  on conflict (id) do nothing;
  update public.profiles set plan = case when bench.long_retention(id) then 'bench_long' else 'bench' end;
  insert into public.credit_ledger (user_id, kind, amount, balance_after, reason, created_at)
  select p.id, 'grant', 1000000, 1000000, 'benchmark credits', t - interval '400 days' from public.profiles p order by p.id;
end
$$;

-- Jobs of batch `b` (id, user_id, seq, status, created_at): job rows, pipeline rows, ledger entries.
create procedure bench.write_jobs(t timestamptz)
language plpgsql set search_path = pg_catalog
as $$
begin
  insert into public.generation_jobs (id, user_id, mode, prompt, status, stage, aspect_ratio, result_urls, error_code,
                                      error_message, model_key, quality, credits_charged, request, request_fingerprint,
                                      created_at, updated_at, completed_at)
  select b.id, b.user_id, 'text-to-image', 'a lighthouse at dusk #' || b.seq, b.status,
         case b.status when 'pending' then 'queued' else b.status end, '1:1',
         case when b.status = 'completed' then array[b.user_id || '/' || b.id || '/0.png'] else '{}' end,
         case when b.status = 'failed' then 'provider_failed' end,
         case when b.status = 'failed' then 'The image could not be generated. Your credits were refunded.' end,
         'imagen-fast', 'fast', 1, jsonb_build_object('prompt', 'a lighthouse at dusk #' || b.seq, 'quality', 'fast'),
         md5(b.seq::text), b.created_at, b.created_at,
         case when b.status in ('completed', 'failed') then b.created_at + interval '40 seconds' end
    from b order by b.created_at;
  insert into public.credit_ledger (user_id, kind, amount, balance_after, job_id, reason, created_at)
  select e.user_id, e.kind, e.amount,
         p.credits + sum(e.amount) over (partition by e.user_id order by e.seq, e.ord rows unbounded preceding),
         e.job_id, e.reason, e.at
    from (select b.user_id, b.seq, 0 as ord, 'debit' as kind, -1 as amount, b.id as job_id, 'Imagen Fast generation' as reason,
                 b.created_at as at from b
          union all
          select b.user_id, b.seq, 1, 'refund', 1, b.id, 'Refund: generation failed', b.created_at + interval '40 seconds'
            from b where b.status = 'failed') e
    join public.profiles p on p.id = e.user_id
   order by e.seq, e.ord;
  update public.profiles p set credits = l.balance_after
    from (select distinct on (l.user_id) l.user_id, l.balance_after from public.credit_ledger l
           where l.user_id in (select distinct b.user_id from b) order by l.user_id, l.id desc) l
   where p.id = l.user_id;
end
$$;

-- n finished jobs (9 in 10 completed, 1 in 10 failed and refunded), each with its create and poll
-- requests resolved: jobs of long-retention users are 30 to 360 days old (kept, but past the
-- shortest retention), the others are from the 7 days before t.
create procedure bench.add_finished(n integer, t timestamptz)
language plpgsql set search_path = pg_catalog
as $$
declare
  base bigint := (select count(*) from public.generation_jobs);
begin
  set local session_replication_role = replica;
  create temp table b on commit drop as
  select gen_random_uuid() as id, bench.user_id(((base + g) % 5000 + 1)::integer) as user_id, base + g as seq,
         case when g % 10 = 0 then 'failed' else 'completed' end as status,
         case when (base + g) % 5000 < 1000 then t - interval '30 days' - random() * interval '330 days'
              else t - interval '20 minutes' - random() * interval '7 days' end as created_at
    from generate_series(1, n) g;
  call bench.write_jobs(t);
  insert into private.job_pipeline (job_id, stage, attempt, task_id, deadline_at, accepted_at, polls, created_at, updated_at, finished_at,
                                    results_expire_at)
  select b.id, b.status, 1, 'task-' || b.seq, b.created_at + interval '15 minutes', b.created_at + interval '1 second', 1,
         b.created_at, b.created_at + interval '40 seconds', b.created_at + interval '40 seconds',
         b.created_at + interval '40 seconds' + case when bench.long_retention(b.user_id) then interval '365 days' else interval '30 days' end
    from b;
  insert into private.requests (job_id, attempt, kind, net_request_id, queued_at, sent_at, timeout_ms, resolved_at, http_status,
                                body_code, outcome, task_id)
  select b.id, 1, k.kind, (base + b.seq) * 2 + k.n, b.created_at + k.after, b.created_at + k.after, 8000,
         b.created_at + k.after + interval '1 second', 200, 200, k.outcome, 'task-' || b.seq
    from b, (values ('create', 0, interval '0 seconds', 'accepted'), ('poll', 1, interval '20 seconds', 'report')) k(kind, n, after, outcome)
   where b.created_at > t - interval '7 days 1 hour'; -- older request rows are gone (housekeeping)
end
$$;

-- 1,000 active jobs at t: 100 waiting (10 past their deadline), 100 creating (50 with a response
-- to reconcile), 800 generating (about half due for a poll, 10 past their deadline).
create procedure bench.add_active(t timestamptz)
language plpgsql set search_path = pg_catalog
as $$
begin
  set local session_replication_role = replica;
  create temp table b on commit drop as
  select gen_random_uuid() as id, bench.user_id(g) as user_id, -g::bigint as seq, g,
         case when g <= 200 then 'pending' else 'generating' end as status,
         t - interval '90 seconds' + g * interval '10 milliseconds' as created_at
    from generate_series(1, 1000) g;
  call bench.write_jobs(t);
  insert into private.job_pipeline (job_id, stage, attempt, task_id, next_run_at, deadline_at, accepted_at, created_at)
  select b.id,
         case when b.g <= 100 then 'waiting' when b.g <= 200 then 'creating' else 'generating' end,
         case when b.g <= 100 then 0 else 1 end,
         case when b.g > 200 then 'task-active-' || b.g end,
         case when b.g <= 100 then t - interval '5 seconds' when b.g > 200 then t - interval '30 seconds' + random() * interval '60 seconds' end,
         case when b.g <= 10 or b.g between 991 and 1000 then t - interval '1 second' else t + interval '10 minutes' end,
         case when b.g > 200 then b.created_at + interval '1 second' end,
         b.created_at
    from b;
  insert into private.requests (job_id, attempt, kind, net_request_id, queued_at, sent_at, timeout_ms, resolved_at, http_status,
                                body_code, outcome, task_id)
  select b.id, 1, 'create', 1000000000 + b.g, t - interval '2 seconds', t - interval '2 seconds', 8000,
         case when b.g > 200 then b.created_at + interval '1 second' end,
         case when b.g > 200 then 200 end, case when b.g > 200 then 200 end,
         case when b.g > 200 then 'accepted' end, case when b.g > 200 then 'task-active-' || b.g end
    from b where b.g > 100;
  insert into net._http_response (id, status_code, content_type, headers, content, timed_out, created)
  select 1000000000 + g, 200, 'application/json', '{}',
         '{"code":200,"msg":"success","data":{"taskId":"task-active-' || g || '"}}', false, t - interval '1 second'
    from generate_series(101, 150) g;
end
$$;

-- n pending jobs in temp table b (the caller's transaction drops it) and written by write_jobs,
-- owned by users 1 to `users` in turn, created 1 ms apart from first_at.
create procedure bench.write_pending(n integer, users integer, first_at timestamptz, t timestamptz)
language plpgsql set search_path = pg_catalog
as $$
declare
  base bigint := (select count(*) from public.generation_jobs);
begin
  create temp table b on commit drop as
  select gen_random_uuid() as id, bench.user_id(((base + g) % users + 1)::integer) as user_id, base + g as seq,
         'pending' as status, first_at + g * interval '1 millisecond' as created_at
    from generate_series(1, n) g;
  call bench.write_jobs(t);
end
$$;

-- KIE is down: every waiting job backs off (due an hour from now), and n more jobs join them, as
-- the create retries of an outage leave them. They belong to every user alike (20 each per 100k,
-- under the plan's 50 active jobs).
create procedure bench.add_backing_off(n integer, t timestamptz)
language plpgsql set search_path = pg_catalog
as $$
declare
  due_at timestamptz := greatest(t, now()) + interval '1 hour';
begin
  set local session_replication_role = replica;
  update private.job_pipeline set next_run_at = due_at, deadline_at = due_at where stage = 'waiting';
  call bench.write_pending(n, 5000, t - interval '10 minutes', t);
  insert into private.job_pipeline (job_id, stage, priority, attempt, retries, next_run_at, deadline_at, last_error, created_at)
  select b.id, 'waiting', case when bench.long_retention(b.user_id) then 101 else 100 end, 1, 1, due_at, due_at,
         'createTask answered 500', b.created_at
    from b;
end
$$;

-- A burst of starts on a lower plan (rank 0, below every bench plan): n more jobs waiting and due,
-- their turn still to come. They belong to users 1 to 4999 (user 5000 times the start), 20 each
-- per 100k.
create procedure bench.add_due_lower_rank(n integer, t timestamptz)
language plpgsql set search_path = pg_catalog
as $$
begin
  set local session_replication_role = replica;
  call bench.write_pending(n, 4999, least(t, now()) - interval '5 minutes', t);
  insert into private.job_pipeline (job_id, stage, priority, attempt, next_run_at, deadline_at, created_at)
  select b.id, 'waiting', 0, 0, b.created_at, greatest(t, now()) + interval '1 hour', b.created_at
    from b;
end
$$;
