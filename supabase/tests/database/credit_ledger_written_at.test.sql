-- A ledger entry is stamped when it is written, not when its transaction began: a transaction
-- that began before another one's entry (a tick that refunds a job after the user's next start
-- committed) must not date its own later entry before that one.
begin;
select plan(2);

select tests.create_supabase_user('lw_user');
select now() as began \gset
select pg_sleep(0.05);
select tests.authenticate_as_service_role();
select (public.grant_credits(tests.get_supabase_uid('lw_user'), 5, 'test credits')).id as grant_id \gset
select tests.act_as_owner();

select ok((select created_at from public.credit_ledger where id = :grant_id) > :'began'::timestamptz,
  'an entry written 50 ms into its transaction is not dated at the transaction''s start');
select is((select count(*)::int from public.credit_ledger a join public.credit_ledger b
            on a.user_id = b.user_id and a.id < b.id and a.created_at > b.created_at
          where a.user_id = tests.get_supabase_uid('lw_user')), 0,
  'for the user, created_at never goes down as id goes up');

select * from finish();
rollback;
