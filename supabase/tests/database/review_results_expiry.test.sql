-- Each finished job stores when its results expire (completed_at + its owner's plan retention),
-- moved when the owner's plan or the plan's retention changes, cleared once the results are
-- removed; the retention tick reads only due jobs through a partial index on it.
begin;
select plan(9);

select tests.create_supabase_user('rx_user');
select tests.authenticate_as_service_role();
select public.set_plan(tests.get_supabase_uid('rx_user'), 'pro');
select tests.authenticate_as('rx_user');
select (public.start_generation(prompt => 'a tin robot')).id as job \gset
select (public.start_generation(prompt => 'a tin soldier')).id as running \gset
select public.cancel_generation(:'job');
select tests.act_as_owner();
select completed_at as done_at from public.generation_jobs where id = :'job' \gset

select is((select results_expire_at from private.job_pipeline where job_id = :'job'), :'done_at'::timestamptz + interval '365 days',
  'a finished pro job expires 365 days after it finished');
select is((select results_expire_at from private.job_pipeline where job_id = :'running'), null, 'a running job has no expiry');

select tests.authenticate_as_service_role();
select public.set_plan(tests.get_supabase_uid('rx_user'), 'free');
select tests.act_as_owner();
select is((select results_expire_at from private.job_pipeline where job_id = :'job'), :'done_at'::timestamptz + interval '30 days',
  'moving to the free plan moves the expiry to 30 days');
update public.plans set result_retention_days = 45 where id = 'free';
select is((select results_expire_at from private.job_pipeline where job_id = :'job'), :'done_at'::timestamptz + interval '45 days',
  'changing the plan''s retention moves it too');

select is(private.expire_results(:'done_at'::timestamptz + interval '44 days'), 0, 'nothing is due before it');
select is(private.expire_results(:'done_at'::timestamptz + interval '45 days'), 1, 'the job expires at its stored time');
select is((select results_expire_at from private.job_pipeline where job_id = :'job'), null,
  'removing its results clears the expiry (it leaves the index)');
select is(private.expire_results(:'done_at'::timestamptz + interval '400 days'), 0, 'and it is never read again');

-- The scan (expire_results' statement) is an index range over due jobs only.
create function pg_temp.explain_lines() returns setof text language plpgsql as $f$
declare
  line text;
begin
  for line in execute 'explain select p.job_id from private.job_pipeline p where p.results_expire_at <= now()
                        order by p.results_expire_at limit 500 for update of p skip locked' loop
    return next line;
  end loop;
end
$f$;
set local enable_seqscan = off;
select matches((select string_agg(x, E'\n') from pg_temp.explain_lines() x),
  '(Index Scan using|Bitmap Index Scan on) job_pipeline_results_expire_at_idx[^\n]*\n\s+Index Cond: \(results_expire_at <= now\(\)\)',
  'the retention scan reads job_pipeline_results_expire_at_idx with the time as its index condition');

select * from finish();
rollback;
