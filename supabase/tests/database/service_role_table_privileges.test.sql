-- The service role reads the balances, the ledger and the jobs but writes none of them directly
-- (only through the functions that keep them consistent): SELECT is its only table privilege.
-- Pinned as privileges, since a direct insert can also fail for an unrelated reason (the id
-- default) and so would not notice a stray grant.
begin;
select plan(3);

select table_privs_are('public', t, 'service_role', array['SELECT'], format('the service role only reads public.%s', t))
  from unnest(array['profiles', 'credit_ledger', 'generation_jobs']) t;

select * from finish();
rollback;
