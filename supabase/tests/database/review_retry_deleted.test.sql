-- A deleted job is gone for its owner: retrying it answers KL021 and starts nothing; a failed
-- job that was not deleted can still be retried.
begin;
select plan(4);

select tests.create_supabase_user('rd_user');
select tests.authenticate_as_service_role();
select public.grant_credits(tests.get_supabase_uid('rd_user'), 100, 'test credits');
select tests.authenticate_as('rd_user');
select (public.start_generation(prompt => 'a paper boat')).id as deleted_job \gset
select public.cancel_generation(:'deleted_job');
select public.delete_generation(:'deleted_job');
select (public.start_generation(prompt => 'a paper plane')).id as kept_job \gset
select public.cancel_generation(:'kept_job');

select throws_ok(format('select public.retry_generation(%L)', :'deleted_job'), 'KL021', null, 'retrying a deleted job: KL021');
select tests.act_as_owner();
select is((select count(*)::int from public.generation_jobs where retry_of = :'deleted_job'), 0, 'and no job was started');
select tests.authenticate_as('rd_user');
select is((public.retry_generation(:'kept_job')).retry_of, :'kept_job'::uuid, 'a failed job that was not deleted can be retried');
select tests.act_as_owner();
select is((select count(*)::int from public.credit_ledger where user_id = tests.get_supabase_uid('rd_user') and kind = 'debit'), 3,
  'only the retry was charged besides the two starts');

select * from finish();
rollback;
