-- An upload purge whose upload stopped being expired (replaced under the same name) after its
-- delete request was queued is withdrawn only once that request is settled: while it waits in
-- pg_net's queue, or left it less than a minute ago unanswered, it may still delete the name, so
-- the purge stays open (and a start listing the photo is refused) and no new request is sent.
-- Likewise a purge whose upload is gone is done only once its request is settled.
begin;
select plan(12);
\ir storage_purge_fixture.sql

select tests.create_supabase_user('upw_owner') as owner \gset
select public.grant_credits(:'owner', 100, 'test credits');
select pg_temp.put_object('user-uploads', :'owner' || '/r.png', '10 days');
select now() as t0 \gset
select is(private.expire_uploads(:'t0'), 1, 'the old upload is recorded');
select is(private.purge_expired_uploads(:'t0'), 1, 'its delete request is queued');
select last_request_id as r1 from private.storage_purges where path = :'owner' || '/r.png' and done_at is null \gset

-- The owner replaces the photo under the same name while the request waits in pg_net's queue.
update storage.objects set updated_at = now() where bucket_id = 'user-uploads' and name = :'owner' || '/r.png';
select is(private.purge_expired_uploads(:'t0'::timestamptz + interval '30 seconds'), 0, 'no request for an upload no longer expired');
select results_eq(
  format($$ select attempts, last_request_id, next_attempt_at from private.storage_purges where path = '%s/r.png' and done_at is null $$, :'owner'),
  format($$ values (1, %s::bigint, '%s'::timestamptz + interval '60 seconds') $$, :'r1', :'t0'),
  'kept open while its queued request can still delete the name; visited again 30 s later');

select tests.authenticate_as('upw_owner');
select is(
  tests.refusal(format($$ select public.start_generation(
      template_id => (select id from public.templates where is_active and not is_premium and min_images <= 1 and max_images >= 1 order by name limit 1),
      image_urls => array['http://127.0.0.1:54321/storage/v1/object/sign/user-uploads/%s/r.png?token=t']) $$, :'owner')),
  'KL013: image 1: the upload is past its retention and is being deleted',
  'meanwhile a start with the photo is refused');
select tests.act_as_owner();

-- The request is answered: the next visit withdraws the decision.
insert into net._http_response (id, status_code, content, created) values (:r1, 200, '[]', now());
select is(private.purge_expired_uploads(:'t0'::timestamptz + interval '60 seconds'), 0, 'still no request');
select is((select count(*)::int from private.storage_purges where path = :'owner' || '/r.png' and done_at is null), 0,
  'withdrawn once its request is answered');

-- Deleted (by the owner, or by an earlier request) while the last request is still queued: not
-- done until that request is settled, since it would delete a photo uploaded again under the name.
select pg_temp.put_object('user-uploads', :'owner' || '/s.png', '10 days');
select private.expire_uploads(:'t0'::timestamptz + interval '2 minutes');
select private.purge_expired_uploads(:'t0'::timestamptz + interval '2 minutes');
select pg_temp.storage_deletes('user-uploads', :'owner' || '/s.png');
select private.purge_expired_uploads(:'t0'::timestamptz + interval '3 minutes');
select is((select done_at from private.storage_purges where path = :'owner' || '/s.png'), null,
  'gone while its request is queued: not done yet');
insert into net._http_response (id, status_code, content, created)
select last_request_id, 200, '[]', :'t0'::timestamptz + interval '2 minutes 1 second' from private.storage_purges where path = :'owner' || '/s.png';
select private.purge_expired_uploads(:'t0'::timestamptz + interval '4 minutes');
select isnt((select done_at from private.storage_purges where path = :'owner' || '/s.png'), null, 'done once it is answered');

-- When a request counts as settled.
select net.http_delete('https://project.example.test/queued') as queued \gset
select is(
  array[private.storage_request_settled(null, now(), now()),
        private.storage_request_settled(:queued, now() - interval '1 hour', now()),
        private.storage_request_settled(-1, now() - interval '59 seconds', now()),
        private.storage_request_settled(-1, now() - interval '61 seconds', now())],
  array[true, false, false, true],
  'none sent: settled; still queued: not, however old; out of the queue unanswered: not for a minute, then settled');
select is(private.storage_request_settled(:r1, now(), now()), true, 'answered: settled');
insert into net._http_response (id, timed_out, error_msg, created) values (-2, true, 'Timeout of 10000 ms reached', now());
select is(array[private.storage_request_settled(-2, now() - interval '10 seconds', now()),
                private.storage_request_settled(-2, now() - interval '61 seconds', now())],
  array[false, true], 'timed out: not settled for a minute (the Storage server may still be deleting), then settled');

select * from finish();
rollback;
