-- Job ids are version 7 UUIDs: the creation time in milliseconds, then random bits, so a new job's
-- entries land at the right edge of the job-id indexes (generation_jobs, job_pipeline, the ledger's
-- one-entry-per-job key) instead of on random pages. A start, a retry and a row inserted with the
-- column's default all get one.
begin;
select plan(9);

-- The id's first 48 bits: Unix time in milliseconds.
create function pg_temp.id_ms(id uuid) returns bigint language sql as $$
  select ('x' || replace(left(id::text, 13), '-', ''))::bit(48)::bigint
$$;

select tests.create_supabase_user('ids_user');
select tests.authenticate_as_service_role();
select public.grant_credits(tests.get_supabase_uid('ids_user'), 100, 'test credits');
select floor(extract(epoch from clock_timestamp()) * 1000)::bigint as before_ms \gset
select tests.authenticate_as('ids_user');
select (public.start_generation(prompt => 'a paper boat')).id as first_job \gset
select floor(extract(epoch from clock_timestamp()) * 1000)::bigint as after_ms \gset
select pg_sleep(0.002);
select (public.start_generation(prompt => 'a paper plane')).id as second_job \gset
select public.cancel_generation(:'first_job');
select pg_sleep(0.002);
select (public.retry_generation(:'first_job')).id as retry_job \gset
select tests.act_as_owner();

select is(substr(:'first_job', 15, 1), '7', 'a started job''s id is a version 7 UUID');
select ok(substr(:'first_job', 20, 1) in ('8', '9', 'a', 'b'), 'with the RFC 9562 variant bits');
select ok(pg_temp.id_ms(:'first_job') between :before_ms and :after_ms,
          'its first 48 bits are the start''s time in milliseconds');
select ok(:'second_job'::uuid > :'first_job'::uuid, 'a later start sorts after an earlier one');
select ok(substr(:'retry_job', 15, 1) = '7' and :'retry_job'::uuid > :'second_job'::uuid,
          'a retry gets a time-ordered id too');
select is((select count(*)::int from private.job_pipeline where job_id = :'first_job'), 1,
          'the pipeline row carries the same id');

-- The column's default, for rows written without create_generation_job (fixtures, operators).
select ok(pg_get_expr(d.adbin, d.adrelid) = 'private.uuid_v7()', 'generation_jobs.id defaults to private.uuid_v7()')
  from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
 where d.adrelid = 'public.generation_jobs'::regclass and a.attname = 'id';

-- The random part is random: no two of 10,000 ids made in the same few milliseconds collide.
select is((select count(distinct private.uuid_v7())::int from generate_series(1, 10000)), 10000,
          '10,000 ids, all distinct');
select ok(not has_function_privilege('authenticated', 'private.uuid_v7()', 'execute')
          and not has_function_privilege('anon', 'private.uuid_v7()', 'execute'),
          'the API roles cannot call it');

select * from finish();
rollback;
