-- The error registry's promise for an app with no session (the anon key): the app's RPCs are
-- refused by Postgres with 42501 before any check runs, not with KL001; and a retry asked again
-- after the retry was deleted returns that same (deleted) retry and starts nothing.
begin;
select plan(7);

select tests.act_as_anon();
select throws_ok($$ select public.start_generation(prompt => 'a cat') $$, '42501', null, 'start_generation without a session: 42501');
select throws_ok($$ select public.retry_generation(gen_random_uuid()) $$, '42501', null, 'retry_generation without a session: 42501');
select throws_ok($$ select public.cancel_generation(gen_random_uuid()) $$, '42501', null, 'cancel_generation without a session: 42501');
select throws_ok($$ select public.delete_generation(gen_random_uuid()) $$, '42501', null, 'delete_generation without a session: 42501');
select throws_ok($$ select * from public.recent_prompts(5) $$, '42501', null, 'recent_prompts without a session: 42501');

select tests.act_as_owner();
select tests.create_supabase_user('rs_user');
select tests.authenticate_as('rs_user');
select (public.start_generation(prompt => 'a paper boat')).id as original \gset
select public.cancel_generation(:'original');
select (public.retry_generation(:'original')).id as retry \gset
select public.cancel_generation(:'retry');
select public.delete_generation(:'retry');
select is((select (r).deleted_at is not null and (r).id = :'retry'::uuid from public.retry_generation(:'original') r), true,
  'retrying again after the retry was deleted returns that retry, deleted');
select tests.act_as_owner();
select is((select count(*)::int from public.generation_jobs where user_id = tests.get_supabase_uid('rs_user')), 2,
  'and starts nothing');

select * from finish();
rollback;
