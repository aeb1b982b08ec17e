-- Housekeeping purges net._http_response, cron.job_run_details and our request log past their
-- retention settings, and nothing younger.
begin;
select plan(2);
-- pg_cron's own runs recorded while this test runs would be past the retention too: keep them out
-- until the rollback.
lock table cron.job_run_details in exclusive mode;
\ir dispatch_fixture.sql

delete from net._http_response;
insert into net._http_response (id, status_code, created) values (900001, 200, '2029-12-31 23:59:59+00'), (900002, 200, '2030-01-01 00:59:00+00');
insert into cron.job_run_details (jobid, runid, command, status, start_time, end_time)
values (1, 900001, 'select 1', 'succeeded', '2029-12-20 00:00:00+00', '2029-12-20 00:00:01+00'),
       (1, 900002, 'select 1', 'succeeded', '2029-12-30 00:00:00+00', '2029-12-30 00:00:01+00');
create temp table jobs as select pg_temp.start_job('hk_user') as job_id;
insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms, resolved_at, outcome)
select job_id, 1, 'poll', 900001, '2029-11-01'::timestamptz, 5000, '2029-11-01'::timestamptz, 'report' from jobs
union all
select job_id, 1, 'poll', 900002, '2029-12-15', 5000, '2029-12-15', 'report' from jobs;

select is(private.housekeeping_tick('2030-01-01 01:00:00+00'),
  '{"net_responses": 1, "cron_runs": 1, "requests": 1, "late_results": 0, "orphaned_tokens": 0}'::jsonb,
  'one of each is past its retention (1 h, 7 days, 30 days)');
select results_eq(
  $$ select (select array_agg(id) from net._http_response), (select array_agg(runid) from cron.job_run_details where runid > 900000),
            (select array_agg(net_request_id) from private.requests where net_request_id > 900000) $$,
  $$ values (array[900002::bigint], array[900002::bigint], array[900002::bigint]) $$,
  'the younger rows stay');

select * from finish();
rollback;
