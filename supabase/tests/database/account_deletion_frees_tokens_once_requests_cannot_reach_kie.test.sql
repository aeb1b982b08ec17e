-- Deleting an account gives back the rate token of an unanswered request only once that request
-- can no longer reach KIE. A createTask or recordInfo the deletion took back out of pg_net's
-- queue, or one pg_net's worker had already taken (it reaches KIE within its timeout, if at all),
-- frees its token one timeout plus one window after the delete. A request deleted while still in
-- pg_net's queue (the take-back passes over a row the worker holds) may be sent at any later
-- time: its token stays held, also through housekeeping, until the request has left the queue.
begin;
select plan(9);
\ir dispatch_fixture.sql

select pg_temp.start_job('dk_leaving', 'a polled harbour') as polled_job \gset
select pg_temp.start_job('dk_leaving', 'a sent harbour') as sent_job \gset
select pg_temp.start_job('dk_leaving', 'a queued harbour') as queued_job \gset

-- The first is accepted (pg_net sent it and stored KIE's answer) and polled: its recordInfo
-- waits in pg_net's queue.
delete from net.http_request_queue
 where id = (select net_request_id from private.requests where job_id = :'polled_job' and kind = 'create');
select pg_temp.respond(:'polled_job', 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', :'polled_job'));
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-01 00:10:00+00' where job_id = :'polled_job';
select private.poll_tick('2030-01-01 00:00:15+00');
select net_request_id as poll_net_id from private.requests where job_id = :'polled_job' and kind = 'poll' \gset
-- The second's createTask was taken by pg_net's worker and is on its way: no answer yet.
delete from net.http_request_queue
 where id = (select net_request_id from private.requests where job_id = :'sent_job' and kind = 'create');
-- The third's createTask still waits in the queue: the deletion takes it back.

select results_eq(
  $$ select bucket, count(*)::int from private.rate_slots where available_at = 'infinity' group by bucket order by bucket $$,
  $$ values ('create'::text, 2), ('poll', 1) $$,
  'two unanswered createTasks and one unanswered recordInfo hold their tokens');

select clock_timestamp() as deleting_from \gset
-- As Supabase Auth deletes a user: as supabase_auth_admin, which has no rights on private or net.
select tests.delete_as_auth_service(tests.get_supabase_uid('dk_leaving'));
select clock_timestamp() as deleted_by \gset

select ok(not exists (select 1 from net.http_request_queue where id = :'poll_net_id'),
  'the recordInfo still queued is taken back: it would poll a job that is gone');
select is((select count(*)::int from private.rate_slots where available_at = 'infinity'), 0,
  'the requests taken back and the one already sent give their tokens back');
select is(
  (select count(*)::int from private.rate_slots s
     cross join lateral (select make_interval(secs => (private.setting_number('kie.create_timeout_ms') / 1000
                                                       + private.setting_number('dispatch.create_window_seconds'))::double precision) as wait) w
    where s.bucket = 'create' and s.available_at between :'deleting_from'::timestamptz + w.wait and :'deleted_by'::timestamptz + w.wait),
  2,
  'createTask tokens: free one timeout plus one window after the delete, not one window after it');
select is(
  (select count(*)::int from private.rate_slots s
     cross join lateral (select make_interval(secs => (private.setting_number('kie.poll_timeout_ms') / 1000
                                                       + private.setting_number('poll.window_seconds'))::double precision) as wait) w
    where s.bucket = 'poll' and s.available_at between :'deleting_from'::timestamptz + w.wait and :'deleted_by'::timestamptz + w.wait),
  1,
  'the recordInfo token: free one timeout plus one window after the delete');
select is(private.housekeeping_tick(:'deleted_by'::timestamptz) -> 'orphaned_tokens', '0'::jsonb,
  'housekeeping finds no token left to free');

-- A request row deleted while its createTask is still in pg_net's queue (as when the take-back
-- passes over a row the worker holds): pg_net may still send it, so its token stays held.
select pg_temp.start_job('dk_other', 'a harbour kept') as other_job \gset
delete from private.requests where job_id = :'other_job' and kind = 'create';
select is((select count(*)::int from private.rate_slots where bucket = 'create' and available_at = 'infinity'), 1,
  'a request deleted while still queued keeps its token');
select is(private.housekeeping_tick(:'deleted_by'::timestamptz) -> 'orphaned_tokens', '0'::jsonb,
  'housekeeping leaves it held while the createTask waits in pg_net''s queue');
-- pg_net's worker takes it and sends it.
delete from net.http_request_queue where url like '%/api/v1/jobs/createTask';
select is(private.housekeeping_tick(:'deleted_by'::timestamptz) -> 'orphaned_tokens', '1'::jsonb,
  'once it has left the queue, housekeeping frees it as a token no request stands for');

select * from finish();
rollback;
