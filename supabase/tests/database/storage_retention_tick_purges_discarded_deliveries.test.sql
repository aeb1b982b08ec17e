-- The scheduled job kiln-results-retention (private.results_retention_tick) also empties the
-- folders of deliveries the jobs did not take: a delivery purge is asked for in the same run as
-- the result purges, in one request with the folder's names, and a folder already empty is done
-- without one.
begin;
select plan(3);
\ir storage_purge_fixture.sql

select tests.create_supabase_user('rt_delivery_owner') as owner \gset
select gen_random_uuid() as job \gset
select pg_temp.put_object('generated-images', :'owner' || '/' || :'job' || '/lost-1/0.png');
select pg_temp.put_object('generated-images', :'owner' || '/' || :'job' || '/lost-1/1.png');
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
values ('generated-images', :'owner' || '/' || :'job' || '/lost-1/', :'owner', 'delivery_discarded', now(), now()),
       ('generated-images', :'owner' || '/' || :'job' || '/lost-2/', :'owner', 'delivery_discarded', now(), now());

select private.results_retention_tick(now());
select results_eq(
  format($$ select split_part(path, '/', 3), attempts, last_request_id is not null, done_at is not null
              from private.storage_purges where reason = 'delivery_discarded' and user_id = '%s' order by path $$, :'owner'),
  $$ values ('lost-1'::text, 1, true, false), ('lost-2', 0, false, true) $$,
  'one run sends the request for the folder with images and finishes the empty one');
select is(
  (select convert_from(q.body, 'UTF8')::jsonb from net.http_request_queue q
    where q.id = (select p.last_request_id from private.storage_purges p where p.path = :'owner' || '/' || :'job' || '/lost-1/')),
  jsonb_build_object('prefixes', jsonb_build_array(:'owner' || '/' || :'job' || '/lost-1/0.png', :'owner' || '/' || :'job' || '/lost-1/1.png')),
  'the request names the folder''s objects');
select is((select count(*)::int from private.ticks where command ~ 'purge_discarded_deliveries'), 0,
  'no schedule of its own');

select * from finish();
rollback;
