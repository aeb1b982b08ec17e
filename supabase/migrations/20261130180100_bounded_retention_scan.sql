-- Why: the cost-growth benchmark (npm run bench, part 4) showed the retention tick reading every
-- finished job whose results are still kept, every minute: the retention depends on each owner's
-- plan, so the condition on completed_at was a filter, not an index bound, and the tick grew
-- linearly with history (7.6x from 10k to 100k finished jobs). The shortest retention of any plan
-- now bounds the index scan; which jobs expire is unchanged.

create or replace function private.expire_results(at timestamptz default now(), max_jobs integer default 500)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
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
       -- No plan keeps results for less than the shortest retention: this bound is an index
       -- condition, so the scan starts and stops among jobs old enough to expire.
       and j.completed_at < at - (select min(x.result_retention_days) from public.plans x) * interval '1 day'
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

select private.pin_search_paths();
