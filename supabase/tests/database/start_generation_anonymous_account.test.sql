-- An anonymous account gets no welcome credits until it signs up, so its start or retry refused
-- for credits is KL020 with a message, detail and hint that say to sign up (with the credits
-- signing up grants). The code is the same as a permanent account's, whose refusal is unchanged;
-- auth.users decides, so a token still claiming an anonymous account that has since signed up
-- hears the permanent account's refusal.
begin;
select plan(7);

update public.plans set signup_credits = 10 where id = 'free';
update public.models set credit_cost = 1 where key = 'imagen-fast';

-- guest: anonymous, nothing granted. gifted: anonymous, granted one start's credits by an operator.
-- joined: signed in anonymously, then signed up (welcome credits) and adjusted down to nothing.
-- member: a permanent account adjusted down to nothing.
insert into auth.users (id, aud, role, is_anonymous, raw_user_meta_data) values
  ('a70a0000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', true, '{"test_identifier": "anon_guest"}'),
  ('a70a0000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', true, '{"test_identifier": "anon_gifted"}'),
  ('a70a0000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', true, '{"test_identifier": "anon_joined"}');
update auth.users set is_anonymous = false, email = 'anon_joined@test.kiln.local'
 where id = 'a70a0000-0000-4000-8000-000000000003';
select tests.create_supabase_user('anon_member');
select tests.authenticate_as_service_role();
select public.grant_credits('a70a0000-0000-4000-8000-000000000002', 1, 'test credits');
select public.grant_credits('a70a0000-0000-4000-8000-000000000003', -10, 'test adjustment');
select public.grant_credits(tests.get_supabase_uid('anon_member'), -10, 'test adjustment');

-- Tokens as Supabase Auth issues them: an anonymous sign-in's carries is_anonymous true.
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', 'a70a0000-0000-4000-8000-000000000001', 'role', 'authenticated', 'is_anonymous', true)::text, true);
select is(tests.refusal_text($$ select public.start_generation(prompt => 'a paper boat') $$),
  'KL020: not enough credits: this is an anonymous account | Imagen Fast needs 1 credits, your balance is 0; an anonymous account gets its welcome credits when it signs up | Sign up (add an email or link a provider to this account) to get 10 free credits.',
  'an anonymous account without credits: KL020 that says to sign up for the welcome credits');

select tests.act_as_owner();
update public.plans set signup_credits = 0 where id = 'free';
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', 'a70a0000-0000-4000-8000-000000000001', 'role', 'authenticated', 'is_anonymous', true)::text, true);
select is(tests.refusal_text($$ select public.start_generation(prompt => 'a paper boat') $$),
  'KL020: not enough credits: this is an anonymous account | Imagen Fast needs 1 credits, your balance is 0; an anonymous account gets its welcome credits when it signs up | Sign up (add an email or link a provider to this account), then buy credits.',
  'when signing up grants nothing, the hint says so');
select tests.act_as_owner();
update public.plans set signup_credits = 10 where id = 'free';

select is(tests.footprint('anon_guest'), 'jobs=0 credits=0 ledger=0', 'the refusals wrote nothing');

-- An anonymous account with credits starts as any other; its retry refused for credits says to sign up.
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', 'a70a0000-0000-4000-8000-000000000002', 'role', 'authenticated', 'is_anonymous', true)::text, true);
select (public.start_generation(prompt => 'a paper plane')).id as failed_job \gset
select public.cancel_generation(:'failed_job');
select is((public.start_generation(prompt => 'a paper crane')).status, 'pending',
  'an anonymous account with credits starts a job');
select is(tests.refusal_text(format('select public.retry_generation(%L)', :'failed_job')),
  'KL020: not enough credits: this is an anonymous account | Imagen Fast needs 1 credits, your balance is 0; an anonymous account gets its welcome credits when it signs up | Sign up (add an email or link a provider to this account) to get 10 free credits.',
  'its retry without credits: the same refusal');

-- Permanent accounts: the refusal as it was, whatever the token still claims.
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', 'a70a0000-0000-4000-8000-000000000003', 'role', 'authenticated', 'is_anonymous', true)::text, true);
select is(tests.refusal_text($$ select public.start_generation(prompt => 'a paper boat') $$),
  'KL020: not enough credits | Imagen Fast needs 1 credits, your balance is 0 | Buy credits or choose a cheaper quality.',
  'a token issued before its account signed up: the permanent account''s refusal');
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', tests.get_supabase_uid('anon_member'), 'role', 'authenticated', 'is_anonymous', false)::text, true);
select is(tests.refusal_text($$ select public.start_generation(prompt => 'a paper boat') $$),
  'KL020: not enough credits | Imagen Fast needs 1 credits, your balance is 0 | Buy credits or choose a cheaper quality.',
  'a permanent account without credits: buy credits');

select * from finish();
rollback;
