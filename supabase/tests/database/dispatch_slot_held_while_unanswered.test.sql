-- A rate token stays taken for as long as its request is unanswered (it may wait in pg_net's
-- queue well past a window), and one window past the answer. A token whose request was never
-- logged comes back after a window, a request deleted unanswered (its account deleted) gives its
-- token back without waiting for housekeeping, and housekeeping frees held tokens no request
-- stands for.
begin;
select plan(16);
\ir dispatch_fixture.sql

-- recordInfo (1 s window): one poll token left, taken by a poll queued at 00:00:00 and unanswered.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'poll';
update private.rate_slots set available_at = '-infinity' where bucket = 'poll' and slot = 1;
select is(private.take_tokens('poll', 1, '2030-01-01 00:00:00+00'), 1, 'the poll takes the last recordInfo token');
select pg_temp.start_job('hu_user') as job_id \gset
insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms)
values (:'job_id', 1, 'poll', -1, '2030-01-01 00:00:00+00', 5000);
select is(private.take_tokens('poll', 1, '2030-01-01 00:00:05+00'), 0,
  'five windows later the poll is still unanswered: its token is still taken');
update private.requests set resolved_at = '2030-01-01 00:00:06+00', outcome = 'ok' where job_id = :'job_id' and kind = 'poll';
select is(private.take_tokens('poll', 1, '2030-01-01 00:00:06.9+00'), 0, 'answered at 00:00:06: still taken just before a window past it');
select is(private.take_tokens('poll', 1, '2030-01-01 00:00:07+00'), 1, 'and free one window past the answer');

-- createTask (10 s window): a token taken for a request that is never logged is not held.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
update private.rate_slots set available_at = '-infinity' where bucket = 'create' and slot = 1;
select is(private.take_tokens('create', 1, '2030-01-01 00:00:00+00'), 1, 'a create token is taken');
select is(private.take_tokens('create', 1, '2030-01-01 00:00:10+00'), 1, 'no request was logged with it: back after one window');

-- A resolution logged at the request's own time still releases its token, a window after the take.
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
update private.rate_slots set available_at = '-infinity' where bucket = 'create' and slot = 1;
select is(private.take_tokens('create', 1, '2030-01-01 00:01:00+00'), 1, 'a create token is taken at 00:01:00');
insert into private.requests (job_id, attempt, kind, net_request_id, sent_at, timeout_ms)
values (:'job_id', 1, 'create', -2, '2030-01-01 00:01:00+00', 5000);
select is((select create_tokens_held from private.dispatch_rate), 1, 'the operator view counts it held');
update private.requests set resolved_at = sent_at, outcome = 'ok' where net_request_id = -2;
select is((select available_at from private.rate_slots where bucket = 'create' and slot = 1), '2030-01-01 00:01:10+00'::timestamptz,
  'resolved with the time it was sent: free one window after it, not held for good');
select is((select create_tokens_held from private.dispatch_rate), 0, 'and no longer counted held');

-- Housekeeping: held tokens beyond the unresolved requests of their bucket are freed.
update private.requests set resolved_at = null, outcome = null where job_id = :'job_id' and kind = 'poll';
update private.rate_slots set available_at = 'infinity' where bucket = 'poll' and slot in (1, 2, 3);
select is(private.housekeeping_tick('2030-01-01 00:01:00+00') -> 'orphaned_tokens', '2'::jsonb,
  'three poll tokens held for one unanswered poll: two are freed');
select is((select count(*)::int from private.rate_slots where bucket = 'poll' and available_at = 'infinity'), 1,
  'the unanswered poll keeps its token');
select is((select count(*)::int from private.rate_slots where bucket = 'poll' and available_at = '2030-01-01 00:01:01+00'), 2,
  'the freed ones come back one window after housekeeping');

-- An account deleted while its createTask is unanswered: the deletion takes it back out of
-- pg_net's queue, the cascade deletes the request, and the token comes back without waiting for
-- housekeeping (when: account_deletion_frees_tokens_once_requests_cannot_reach_kie).
update private.rate_slots set available_at = '-infinity' where bucket = 'create';
select pg_temp.start_job('hu_leaving') as leaving_job \gset
select is((select count(*)::int from private.rate_slots where bucket = 'create' and available_at = 'infinity'), 1,
  'the start''s createTask, unanswered, holds a create token');
delete from auth.users where id = tests.get_supabase_uid('hu_leaving');
select is((select count(*)::int from private.rate_slots where bucket = 'create' and available_at = 'infinity'), 0,
  'deleting the account gives the token back');
select is((select count(*)::int from private.rate_slots where bucket = 'create' and available_at > clock_timestamp()), 1,
  'free at a time to come, not at once');

select * from finish();
rollback;
