-- A Storage delete takes up to 1000 object names from any folders, so one request of the result
-- purge carries as many due job folders as fit, and each purge it carries records it. A run sends
-- at most max_jobs requests. One request per folder deleted about 50 jobs' images a minute, fewer
-- than the create budget completes (108), so a busy project's expired images piled up.
begin;
select plan(8);
\ir storage_purge_fixture.sql

select tests.create_supabase_user('ps_one');
select tests.create_supabase_user('ps_two');

-- Deleted jobs with `size` images in each folder, and their due purges as delete_generation
-- writes them.
create temporary table folders (job_id uuid primary key, user_id uuid, size integer, queued_at timestamptz);
create function pg_temp.due_folders(who text, n integer, size integer, queued_at timestamptz)
returns void
language sql
as $$
  insert into folders select private.uuid_v7(), tests.get_supabase_uid(who), size, queued_at from generate_series(1, n);
  select pg_temp.deleted_jobs(who, array(select f.job_id from folders f where f.queued_at = due_folders.queued_at
                                           and f.user_id = tests.get_supabase_uid(who)));
  insert into storage.objects (bucket_id, name)
  select 'generated-images', f.user_id || '/' || f.job_id || '/' || i || '.png'
    from folders f, generate_series(0, f.size - 1) i where f.user_id = tests.get_supabase_uid(who) and f.queued_at = due_folders.queued_at;
  insert into private.result_purges (job_id, user_id, reason, requested_at, next_attempt_at)
  select f.job_id, f.user_id, 'deleted', f.queued_at, f.queued_at from folders f
   where f.user_id = tests.get_supabase_uid(who) and f.queued_at = due_folders.queued_at;
$$;

-- 300 folders of two users, 3 images each: 900 names, one request.
select pg_temp.due_folders('ps_one', 150, 3, now() - interval '2 minutes');
select pg_temp.due_folders('ps_two', 150, 3, now() - interval '2 minutes');
select is(private.purge_results(now(), 50), 1, '300 due folders with 900 images: one request');
select is((select count(distinct last_request_id)::int from private.result_purges p join folders f using (job_id)
            where p.attempts = 1 and p.last_request_at = now()), 1,
  'every one of the 300 purges records that request');
select is((select count(*)::int from private.result_purges p join folders f using (job_id) where p.attempts = 1), 300,
  'and counts it as an attempt');
select results_eq(
  $$ select jsonb_array_length(b.body -> 'prefixes'),
            (select count(distinct split_part(n, '/', 1))::int from jsonb_array_elements_text(b.body -> 'prefixes') n)
       from pg_temp.queued((select max(last_request_id) from private.result_purges)) b $$,
  $$ values (900, 2) $$,
  'the request names the 900 images, of both users');

-- Four folders of 400 images: two fit in a request (800 names), a third does not.
delete from net.http_request_queue;
select pg_temp.due_folders('ps_one', 4, 400, now() - interval '1 minute');
select is(private.purge_results(now() + interval '1 second', 1), 1, 'max_jobs 1: one request');
select is((select jsonb_array_length(b.body -> 'prefixes') from pg_temp.queued((select max(last_request_id) from private.result_purges)) b),
  800, 'with the two folders whose names fit in 1000');
select is((select count(*)::int from private.result_purges p join folders f using (job_id) where f.size = 400 and p.attempts = 0), 2,
  'the other two wait for the next run, not attempted');
select is(private.purge_results(now() + interval '2 seconds', 5), 1, 'the next run sends them, again two in one request');

select * from finish();
rollback;
