-- uploads.walk_per_run sets how many user-uploads names each run of the walk reads: the retention
-- tick's runs and a call without max_objects use it, 1000 while the row is missing. A whole number
-- from 100 to 20000; anything else is refused with KL053 and changes nothing. An operator's own
-- call with max_objects reads exactly that many.
begin;
select plan(11);
\ir storage_purge_fixture.sql

select is(private.setting('uploads.walk_per_run'), '1000'::jsonb, 'the walk reads 1000 names a run by default');

create temporary table bad_values (value jsonb) on commit drop;
insert into bad_values values ('99'), ('20001'), ('150.5'), ('0'), ('"1000"'), ('null');
create function pg_temp.refused(v jsonb) returns text language plpgsql as $$
begin
  update private.settings set value = v where key = 'uploads.walk_per_run';
  return 'accepted';
exception when others then
  return sqlstate;
end
$$;
select is((select array_agg(pg_temp.refused(value) order by value::text) from bad_values), array_fill('KL053'::text, array[6]),
  'too few, too many, fractions, zero, strings and null are refused with KL053');
select is(private.setting('uploads.walk_per_run'), '1000'::jsonb, 'a refused value changes nothing');
select lives_ok($$ update private.settings set value = '20000' where key = 'uploads.walk_per_run' $$, 'the upper bound is accepted');

-- Only this file's uploads in the bucket: 1001 expired ones, in name order 0000 to 1000.
select pg_temp.storage_deletes('user-uploads', '%');
select tests.create_supabase_user('wp_owner') as owner \gset
select pg_temp.put_object('user-uploads', format('%s/%s.png', :'owner', lpad(g::text, 4, '0')), '10 days')
  from generate_series(0, 1000) g;
select now() as t0 \gset

update private.settings set value = '100' where key = 'uploads.walk_per_run';
select private.results_retention_tick(:'t0');
select is((select after_name from private.upload_sweep), :'owner' || '/0099.png', 'a tick''s run reads walk_per_run names');
select is((select count(*)::int from private.storage_purges where user_id = :'owner' and reason = 'upload_expired'), 100,
  'and records a purge for each expired one');

update private.settings set value = '850' where key = 'uploads.walk_per_run';
select is(private.expire_uploads(:'t0'), 850, 'a call without max_objects reads the setting too');
select is(private.expire_uploads(:'t0', 3), 3, 'a call with max_objects reads exactly that many');

-- Without the row: 1000 a run. The walk starts over and stops one short of the end.
delete from private.settings where key = 'uploads.walk_per_run';
update private.upload_sweep set after_name = null, pass_started_at = null;
select private.expire_uploads(:'t0');
select is((select after_name from private.upload_sweep), :'owner' || '/0999.png', 'without the row a run reads 1000 names');
select private.expire_uploads(:'t0');
select is((select after_name from private.upload_sweep), null, 'and the next run reaches the end of the bucket');
select is((select count(*)::int from private.storage_purges where user_id = :'owner' and reason = 'upload_expired'), 1001,
  'every upload was found once');

select * from finish();
rollback;
