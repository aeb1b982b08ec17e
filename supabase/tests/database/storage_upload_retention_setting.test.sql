-- uploads.retention_days: 7 by default, a whole number of days from 1 to 3650; anything else is
-- refused with KL053 and changes nothing; the walk reads it on each run. The deleted accounts'
-- watch (storage.deleted_account_watch_seconds) is checked the same way.
begin;
select plan(14);
\ir storage_purge_fixture.sql

select is(private.setting('uploads.retention_days'), '7'::jsonb, 'uploads are kept 7 days by default');

create temporary table bad_values (value jsonb) on commit drop;
insert into bad_values values ('0'), ('3651'), ('7.5'), ('-1'), ('"7"'), ('null'), ('[7]');
create function pg_temp.refused(v jsonb) returns text language plpgsql as $$
begin
  update private.settings set value = v where key = 'uploads.retention_days';
  return 'accepted';
exception when others then
  return sqlstate;
end
$$;
select is((select array_agg(pg_temp.refused(value) order by value::text) from bad_values), array_fill('KL053'::text, array[7]),
  'zero, too many days, fractions, negatives, strings, null and arrays are refused with KL053');
select is(private.setting('uploads.retention_days'), '7'::jsonb, 'a refused value changes nothing');
select throws_ok($$ update private.settings set value = '0' where key = 'uploads.retention_days' $$, 'KL053', 'invalid setting',
  'the refusal names the code');
select lives_ok($$ update private.settings set value = '3650' where key = 'uploads.retention_days' $$, 'the upper bound is accepted');
select lives_ok($$ update private.settings set value = '1' where key = 'uploads.retention_days' $$, 'the lower bound is accepted');

-- The setting moves the cutoff.
select pg_temp.storage_deletes('user-uploads', '%');
select tests.create_supabase_user('rs_owner') as owner \gset
select pg_temp.put_object('user-uploads', :'owner' || '/ten-days.png', '10 days');
update private.settings set value = '30' where key = 'uploads.retention_days';
select is(private.expire_uploads(now()), 0, 'kept 30 days: a 10-day-old upload stays');
update private.settings set value = '9' where key = 'uploads.retention_days';
select is(private.expire_uploads(now()), 1, 'kept 9 days: it expires');
-- Without the setting nothing expires: the walk records nothing, and the purge recorded above
-- is withdrawn at its visit instead of being sent.
delete from private.settings where key = 'uploads.retention_days';
update private.upload_sweep set after_name = null, pass_started_at = null;
select is(private.expire_uploads(now()), 0, 'without the setting the walk records nothing');
select is(private.purge_expired_uploads(now()), 0, 'and the purge sends no request');
select is((select count(*)::int from private.storage_purges where user_id = :'owner' and done_at is null), 0,
  'the open purge of the upload is withdrawn');

-- The deleted accounts' watch is checked the same way: whole seconds, up to a week.
select throws_ok($$ update private.settings set value = '"an hour"' where key = 'storage.deleted_account_watch_seconds' $$,
  'KL053', 'invalid setting', 'the deleted accounts'' watch refuses a string');
select throws_ok($$ update private.settings set value = '604801' where key = 'storage.deleted_account_watch_seconds' $$,
  'KL053', 'invalid setting', 'and more than a week');
select lives_ok($$ update private.settings set value = '0' where key = 'storage.deleted_account_watch_seconds' $$,
  'no watch at all is accepted');

select * from finish();
rollback;
