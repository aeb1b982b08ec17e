-- A job may not list an upload of its owner's whose delete is decided (an open upload_expired
-- purge): the start is refused with KL013, names the image, and changes nothing. Otherwise the
-- job would reach KIE after its photo was deleted, fail, and be refunded. Through
-- start_generation and retry_generation; the lock that closes the race with the purge is raced
-- in supabase/tests/integration/storage-purge-concurrency.test.ts.
begin;
select plan(15);

\ir input_policy_fixture.sql
update private.storage_purges set done_at = now() where done_at is null;

-- Signed URLs from the local gateway, which the local settings accept.
create function pg_temp.upload_url(name text) returns text language sql as $$
  select 'http://127.0.0.1:54321/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/' || name || '?token=' || tests.storage_token()
$$;
create function pg_temp.purge(name text, done boolean default false) returns void language sql as $$
  insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at, done_at)
  values ('user-uploads', '5a5a0000-0000-4000-8000-00000000fa01/' || name, '5a5a0000-0000-4000-8000-00000000fa01',
          'upload_expired', now(), 'infinity', case when done then now() end)
$$;
select pg_temp.purge('old.jpg');
select pg_temp.purge('a b%.jpg');
select pg_temp.purge('x%20y.jpg');
select pg_temp.purge('gone.jpg', done => true);
-- Another user's upload with an open purge, under a name this user lists.
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
values ('user-uploads', '5a5a0000-0000-4000-8000-00000000fa02/old.jpg', '5a5a0000-0000-4000-8000-00000000fa02',
        'upload_expired', now(), 'infinity');
-- Objects now in the bucket, against purges decided a minute ago: the photo decided on (written
-- before the decision), and two written again since, one of them while the request sent for it
-- is still in pg_net's queue (it deletes by name, so it would delete the new photo too).
insert into storage.objects (bucket_id, name, created_at, updated_at) values
  ('user-uploads', '5a5a0000-0000-4000-8000-00000000fa01/decided.jpg', now() - interval '9 days', now() - interval '9 days'),
  ('user-uploads', '5a5a0000-0000-4000-8000-00000000fa01/again.jpg', now() - interval '9 days', now()),
  ('user-uploads', '5a5a0000-0000-4000-8000-00000000fa01/inflight.jpg', now() - interval '9 days', now());
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at, last_request_id, last_request_at)
select 'user-uploads', '5a5a0000-0000-4000-8000-00000000fa01/' || name, '5a5a0000-0000-4000-8000-00000000fa01', 'upload_expired',
       now() - interval '1 minute', 'infinity', request, now() - interval '30 seconds'
  from (values ('decided.jpg', null::bigint), ('again.jpg', null),
               ('inflight.jpg', net.http_delete('https://project.example.test/storage/v1/object/user-uploads'))) v (name, request);
grant execute on function pg_temp.upload_url(text) to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';
select tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid) as before \gset

select is(
  tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                       image_urls => array[pg_temp.upload_url('old.jpg')]) $$),
  'KL013: image 1: the upload is past its retention and is being deleted',
  'an upload with an open purge is refused, and the error names the image');
select is(
  tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                       image_urls => array[pg_temp.upload_url('new.jpg'), pg_temp.upload_url('a%20b%25.jpg')]) $$),
  'KL013: image 2: the upload is past its retention and is being deleted',
  'the name is matched percent-decoded, and the error names the second image');
select is(
  tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                       image_urls => array[pg_temp.upload_url('x%20y.jpg')]) $$),
  'KL013: image 1: the upload is past its retention and is being deleted',
  'and as written (an object named with a literal %20)');
select is(tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid), :'before', 'the refusals changed nothing');

select lives_ok(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
       image_urls => array[pg_temp.upload_url('new.jpg'), pg_temp.upload_url('gone.jpg'), pg_temp.upload_url('old.jpg.v2')]) $$,
  'an upload without a purge, one whose purge is done, and a name that only starts like a purged one are accepted');

select lives_ok(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
       image_urls => array['http://127.0.0.1:54321/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa02/old.jpg?token=' || tests.storage_token()]) $$,
  'a URL into another user''s folder is not refused: a start tells nobody about another user''s uploads');

select is(
  tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                       image_urls => array[pg_temp.upload_url('decided.jpg')]) $$),
  'KL013: image 1: the upload is past its retention and is being deleted',
  'the photo the purge decided on, still there, is refused');
select is(
  tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                       image_urls => array[pg_temp.upload_url('inflight.jpg')]) $$),
  'KL013: image 1: the upload is past its retention and is being deleted',
  'a photo uploaded again since, while a delete request for its name is still queued, is refused');
select lives_ok(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
       image_urls => array[pg_temp.upload_url('again.jpg')]) $$,
  'a photo uploaded again since, with no request that can still delete it, is accepted');

-- A retry replays the failed job's request: its photo has expired since.
select (public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                                image_urls => array[pg_temp.upload_url('later.jpg')])).id as failed_job \gset
select public.cancel_generation(:'failed_job');
reset role;
select pg_temp.purge('later.jpg');
set local role authenticated;
select is(
  tests.refusal(format($$ select public.retry_generation(%L) $$, :'failed_job')),
  'KL013: image 1: the upload is past its retention and is being deleted',
  'retry_generation is refused the same way');

-- The names a URL stands for.
reset role;
select is(private.upload_names_in_url('https://h.test/storage/v1/object/public/user-uploads/u/a%20b.png'),
  array['u/a%20b.png', 'u/a b.png'], 'a URL stands for its path as written and decoded');
select is(private.upload_names_in_url('https://h.test/storage/v1/object/sign/user-uploads/u/%FF.png?token=x'),
  array['u/%FF.png'], 'only as written when the decoded bytes are no UTF-8');
select is(private.upload_names_in_url('https://h.test/storage/v1/object/sign/generated-images/u/a.png'),
  '{}'::text[], 'nothing for a URL outside user-uploads');

-- Text-to-image jobs list no images: the trigger does not run for them.
select is((select tgname from pg_trigger where tgrelid = 'public.generation_jobs'::regclass
             and tgname = 'generation_jobs_refuse_expiring_uploads'
             and pg_get_triggerdef(oid) like '%WHEN ((cardinality(new.input_image_urls) > 0))%'),
  'generation_jobs_refuse_expiring_uploads', 'the check runs only for jobs with images');
select is(private.upload_names_in_url(null), null, 'and a null URL stands for nothing');

select * from finish();
rollback;
