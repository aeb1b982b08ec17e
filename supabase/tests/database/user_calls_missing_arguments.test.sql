-- A user call sent without its argument (PostgREST passes {"job_id": null} or {"limit": null} as
-- SQL null) is refused with the call's usual code, and the detail says what is missing instead
-- of printing a blank where the id or the number goes ("no job  of yours", "got "). Nothing
-- changes. Through the app's RPCs, as a signed-in user.
begin;
select plan(9);

\ir input_policy_fixture.sql

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

-- One finished job of the user's, so a call that ignored its null argument would have a job to act on.
select id as job_id from public.start_generation(prompt => 'a lighthouse') \gset
select status from public.cancel_generation(:'job_id');
select tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid) as footprint_before \gset

select is(tests.refusal('select public.cancel_generation(null)'), 'KL021: no job id was given',
  'cancel_generation without a job id: KL021, and the detail says the id is missing');
select is(tests.refusal('select public.retry_generation(null)'), 'KL021: no job id was given',
  'retry_generation without a job id: KL021, and the detail says the id is missing');
select is(tests.refusal('select public.delete_generation(null)'), 'KL050: no job id was given',
  'delete_generation without a job id: KL050, and the detail says the id is missing');
select is(tests.refusal('select * from public.recent_prompts(null)'), 'KL025: got no limit',
  'recent_prompts without a limit: KL025, and the detail says the limit is missing');

-- The details that name a value still name it.
select is(tests.refusal('select public.cancel_generation(''5a5a0000-0000-4000-8000-0000000000ff'')'),
  'KL021: no job 5a5a0000-0000-4000-8000-0000000000ff of yours', 'an unknown job is still named');
select is(tests.refusal('select * from public.recent_prompts(0)'), 'KL025: got 0', 'a limit out of range is still named');

select is(tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid), :'footprint_before', 'the refused calls changed nothing');
select is((select status from public.generation_jobs where id = :'job_id'), 'failed', 'the job is as it was');
select is((select deleted_at from public.generation_jobs where id = :'job_id'), null, 'and not deleted');

select * from finish();
rollback;
