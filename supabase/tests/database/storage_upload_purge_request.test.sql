-- Expired uploads are deleted through the Storage API: the due ones in one DELETE to the
-- user-uploads endpoint with the service key; an upload found gone is done; one that stopped
-- being expired before the request (replaced, or a job started with it) is not deleted.
begin;
select plan(9);
\ir storage_purge_fixture.sql

select tests.create_supabase_user('upr_owner') as owner \gset
select pg_temp.put_object('user-uploads', :'owner' || '/' || n, '10 days') from unnest(array['a.png', 'b.png', 'c.png', 'd.png']) n;
select now() as t0 \gset
select is(private.expire_uploads(:'t0'), 4, 'four expired uploads recorded');

-- Before the purge visit: c.png is replaced, a job starts with d.png.
update storage.objects set updated_at = now() where bucket_id = 'user-uploads' and name = :'owner' || '/c.png';
select pg_temp.job_listing('upr_owner', 'pending',
  array['https://ref.supabase.co/storage/v1/object/sign/user-uploads/' || :'owner' || '/d.png?token=t']);

select is(private.purge_expired_uploads(:'t0'), 1, 'one request for all due uploads');
select results_eq(
  format($$ select (pg_temp.queued(p.last_request_id)).* from private.storage_purges p
             where p.path = '%s/a.png' and p.done_at is null $$, :'owner'),
  format($$ values ('DELETE'::text, 'https://project.example.test/storage/v1/object/user-uploads'::text,
                    '{"Authorization": "Bearer service-key-for-tests", "apikey": "service-key-for-tests", "Content-Type": "application/json"}'::jsonb,
                    '{"prefixes": ["%1$s/a.png", "%1$s/b.png"]}'::jsonb, 10000) $$, :'owner'),
  'the user-uploads endpoint, the service key, exactly the uploads still expired');
select is((select count(distinct last_request_id)::int from private.storage_purges where user_id = :'owner' and done_at is null), 1,
  'both rows point at the one request');
select is((select count(*)::int from private.storage_purges where path in (:'owner' || '/c.png', :'owner' || '/d.png')), 0,
  'the replaced upload and the one a job now lists are no longer to be deleted');
select results_eq(
  format($$ select attempts, next_attempt_at from private.storage_purges where path = '%s/a.png' $$, :'owner'),
  format($$ values (1, '%s'::timestamptz + interval '30 seconds') $$, :'t0'),
  'one attempt, next visit after 30 seconds');

select is(private.purge_expired_uploads(:'t0'::timestamptz + interval '29 seconds'), 0, 'nothing before the backoff ends');

-- Storage deleted a.png and answered; b.png survived (say, it was uploaded again at that
-- moment, and is old again): b.png is asked for again. A purge whose object is gone is done only
-- once its request is answered (storage_upload_purge_withdrawal.test.sql).
select pg_temp.storage_deletes('user-uploads', :'owner' || '/a.png');
insert into net._http_response (id, status_code, content, created)
select distinct last_request_id, 200, format('[{"name": "%s/a.png"}]', :'owner'), now()
  from private.storage_purges where user_id = :'owner' and done_at is null;
select is(private.purge_expired_uploads(:'t0'::timestamptz + interval '30 seconds'), 1, 'after the backoff, it asks again');
select results_eq(
  format($$ select substr(path, 38), done_at is not null, attempts, case when done_at is null then next_attempt_at end
              from private.storage_purges where user_id = '%s' order by 1 $$, :'owner'),
  format($$ values ('a.png', true, 1, null::timestamptz), ('b.png', false, 2, '%s'::timestamptz + interval '30 seconds' + interval '60 seconds') $$, :'t0'),
  'the upload found gone is done; the one still there is asked for again, and its backoff doubles');

select * from finish();
rollback;
