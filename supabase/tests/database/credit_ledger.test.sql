-- Credits: the signup grant, grant_credits and set_plan (service role), the append-only chained
-- ledger and its guards (each with its own code), bounded amounts and balances, refunds exactly
-- once, and account deletion.
begin;
select plan(77);

-- =============================================================================================
-- Fixtures (as the owner)
-- =============================================================================================
update public.plans set max_active_jobs = 1000, starts_per_minute = 1000, is_metered = true;
update public.models set is_active = false;
insert into public.models (key, display_name, kie_model, mode, quality, credit_cost, min_plan, max_prompt_length, aspect_ratios)
values ('t-ledger-fast', 'Test Ledger Fast', 'test/ledger-fast', 'text-to-image', 'fast', 2, 'free', 500, '{1:1}');

-- =============================================================================================
-- Signup: a profile on the free plan with the free plan's welcome grant
-- =============================================================================================
update public.plans set signup_credits = 7 where id = 'free';
select isnt(tests.create_supabase_user('cl_alice'), null, 'user cl_alice signs up');
select isnt(tests.create_supabase_user('cl_bob'), null, 'user cl_bob signs up');
select results_eq(
  $$ select plan, credits from public.profiles where id = tests.get_supabase_uid('cl_alice') $$,
  $$ values ('free'::text, 7) $$,
  'a new user gets a profile on the free plan with plans.signup_credits');
select results_eq(
  $$ select kind, amount, balance_after, job_id, idempotency_key from public.credit_ledger where user_id = tests.get_supabase_uid('cl_alice') $$,
  $$ values ('grant'::text, 7, 7, null::uuid, 'system:signup'::text) $$,
  'the welcome credits are one grant in the ledger');

update public.plans set signup_credits = 0 where id = 'free';
select isnt(tests.create_supabase_user('cl_zero'), null, 'user cl_zero signs up');
select is(tests.footprint(tests.get_supabase_uid('cl_zero')), 'jobs=0 credits=0 ledger=0',
  'with no signup credits a new user starts at zero and an empty ledger');
update public.plans set signup_credits = 7 where id = 'free';

-- The auth service (GoTrue) inserts users as `supabase_auth_admin`, the owner of auth.users,
-- which has no rights on our tables; the profile, the grant and the deferred balance check must
-- all work for it.
select isnt(tests.sign_up_as_auth_service('cl_carol'), null, 'the auth service signs cl_carol up under its own role');
select is(tests.footprint(tests.get_supabase_uid('cl_carol')), 'jobs=0 credits=7 ledger=1', 'that user has the welcome grant');

-- Anonymous sign-ins get a profile but no welcome credits until they become permanent accounts
-- (so throwaway sessions cannot farm credits); converting grants them exactly once.
insert into auth.users (id, aud, role, is_anonymous, raw_user_meta_data)
values (gen_random_uuid(), 'authenticated', 'authenticated', true, '{"test_identifier": "cl_anon"}');
select is(tests.footprint(tests.get_supabase_uid('cl_anon')), 'jobs=0 credits=0 ledger=0',
  'an anonymous user starts with a profile and no credits');
update auth.users set is_anonymous = false, email = 'cl_anon@test.kiln.local' where id = tests.get_supabase_uid('cl_anon');
select results_eq(
  $$ select kind, amount, balance_after, idempotency_key from public.credit_ledger where user_id = tests.get_supabase_uid('cl_anon') $$,
  $$ values ('grant'::text, 7, 7, 'system:signup'::text) $$,
  'converting to a permanent account grants the welcome credits');
update auth.users set is_anonymous = true where id = tests.get_supabase_uid('cl_anon');
update auth.users set is_anonymous = false where id = tests.get_supabase_uid('cl_anon');
select is(tests.footprint(tests.get_supabase_uid('cl_anon')), 'jobs=0 credits=7 ledger=1', 'and only once');

-- =============================================================================================
-- grant_credits (service role)
-- =============================================================================================
create temp table entries (label text primary key, entry public.credit_ledger not null);
grant all on entries to public;

select tests.authenticate_as_service_role();
insert into entries select 'g1', public.grant_credits(tests.get_supabase_uid('cl_alice'), 50, 'Support: sorry', 'ticket-1');
select results_eq(
  $$ select (entry).kind, (entry).amount, (entry).balance_after, (entry).reason, (entry).idempotency_key from entries where label = 'g1' $$,
  $$ values ('grant'::text, 50, 57, 'Support: sorry'::text, 'ticket-1'::text) $$,
  'a positive grant is a grant entry chained onto the balance');
select is((select credits from public.profiles where id = tests.get_supabase_uid('cl_alice')), 57, 'the balance moved with it');

select tests.footprint(tests.get_supabase_uid('cl_alice')) as alice_after_grant \gset
select is((select (public.grant_credits(tests.get_supabase_uid('cl_alice'), 50, 'Support: sorry', 'ticket-1')).id),
  (select (entry).id from entries where label = 'g1'), 'the same key returns the original entry');
select is(tests.footprint(tests.get_supabase_uid('cl_alice')), :'alice_after_grant', 'and grants nothing twice');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), 60, 'Support: sorry', 'ticket-1') $$,
  'KL019', 'the same key for another amount: KL019');

insert into entries select 'bob-g1', public.grant_credits(tests.get_supabase_uid('cl_bob'), 5, 'Support', 'ticket-1');
select results_eq($$ select (entry).amount, (entry).balance_after from entries where label = 'bob-g1' $$, $$ values (5, 12) $$,
  'keys are per user: another user''s same key is a new grant');

insert into entries select 'adj', public.grant_credits(tests.get_supabase_uid('cl_alice'), -20, 'Correction: double grant');
select results_eq($$ select (entry).kind, (entry).amount, (entry).balance_after from entries where label = 'adj' $$,
  $$ values ('adjustment'::text, -20, 37) $$, 'a negative amount is an adjustment down');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), -38, 'Correction') $$,
  'KL020', 'an adjustment below zero: KL020');
select lives_ok($$ select public.grant_credits(tests.get_supabase_uid('cl_zero'), 3, 'Support') $$, 'a grant to a zero balance');
select lives_ok($$ select public.grant_credits(tests.get_supabase_uid('cl_zero'), -3, 'Correction') $$,
  'an adjustment down to exactly zero');
select is((select credits from public.profiles where id = tests.get_supabase_uid('cl_zero')), 0, 'the balance is exactly zero');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), 0, 'Nothing') $$,
  'KL025', 'a zero amount: KL025');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), null, 'Nothing') $$,
  'KL025', 'a null amount: KL025');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), 5, '  ') $$,
  'KL025', 'a blank reason: KL025');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), 5, null) $$,
  'KL025', 'no reason: KL025');
select throws_ok($$ select public.grant_credits(gen_random_uuid(), 5, 'Support') $$, 'KL025', null, 'an unknown user: KL025');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), 5, 'Support', '') $$,
  'KL027', 'an empty idempotency key: KL027');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), 5, 'Support', repeat('k', 201)) $$,
  'KL027', 'an idempotency key over 200 characters: KL027');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), 5, 'Support', 'system:signup') $$,
  'KL027', 'the system: key namespace is reserved for the database: KL027');
-- Amounts are bounded by a range test, never by arithmetic that can itself overflow (22003).
select tests.refused(format($$ select public.grant_credits(tests.get_supabase_uid('cl_alice'), %s, 'Bounds') $$, amount),
  'KL025', format('amount %s: KL025, not an integer overflow', amount))
  from (values (2147483647), (-2147483648), (1000001), (-1000001)) as bounds (amount);
select lives_ok($$ select public.grant_credits(tests.get_supabase_uid('cl_zero'), 1000000, 'Bounds') $$,
  'a grant of exactly 1,000,000 is accepted');
select lives_ok($$ select public.grant_credits(tests.get_supabase_uid('cl_zero'), -1000000, 'Bounds') $$,
  'an adjustment of exactly -1,000,000 is accepted');

-- Balances stop at 1,000,000,000 (KL032): a grant past the cap, or past the integer range, is
-- refused with its code instead of overflowing.
select isnt(tests.create_supabase_user('cl_rich'), null, 'user cl_rich signs up');
do $$
begin
  perform public.grant_credits(tests.get_supabase_uid('cl_rich'), -7, 'Start from zero');
  for i in 1..1000 loop
    perform public.grant_credits(tests.get_supabase_uid('cl_rich'), 1000000, 'Filling up to the cap');
  end loop;
end
$$;
select is((select credits from public.profiles where id = tests.get_supabase_uid('cl_rich')), 1000000000,
  'grants reach the cap exactly');
select * from tests.refused($$ select public.grant_credits(tests.get_supabase_uid('cl_rich'), 1, 'One more') $$,
  'KL032', 'a grant past the balance cap: KL032');
select tests.act_as_owner();
select * from tests.refused(
  $$ select private.post_ledger_entry(tests.get_supabase_uid('cl_rich'), 'grant', 2147483647, 'Overflow') $$,
  'KL032', 'an entry that would pass the integer range: KL032, not 22003');
select tests.authenticate_as_service_role();
select lives_ok($$ select public.grant_credits(tests.get_supabase_uid('cl_rich'), -1, 'Correction') $$,
  'at the cap a balance can still be adjusted down');

-- =============================================================================================
-- set_plan (service role)
-- =============================================================================================
select results_eq($$ select plan, credits from public.set_plan(tests.get_supabase_uid('cl_bob'), 'pro') $$,
  $$ values ('pro'::text, 12) $$, 'set_plan moves a user to another plan and returns the profile');
select is((select plan from public.profiles where id = tests.get_supabase_uid('cl_bob')), 'pro', 'the plan is stored');
select * from tests.refused($$ select public.set_plan(tests.get_supabase_uid('cl_bob'), 'platinum') $$,
  'KL025', 'an unknown plan: KL025');
select * from tests.refused($$ select public.set_plan(tests.get_supabase_uid('cl_bob'), null) $$,
  'KL025', 'no plan: KL025');
select throws_ok($$ select public.set_plan(gen_random_uuid(), 'paid') $$, 'KL025', null, 'an unknown user: KL025');
select is((select plan from public.profiles where id = tests.get_supabase_uid('cl_bob')), 'pro', 'refusals left the plan alone');
select tests.act_as_owner();

-- =============================================================================================
-- Jobs: one debit, at most one refund
-- =============================================================================================
create temp table jobs (label text primary key, job public.generation_jobs not null);
grant all on jobs to public;
select tests.authenticate_as('cl_alice');
insert into jobs select 'a1', j from public.start_generation(prompt => 'a ledger cat') j;
insert into jobs select 'a2', j from public.start_generation(prompt => 'a ledger dog') j;
select lives_ok($$ select public.cancel_generation((select (job).id from jobs where label = 'a1')) $$, 'a job is cancelled');
select tests.act_as_owner();
select results_eq(
  $$ select kind, amount, balance_after from public.credit_ledger
      where job_id = (select (job).id from jobs where label = 'a1') order by id $$,
  $$ values ('debit'::text, -2, 35), ('refund'::text, 2, 35) $$,
  'the cancelled job has one debit and one refund');
-- a2 was debited after a1 (35 - 2 = 33) and a1's refund came after that.
select is((select credits from public.profiles where id = tests.get_supabase_uid('cl_alice')), 35, 'balance: 37 - 2 - 2 + 2');

select tests.footprint(tests.get_supabase_uid('cl_alice')) as alice_after_refund \gset
select lives_ok($$ select private.refund_job((select (job).id from jobs where label = 'a1'), 'Refund again') $$,
  'refunding the job a second time is accepted');
select is(tests.footprint(tests.get_supabase_uid('cl_alice')), :'alice_after_refund', 'and does nothing');
select is(private.post_ledger_entry(tests.get_supabase_uid('cl_alice'), 'refund', 2, 'Sneaky refund', (select (job).id from jobs where label = 'a1')),
  null, 'a second refund entry for a job finds its (job_id, kind) key taken and is not written');
select is(tests.footprint(tests.get_supabase_uid('cl_alice')), :'alice_after_refund', 'and moves nothing');
select * from tests.refused($$ select private.refund_job((select (job).id from jobs where label = 'a2'), 'Early refund') $$,
  'KL031', 'refunding a job that has not failed: KL031');
select * from tests.refused($$ select private.refund_job(gen_random_uuid(), 'Refund of nothing') $$,
  'KL031', 'refunding an unknown job: KL031');
select throws_ok(
  $$ select private.post_ledger_entry(tests.get_supabase_uid('cl_alice'), 'debit', -2, 'Double charge', (select (job).id from jobs where label = 'a2')) $$,
  '23505', 'duplicate key value violates unique constraint "credit_ledger_one_entry_per_job_and_kind"',
  'a second debit entry for a job violates the unique (job_id, kind)');
select throws_ok(
  $$ select private.post_ledger_entry(tests.get_supabase_uid('cl_alice'), 'refund', 2, 'Refund of nothing') $$,
  '23514', 'new row for relation "credit_ledger" violates check constraint "credit_ledger_job_entries_name_a_job"',
  'a refund must name its job');
select throws_ok(
  $$ select private.post_ledger_entry(tests.get_supabase_uid('cl_alice'), 'adjustment', 0, 'Nothing at all') $$,
  '23514', 'new row for relation "credit_ledger" violates check constraint "credit_ledger_amount_sign"',
  'an entry must move the balance (debits down, grants and refunds up)');
select is(private.post_ledger_entry(tests.get_supabase_uid('cl_alice'), 'adjustment', -1000, 'Too much'), null,
  'post_ledger_entry returns null instead of going below zero');
select is(tests.footprint(tests.get_supabase_uid('cl_alice')), :'alice_after_refund', 'and wrote nothing');

-- =============================================================================================
-- Append-only (even for the owner)
-- =============================================================================================
select * from tests.refused($$ update public.credit_ledger set amount = 1000 where user_id = tests.get_supabase_uid('cl_alice') $$,
  'KL026', 'updating ledger entries: KL026');
select * from tests.refused($$ delete from public.credit_ledger where user_id = tests.get_supabase_uid('cl_alice') $$,
  'KL026', 'deleting ledger entries of a live account: KL026');

-- =============================================================================================
-- The chain and the deferred balance = ledger check
-- =============================================================================================
select is_empty(
  $$ select id from (select id, amount, balance_after, lag(balance_after) over (partition by user_id order by id) as previous
                       from public.credit_ledger
                      where user_id in (tests.get_supabase_uid('cl_alice'), tests.get_supabase_uid('cl_bob'))) l
      where balance_after <> coalesce(previous, 0) + amount $$,
  'every entry''s balance_after is the previous balance plus its amount');
select is((select credits from public.profiles where id = tests.get_supabase_uid('cl_alice')),
  (select sum(amount)::integer from public.credit_ledger where user_id = tests.get_supabase_uid('cl_alice')),
  'the balance equals the sum of the ledger');
select throws_ok(
  $$ insert into public.credit_ledger (user_id, kind, amount, balance_after, reason)
     values (tests.get_supabase_uid('cl_alice'), 'grant', 5, 100, 'Broken chain') $$,
  'KL029', null, 'an entry whose balance_after does not follow the chain: KL029');

-- Make the deferred checks fire at the end of each statement instead of at commit.
select lives_ok('set constraints all immediate', 'everything so far satisfies the deferred balance = ledger check');
-- (TRUNCATE refuses to run while trigger events are pending; there are none now.)
select * from tests.refused($$ truncate public.credit_ledger $$,
  'KL026', 'truncating the ledger: KL026');
select throws_ok(
  $$ update public.profiles set credits = credits + 100 where id = tests.get_supabase_uid('cl_alice') $$,
  'KL030', null, 'a balance changed without a ledger entry fails the deferred check: KL030');
select throws_ok(
  $$ insert into public.credit_ledger (user_id, kind, amount, balance_after, reason)
     select tests.get_supabase_uid('cl_alice'), 'grant', 5, p.credits + 5, 'Entry without balance'
       from public.profiles p where p.id = tests.get_supabase_uid('cl_alice') $$,
  'KL030', null, 'a chained ledger entry without moving the balance fails the deferred check: KL030');
select throws_ok(
  $$ update public.profiles set credits = -1 where id = tests.get_supabase_uid('cl_alice') $$,
  '23514', 'new row for relation "profiles" violates check constraint "profiles_credits_non_negative"',
  'a balance can never be negative');
set constraints all deferred;

-- =============================================================================================
-- Deleting an account removes its profile, jobs and ledger (and only those)
-- =============================================================================================
select tests.footprint(tests.get_supabase_uid('cl_bob')) as bob_before_delete \gset
select lives_ok($$ delete from auth.users where id = tests.get_supabase_uid('cl_alice') $$,
  'an account with jobs, debits and refunds can be deleted');
select is_empty($$ select 1 from public.profiles where id not in (select id from auth.users) $$, 'its profile is gone');
select is_empty($$ select 1 from public.generation_jobs where user_id not in (select id from auth.users) $$, 'its jobs are gone');
select is_empty($$ select 1 from public.credit_ledger where user_id not in (select id from auth.users) $$, 'its ledger is gone');
select is(tests.footprint(tests.get_supabase_uid('cl_bob')), :'bob_before_delete', 'other accounts are untouched');
select lives_ok('set constraints all immediate', 'the deferred checks pass after the deletion');

select * from finish();
rollback;
