-- The kiln-account tick's missing_secret alert names every Vault secret the pipeline needs: the
-- dispatch ones and the Storage API's project_url and service_role_key, says what waits, and
-- clears once all are set.
begin;
select plan(5);
\ir dispatch_fixture.sql

delete from vault.secrets where name in ('project_url', 'service_role_key');
select private.account_tick() as credit_check_sent \gset
select results_eq($$ select key, details -> 'secrets' from private.active_alerts $$,
  $$ values ('missing_secret'::text, '["project_url", "service_role_key"]'::jsonb) $$,
  'the Storage API''s secrets missing raise the alert, naming them');
select matches((select message from private.active_alerts where key = 'missing_secret'), 'Storage deletes .* wait',
  'and saying that Storage deletes wait');

do $$
begin
  perform vault.create_secret('https://project.example.test', 'project_url');
  perform vault.create_secret('test-service-role-key', 'service_role_key');
end
$$;
select private.account_tick() as credit_check_sent \gset
select is((select count(*)::int from private.active_alerts where key = 'missing_secret'), 0, 'all set: the alert clears');

delete from vault.secrets where name in ('kie_api_key', 'service_role_key');
select private.account_tick() as credit_check_sent \gset
select is((select details -> 'secrets' from private.active_alerts where key = 'missing_secret'), '["kie_api_key", "service_role_key"]'::jsonb,
  'a dispatch secret and a Storage one are named together');
select matches((select message from private.active_alerts where key = 'missing_secret'), 'Jobs wait',
  'and jobs waiting comes first');

select * from finish();
rollback;
