-- Without the Vault secrets nothing can call the Storage API: every purge says why, waits a
-- minute and tries again; the tick itself never fails.
begin;
select plan(6);
\ir storage_purge_fixture.sql

select tests.sign_up_as_auth_service('ms_gone') as gone \gset
select pg_temp.put_object('generated-images', :'gone' || '/job/d/0.png');
select pg_temp.put_object('user-uploads', :'gone' || '/old.png', '30 days');
select tests.delete_as_auth_service(:'gone');
delete from vault.secrets where name = 'service_role_key';
select now() as t0 \gset

select is(private.purge_account_storage(:'t0'), 0, 'no folder request without the service key');
select private.expire_uploads(:'t0');
select is(private.purge_expired_uploads(:'t0'), 0, 'no upload request without the service key');
select results_eq(
  format($$ select reason, attempts, last_error is not null, next_attempt_at from private.storage_purges
             where user_id = '%s' and path in ('%1$s/', '%1$s/old.png') and bucket_id = case reason when 'upload_expired' then 'user-uploads' else 'generated-images' end
             order by reason $$, :'gone'),
  format($$ values ('account_deleted'::text, 0, true, '%1$s'::timestamptz + interval '1 minute'),
                   ('upload_expired', 0, true, '%1$s'::timestamptz + interval '1 minute') $$, :'t0'),
  'each records why, sends nothing and waits a minute');
select lives_ok(format($$ select private.results_retention_tick('%s'::timestamptz + interval '1 minute') $$, :'t0'),
  'the scheduled job runs without the secrets');
select is_empty($$ select 1 from private.alerts where key = 'retention_error' and cleared_at is null $$,
  'and none of its parts failed: missing secrets are a wait, not an error');

-- With the key back, the next visit sends.
select vault.create_secret('service-key-for-tests', 'service_role_key');
select is(private.purge_account_storage(:'t0'::timestamptz + interval '2 minutes'), 2, 'once the secret is set, the retry sends a request for each folder');

select * from finish();
rollback;
