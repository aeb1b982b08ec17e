-- delete_generation: the owner deletes one finished generation; it disappears from their jobs (and
-- its prompt from recent_prompts) at once, its references go, and a purge of its stored images is
-- queued. Everything else refuses with a code and changes nothing. Jobs are made through the app's
-- own RPCs (a cancelled job is a finished one).
begin;
select plan(18);

select tests.create_supabase_user('dg_owner');
select tests.create_supabase_user('dg_other');

select tests.authenticate_as('dg_owner');
select (public.start_generation(prompt => 'a red kite over the sea')).id as done_job \gset
select public.cancel_generation(:'done_job');
select (public.start_generation(prompt => 'a blue kite over the sea')).id as pending_job \gset
select tests.act_as_owner();
select tests.footprint('dg_owner') as owner_before \gset

-- Refusals
select tests.authenticate_as('dg_other');
select * from tests.refused(format($$ select public.delete_generation('%s') $$, :'done_job'), 'KL050',
  'another user''s job: KL050 (as if it did not exist)');
select tests.authenticate_as('dg_owner');
select * from tests.refused($$ select public.delete_generation(gen_random_uuid()) $$, 'KL050', 'an unknown job: KL050');
select * from tests.refused(format($$ select public.delete_generation('%s') $$, :'pending_job'), 'KL051',
  'a job that has not finished: KL051');
select tests.act_as_anon();
select throws_ok(format($$ select public.delete_generation('%s') $$, :'done_job'), '42501', null, 'anon may not call it');
select tests.act_as_owner();
select is((select count(*)::int from private.result_purges where job_id in (:'done_job', :'pending_job')), 0,
  'refusals queue no purge');

-- Success
select tests.authenticate_as('dg_owner');
select isnt_empty($$ select 1 from public.recent_prompts(100) where prompt = 'a red kite over the sea' $$,
  'before: the job''s prompt is among the owner''s recent prompts');
select lives_ok(format($$ select public.delete_generation('%s') $$, :'done_job'), 'the owner deletes a finished job');
select is_empty($$ select 1 from public.recent_prompts(100) where prompt = 'a red kite over the sea' $$,
  'its prompt leaves the recent prompts');
-- By recent_prompts' own filter, not only by RLS: read as the tables' owner (RLS does not apply)
-- with the user's claims.
select tests.act_as_owner();
select set_config('request.jwt.claims', jsonb_build_object('sub', tests.get_supabase_uid('dg_owner'))::text, true);
select is_empty($$ select 1 from public.recent_prompts(100) where prompt = 'a red kite over the sea' $$,
  'even where RLS does not apply');
select tests.authenticate_as('dg_owner');
select is_empty(format($$ select 1 from public.generation_jobs where id = '%s' $$, :'done_job'), 'the deleted job is gone from the owner''s jobs');
select isnt_empty(format($$ select 1 from public.generation_jobs where id = '%s' $$, :'pending_job'), 'their other jobs remain');
select * from tests.refused(format($$ select public.delete_generation('%s') $$, :'done_job'), 'KL050',
  'deleting it again: KL050');
select * from tests.refused(format($$ select public.cancel_generation('%s') $$, :'done_job'), 'KL021',
  'cancelling it: KL021, not found (as retry_generation answers), not KL023');

select tests.act_as_owner();
select results_eq(
  format($$ select deleted_at is not null, results_removed_at is not null, result_urls from public.generation_jobs where id = '%s' $$, :'done_job'),
  $$ values (true, true, '{}'::text[]) $$,
  'the job row stays (the ledger references it), marked deleted, with no references to its images');
select results_eq(
  format($$ select reason, attempts, done_at is null, next_attempt_at <= now() from private.result_purges where job_id = '%s' $$, :'done_job'),
  $$ values ('deleted'::text, 0, true, true) $$,
  'a purge of its images is queued, due at once');
select is(tests.footprint('dg_owner'), :'owner_before', 'credits and ledger are untouched (the job count includes the hidden row)');

-- The purge tick sees it (the request itself is asserted in storage_purge).
select is((select count(*)::int from private.result_purges where job_id = :'pending_job'), 0, 'the unfinished job has no purge');
select is(has_function_privilege('authenticated', 'public.delete_generation(uuid)', 'execute'), true, 'authenticated may call it');

select * from finish();
rollback;
