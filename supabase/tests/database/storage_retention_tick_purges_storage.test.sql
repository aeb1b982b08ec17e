-- The scheduled job kiln-results-retention (private.results_retention_tick) runs the new parts:
-- a deleted account's folders and expired uploads are asked for in the same run as the result
-- purges, with no schedule of their own.
begin;
select plan(3);
\ir storage_purge_fixture.sql

select tests.sign_up_as_auth_service('rt_gone') as gone \gset
select pg_temp.put_object('generated-images', :'gone' || '/job/d/0.png');
select tests.delete_as_auth_service(:'gone');
select tests.create_supabase_user('rt_owner') as owner \gset
select pg_temp.put_object('user-uploads', :'owner' || '/old.png', '8 days');

select private.results_retention_tick(now());
select results_eq(
  format($$ select reason, attempts, last_request_id is not null from private.storage_purges
             where path in ('%s/', '%s/old.png') and bucket_id = case reason when 'upload_expired' then 'user-uploads' else 'generated-images' end
             order by reason $$, :'gone', :'owner'),
  $$ values ('account_deleted'::text, 1, true), ('upload_expired', 1, true) $$,
  'one run of the retention tick sends the folder request and the upload request');
select is((select command from private.ticks where name = 'kiln-results-retention'), 'select private.results_retention_tick()',
  'still one scheduled job, the same command');
select is((select count(*)::int from private.ticks where command ~ 'purge_account_storage|expire_uploads|purge_expired_uploads'), 0,
  'no schedule of their own');

select * from finish();
rollback;
