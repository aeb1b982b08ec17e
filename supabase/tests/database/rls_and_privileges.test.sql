-- Who sees and does what: the read matrix of every table for anon, two users and the service
-- role; no direct writes by the API roles; execute privileges of every function; RLS on every
-- table; the Realtime publication.
begin;
select plan(98);

-- =============================================================================================
-- Fixtures (as the owner): only our own catalog rows are active/published in this transaction.
-- =============================================================================================
update public.plans set max_active_jobs = 1000, starts_per_minute = 1000, is_metered = true;
update public.plans set signup_credits = 10 where id = 'free';

update public.models set is_active = false;
insert into public.models (key, display_name, kie_model, mode, quality, credit_cost, min_plan, max_prompt_length, aspect_ratios, is_active)
values ('t-rls-fast', 'Test RLS Fast', 'test/rls-fast', 'text-to-image', 'fast', 1, 'free', 500, '{1:1}', true),
       ('t-rls-hidden', 'Test RLS Hidden', 'test/rls-hidden', 'text-to-image', 'standard', 1, 'free', 500, '{1:1}', false);

update public.styles set is_active = false;
insert into public.styles (key, name, prompt_fragment, is_active)
values ('t-rls-on', 'On', 'on', true), ('t-rls-off', 'Off', 'off', false);

update public.templates set is_active = false, published_at = null;
insert into public.templates (id, name, category, prompt_template, is_active, published_at) values
  ('5a5a0000-0000-4000-8000-0000000000a1', 'Published', 'test', 'Published', true, null),
  ('5a5a0000-0000-4000-8000-0000000000a2', 'Withdrawn', 'test', 'Withdrawn', false, now() - interval '1 day'),
  ('5a5a0000-0000-4000-8000-0000000000a3', 'Draft', 'test', 'Draft', false, null);

insert into private.blocked_terms (term) values ('rls test term');

select count(*) as plan_count from public.plans \gset

do $$
begin
  perform tests.create_supabase_user('rls_a');
  perform tests.create_supabase_user('rls_b');
  perform tests.authenticate_as('rls_a');
  perform public.start_generation(prompt => 'a job of a');
  perform tests.authenticate_as('rls_b');
  perform public.start_generation(prompt => 'a job of b');
  perform tests.act_as_owner();
end
$$;

-- =============================================================================================
-- Reads: anon
-- =============================================================================================
select tests.act_as_anon();
select is((select count(*) from public.plans), :plan_count::bigint, 'anon reads every plan');
select results_eq('select key from public.models', $$ values ('t-rls-fast'::text) $$, 'anon reads active models only');
select results_eq('select key from public.styles', $$ values ('t-rls-on'::text) $$, 'anon reads active styles only');
select results_eq('select name from public.templates order by name', $$ values ('Published'::text), ('Withdrawn'::text) $$,
  'anon reads published templates (inactive ones included), never drafts');
select throws_ok('select * from public.profiles', '42501', null, 'anon cannot read profiles');
select throws_ok('select * from public.credit_ledger', '42501', null, 'anon cannot read the ledger');
select throws_ok('select * from public.generation_jobs', '42501', null, 'anon cannot read jobs');
select throws_ok('select * from private.blocked_terms', '42501', null, 'anon cannot read private tables');

-- =============================================================================================
-- Reads: user A and user B
-- =============================================================================================
select tests.authenticate_as('rls_a');
select is((select count(*) from public.plans), :plan_count::bigint, 'a user reads every plan');
select results_eq('select key from public.models', $$ values ('t-rls-fast'::text) $$, 'a user reads active models only');
select results_eq('select key from public.styles', $$ values ('t-rls-on'::text) $$, 'a user reads active styles only');
select results_eq('select name from public.templates order by name', $$ values ('Published'::text), ('Withdrawn'::text) $$,
  'a user reads published templates, never drafts');
select results_eq('select id from public.profiles', $$ values (tests.get_supabase_uid('rls_a')) $$, 'A reads only A''s profile');
select results_eq('select user_id, kind from public.credit_ledger order by id',
  $$ values (tests.get_supabase_uid('rls_a'), 'grant'::text), (tests.get_supabase_uid('rls_a'), 'debit'::text) $$,
  'A reads only A''s ledger');
select results_eq('select user_id, prompt from public.generation_jobs',
  $$ values (tests.get_supabase_uid('rls_a'), 'a job of a'::text) $$, 'A reads only A''s jobs');
select is_empty($$ select 1 from public.generation_jobs where user_id = tests.get_supabase_uid('rls_b') $$,
  'A cannot find B''s job even by asking for it');
select throws_ok('select * from private.blocked_terms', '42501', null, 'a user cannot read private tables');

select tests.authenticate_as('rls_b');
select results_eq('select id from public.profiles', $$ values (tests.get_supabase_uid('rls_b')) $$, 'B reads only B''s profile');
select results_eq('select user_id, kind from public.credit_ledger order by id',
  $$ values (tests.get_supabase_uid('rls_b'), 'grant'::text), (tests.get_supabase_uid('rls_b'), 'debit'::text) $$,
  'B reads only B''s ledger');
select results_eq('select user_id, prompt from public.generation_jobs',
  $$ values (tests.get_supabase_uid('rls_b'), 'a job of b'::text) $$, 'B reads only B''s jobs');
select is_empty($$ select 1 from public.profiles where id = tests.get_supabase_uid('rls_a') $$, 'B cannot read A''s profile');

-- =============================================================================================
-- Reads: service role (bypasses RLS; reads everything but private)
-- =============================================================================================
select tests.authenticate_as_service_role();
select results_eq($$ select key from public.models where key like 't-rls-%' order by key $$,
  $$ values ('t-rls-fast'::text), ('t-rls-hidden'::text) $$, 'the service role reads inactive models too');
select results_eq($$ select key from public.styles where key like 't-rls-%' order by key $$,
  $$ values ('t-rls-off'::text), ('t-rls-on'::text) $$, 'the service role reads inactive styles too');
select results_eq($$ select name from public.templates where category = 'test' order by name $$,
  $$ values ('Draft'::text), ('Published'::text), ('Withdrawn'::text) $$, 'the service role reads drafts too');
select results_eq(
  $$ select count(*)::integer from public.profiles where id in (tests.get_supabase_uid('rls_a'), tests.get_supabase_uid('rls_b')) $$,
  $$ values (2) $$, 'the service role reads every profile');
select results_eq(
  $$ select count(*)::integer from public.credit_ledger where user_id in (tests.get_supabase_uid('rls_a'), tests.get_supabase_uid('rls_b')) $$,
  $$ values (4) $$, 'the service role reads every ledger');
select results_eq(
  $$ select count(*)::integer from public.generation_jobs where user_id in (tests.get_supabase_uid('rls_a'), tests.get_supabase_uid('rls_b')) $$,
  $$ values (2) $$, 'the service role reads every job');
select throws_ok('select * from private.blocked_terms', '42501', null, 'the service role cannot read private tables');

-- =============================================================================================
-- Writes: no API role writes balances, jobs or the ledger directly; clients write nothing
-- =============================================================================================
select tests.authenticate_as('rls_a');
select throws_ok($$ insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute) values ('hack', 'Hack', 50, 1, 1) $$,
  '42501', null, 'a user cannot insert plans');
select throws_ok($$ update public.plans set signup_credits = 1000 $$, '42501', null, 'a user cannot update plans');
select throws_ok($$ delete from public.plans $$, '42501', null, 'a user cannot delete plans');
select throws_ok($$ insert into public.models (key, display_name, kie_model, mode, quality, credit_cost, min_plan, max_prompt_length, aspect_ratios)
                    values ('hack', 'Hack', 'hack', 'text-to-image', 'ultra', 1, 'free', 10, '{1:1}') $$,
  '42501', null, 'a user cannot insert models');
select throws_ok($$ update public.models set credit_cost = 1 $$, '42501', null, 'a user cannot update models');
select throws_ok($$ delete from public.models $$, '42501', null, 'a user cannot delete models');
select throws_ok($$ insert into public.styles (key, name, prompt_fragment) values ('hack', 'Hack', 'hack') $$,
  '42501', null, 'a user cannot insert styles');
select throws_ok($$ update public.styles set prompt_fragment = 'hack' $$, '42501', null, 'a user cannot update styles');
select throws_ok($$ delete from public.styles $$, '42501', null, 'a user cannot delete styles');
select throws_ok($$ insert into public.templates (name, category, prompt_template) values ('Hack', 'hack', 'hack') $$,
  '42501', null, 'a user cannot insert templates');
select throws_ok($$ update public.templates set is_premium = false $$, '42501', null, 'a user cannot update templates');
select throws_ok($$ delete from public.templates $$, '42501', null, 'a user cannot delete templates');
select throws_ok($$ insert into public.profiles (id) values (gen_random_uuid()) $$, '42501', null, 'a user cannot insert profiles');
select throws_ok($$ update public.profiles set credits = 1000000, plan = 'pro' where id = auth.uid() $$,
  '42501', null, 'a user cannot update their own profile (balance, plan)');
select throws_ok($$ delete from public.profiles where id = auth.uid() $$, '42501', null, 'a user cannot delete their profile');
select throws_ok($$ insert into public.credit_ledger (user_id, kind, amount, balance_after, reason)
                    values (auth.uid(), 'grant', 1000, 1009, 'free money') $$,
  '42501', null, 'a user cannot insert ledger entries');
select throws_ok($$ update public.credit_ledger set amount = 1000 where user_id = auth.uid() $$,
  '42501', null, 'a user cannot update ledger entries');
select throws_ok($$ delete from public.credit_ledger where user_id = auth.uid() $$, '42501', null, 'a user cannot delete ledger entries');
select throws_ok($$ insert into public.generation_jobs (user_id, mode, prompt, aspect_ratio, model_key, quality, credits_charged, request, request_fingerprint)
                    values (auth.uid(), 'text-to-image', 'free', '1:1', 't-rls-fast', 'fast', 0, '{}', 'x') $$,
  '42501', null, 'a user cannot insert jobs');
select throws_ok($$ update public.generation_jobs set status = 'completed' where user_id = auth.uid() $$,
  '42501', null, 'a user cannot update their jobs');
select throws_ok($$ delete from public.generation_jobs where user_id = auth.uid() $$, '42501', null, 'a user cannot delete their jobs');
select throws_ok($$ insert into private.blocked_terms (term) values ('x') $$, '42501', null, 'a user cannot write private tables');

select tests.act_as_anon();
select throws_ok($$ update public.plans set signup_credits = 1000 $$, '42501', null, 'anon cannot update plans');
select throws_ok($$ update public.models set credit_cost = 1 $$, '42501', null, 'anon cannot update models');
select throws_ok($$ update public.styles set prompt_fragment = 'hack' $$, '42501', null, 'anon cannot update styles');
select throws_ok($$ update public.templates set is_premium = false $$, '42501', null, 'anon cannot update templates');
select throws_ok($$ update public.profiles set credits = 1000000 $$, '42501', null, 'anon cannot update profiles');
select throws_ok($$ insert into public.credit_ledger (user_id, kind, amount, balance_after, reason)
                    values (gen_random_uuid(), 'grant', 1, 1, 'x') $$, '42501', null, 'anon cannot insert ledger entries');
select throws_ok($$ delete from public.generation_jobs $$, '42501', null, 'anon cannot delete jobs');

select tests.authenticate_as_service_role();
select throws_ok($$ insert into public.profiles (id) values (gen_random_uuid()) $$, '42501', null, 'the service role cannot insert profiles');
select throws_ok($$ update public.profiles set credits = credits + 1 $$, '42501', null, 'the service role cannot update balances directly');
select throws_ok($$ delete from public.profiles $$, '42501', null, 'the service role cannot delete profiles');
select throws_ok($$ insert into public.credit_ledger (user_id, kind, amount, balance_after, reason)
                    values (tests.get_supabase_uid('rls_a'), 'grant', 1, 10, 'x') $$,
  '42501', null, 'the service role cannot insert ledger entries directly');
select throws_ok($$ update public.credit_ledger set reason = 'x' $$, '42501', null, 'the service role cannot update ledger entries');
select throws_ok($$ delete from public.credit_ledger $$, '42501', null, 'the service role cannot delete ledger entries');
select throws_ok($$ insert into public.generation_jobs (user_id, mode, prompt, aspect_ratio, model_key, quality, credits_charged, request, request_fingerprint)
                    values (tests.get_supabase_uid('rls_a'), 'text-to-image', 'x', '1:1', 't-rls-fast', 'fast', 0, '{}', 'x') $$,
  '42501', null, 'the service role cannot insert jobs directly');
select throws_ok($$ update public.generation_jobs set status = 'completed' $$, '42501', null, 'the service role cannot update jobs directly');
select throws_ok($$ delete from public.generation_jobs $$, '42501', null, 'the service role cannot delete jobs directly');
select tests.act_as_owner();

-- =============================================================================================
-- Function privileges
-- =============================================================================================
select ok(has_function_privilege('authenticated', 'public.start_generation(text, uuid, jsonb, text, text, text[], text, text, text)', 'execute'),
  'authenticated can execute start_generation');
select ok(not has_function_privilege('anon', 'public.start_generation(text, uuid, jsonb, text, text, text[], text, text, text)', 'execute'),
  'anon cannot execute start_generation');
select ok(has_function_privilege('authenticated', 'public.retry_generation(uuid)', 'execute'), 'authenticated can execute retry_generation');
select ok(not has_function_privilege('anon', 'public.retry_generation(uuid)', 'execute'), 'anon cannot execute retry_generation');
select ok(has_function_privilege('authenticated', 'public.cancel_generation(uuid)', 'execute'), 'authenticated can execute cancel_generation');
select ok(not has_function_privilege('anon', 'public.cancel_generation(uuid)', 'execute'), 'anon cannot execute cancel_generation');
select ok(has_function_privilege('authenticated', 'public.recent_prompts(integer)', 'execute'), 'authenticated can execute recent_prompts');
select ok(not has_function_privilege('anon', 'public.recent_prompts(integer)', 'execute'), 'anon cannot execute recent_prompts');
select ok(has_function_privilege('service_role', 'public.grant_credits(uuid, integer, text, text)', 'execute'),
  'the service role can execute grant_credits');
select ok(not has_function_privilege('authenticated', 'public.grant_credits(uuid, integer, text, text)', 'execute'),
  'authenticated cannot execute grant_credits');
select ok(not has_function_privilege('anon', 'public.grant_credits(uuid, integer, text, text)', 'execute'),
  'anon cannot execute grant_credits');
select ok(has_function_privilege('service_role', 'public.set_plan(uuid, text)', 'execute'), 'the service role can execute set_plan');
select ok(not has_function_privilege('authenticated', 'public.set_plan(uuid, text)', 'execute'), 'authenticated cannot execute set_plan');
select ok(not has_function_privilege('anon', 'public.set_plan(uuid, text)', 'execute'), 'anon cannot execute set_plan');

-- Catch-alls: a new function is closed until it is granted on purpose.
select is_empty(
  $$ select p.oid::regprocedure from pg_proc p
      where p.pronamespace = 'public'::regnamespace and has_function_privilege('anon', p.oid, 'execute') $$,
  'anon can execute no function in public');
select results_eq(
  $$ select p.proname::text collate "default" from pg_proc p
      where p.pronamespace = 'public'::regnamespace and has_function_privilege('authenticated', p.oid, 'execute') order by 1 $$,
  $$ values ('cancel_generation'), ('delete_generation'), ('recent_prompts'), ('retry_generation'), ('start_generation') $$,
  'authenticated can execute exactly the app RPCs in public');
select results_eq(
  $$ select p.proname::text collate "default" from pg_proc p
      where p.pronamespace = 'public'::regnamespace and has_function_privilege('service_role', p.oid, 'execute') order by 1 $$,
  $$ values ('grant_credits'), ('set_plan') $$,
  'the service role can execute exactly the operator functions in public');
select is_empty(
  $$ select p.oid::regprocedure, r.role from pg_proc p cross join unnest(array['anon', 'authenticated', 'service_role']) r (role)
      where p.pronamespace = 'private'::regnamespace and has_function_privilege(r.role, p.oid, 'execute') $$,
  'no private function is executable by anon, authenticated or service_role');
select ok(not has_schema_privilege('anon', 'private', 'usage'), 'anon has no usage on schema private');
select ok(not has_schema_privilege('authenticated', 'private', 'usage'), 'authenticated has no usage on schema private');
select ok(not has_schema_privilege('service_role', 'private', 'usage'), 'the service role has no usage on schema private');

-- And as the roles themselves, through the API's path:
select tests.act_as_anon();
select throws_ok($$ select public.start_generation(prompt => 'a cat') $$, '42501', null, 'anon calling start_generation: 42501');
select throws_ok($$ select * from public.recent_prompts() $$, '42501', null, 'anon calling recent_prompts: 42501');
select tests.authenticate_as('rls_a');
select throws_ok($$ select public.grant_credits(auth.uid(), 1000, 'free money') $$, '42501', null, 'a user calling grant_credits: 42501');
select throws_ok($$ select public.set_plan(auth.uid(), 'pro') $$, '42501', null, 'a user calling set_plan: 42501');
select throws_ok($$ select private.refund_job((select id from public.generation_jobs limit 1), 'x') $$, '42501', null,
  'a user calling a private function: 42501');
select tests.authenticate_as_service_role();
select throws_ok($$ select private.post_ledger_entry(tests.get_supabase_uid('rls_a'), 'grant', 1000, 'x') $$, '42501', null,
  'the service role calling a private function: 42501');
select tests.act_as_owner();

-- =============================================================================================
-- RLS on every table; the Realtime publication
-- =============================================================================================
select is_empty(
  $$ select c.oid::regclass from pg_class c
      where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace) and c.relkind in ('r', 'p') and not c.relrowsecurity $$,
  'RLS is enabled on every table in public and private');
select ok((select count(*) from pg_class c where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace)
            and c.relkind in ('r', 'p')) >= 8, 'and the check saw the tables');
select is_empty(
  $$ select c.oid::regclass from pg_class c
      where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace) and c.relkind in ('v', 'm')
        and (has_table_privilege('anon', c.oid, 'select') or has_table_privilege('authenticated', c.oid, 'select')) $$,
  'no view bypasses RLS for clients');
select results_eq(
  $$ select (schemaname || '.' || tablename) collate "default" from pg_publication_tables where pubname = 'supabase_realtime' order by 1 $$,
  $$ values ('public.generation_jobs'::text), ('public.profiles'::text), ('public.templates'::text) $$,
  'the supabase_realtime publication carries exactly generation_jobs, profiles and templates');
select results_eq(
  $$ select relname::text collate "default", relreplident::text collate "default" from pg_class
      where oid in ('public.generation_jobs'::regclass, 'public.templates'::regclass) order by 1 $$,
  $$ values ('generation_jobs', 'f'), ('templates', 'f') $$,
  'published tables stream complete rows on update (replica identity full)');

select * from finish();
rollback;
