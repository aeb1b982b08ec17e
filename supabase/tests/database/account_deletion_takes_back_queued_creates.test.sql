-- Deleting an account takes its createTasks that pg_net has not sent yet back out of the queue:
-- the deleted user's prompt and photo never reach KIE (a stalled worker would have sent them
-- later, and KIE would have billed the tasks). Other accounts' requests, and requests that are
-- not ours, stay queued.
begin;
select plan(4);
\ir dispatch_fixture.sql

select pg_temp.start_job('wd_leaving', 'a quiet harbour') as leaving_job \gset
select pg_temp.start_job('wd_leaving', 'a second harbour') as leaving_second_job \gset
select pg_temp.start_job('wd_staying', 'a busy harbour') as staying_job \gset
select net.http_get('https://elsewhere.test/not-ours') as other_request \gset

create temp table queued_creates as
  select r.job_id, r.net_request_id
    from private.requests r join net.http_request_queue nq on nq.id = r.net_request_id
   where r.kind = 'create';
select is((select count(*)::int from queued_creates), 3, 'three createTasks wait in pg_net''s queue');

select lives_ok($$ delete from auth.users where id = tests.get_supabase_uid('wd_leaving') $$,
  'the account is deleted while its createTasks wait');
select results_eq(
  $$ select q.job_id from queued_creates q join net.http_request_queue nq on nq.id = q.net_request_id $$,
  format('values (%L::uuid)', :'staying_job'),
  'only the other account''s createTask is still queued');
select ok(exists (select 1 from net.http_request_queue where id = :'other_request'),
  'a request that is not ours stays queued');

select * from finish();
rollback;
