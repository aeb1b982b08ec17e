-- The purges one Storage delete carried share that request: the next request that carries them
-- reads pg_net's answer to it once, not once per purge (a request with no answer costs a walk over
-- every answer since it was sent). Each purge still records how its own previous request failed.
begin;
select plan(4);
\ir storage_purge_fixture.sql

select tests.create_supabase_user('pr_one') as one \gset

-- 300 deleted jobs with an image left each, due again: 150 carried by a request that got no
-- answer, 150 by one the Storage API refused.
create temporary table folders as
  select private.uuid_v7() as job_id, :'one'::uuid as user_id, case when g <= 150 then 900001 else 900002 end as previous
    from generate_series(1, 300) g;
select pg_temp.deleted_jobs('pr_one', array(select job_id from folders));
insert into storage.objects (bucket_id, name) select 'generated-images', f.user_id || '/' || f.job_id || '/0.png' from folders f;
insert into net._http_response (id, status_code, content, created)
values (900002, 503, 'storage unavailable', now() - interval '10 minutes');
insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at, attempts, last_request_id, last_request_at)
select f.job_id, f.user_id, 'deleted', now() - interval '1 hour', now() - interval '1 minute', 1, f.previous,
       now() - interval '10 minutes'
  from folders f;

select coalesce(seq_scan, 0) + coalesce(idx_scan, 0) as scans_before
  from pg_stat_xact_all_tables where relid = 'net._http_response'::regclass \gset
select is(private.purge_results(now(), 50), 1, '300 due folders: one request');
select cmp_ok((select coalesce(seq_scan, 0) + coalesce(idx_scan, 0) from pg_stat_xact_all_tables
                where relid = 'net._http_response'::regclass) - :scans_before, '<=', 2::bigint,
  'pg_net''s answers are read once per previous request, not once per purge');
select results_eq(
  $$ select f.previous, p.last_error, count(*)::int from private.result_purges p join folders f using (job_id)
      group by 1, 2 order by 1 $$,
  $$ values (900001, 'the last delete request got no answer (pg_net lost it)', 150),
            (900002, 'the Storage API answered the last delete request with 503: storage unavailable', 150) $$,
  'each purge records how its own previous request failed');
select is((select count(*)::int from private.result_purges p join folders f using (job_id)
            where p.attempts = 2 and p.last_request_at = now()), 300,
  'and records the new request');

select * from finish();
rollback;
