-- The service role's calls sent without an argument, or with an empty one, are refused with their
-- usual code (KL025), and the detail says what is missing or shows the value instead of printing
-- a blank where it goes ("no profile ", "plan  does not exist"). Nothing changes. Through
-- grant_credits and set_plan, as the service role.
begin;
select plan(9);

\ir input_policy_fixture.sql

select tests.authenticate_as_service_role();
select tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid) as footprint_before \gset

select is(tests.refusal(statement), expected, why)
  from (values
    ($$ select public.grant_credits(null, 5, 'Support') $$, 'KL025: no user id was given',
     'grant_credits without a user id'),
    ($$ select public.set_plan(null, 'paid') $$, 'KL025: no user id was given',
     'set_plan without a user id'),
    ($$ select public.set_plan('5a5a0000-0000-4000-8000-00000000fa01', null) $$, 'KL025: no plan was given',
     'set_plan without a plan'),
    ($$ select public.set_plan('5a5a0000-0000-4000-8000-00000000fa01', '') $$, 'KL025: plan "" does not exist',
     'set_plan with an empty plan shows it'),
    ($$ select public.set_plan('5a5a0000-0000-4000-8000-00000000fa01', ' ') $$, 'KL025: plan "\u0020" does not exist',
     'set_plan with a blank plan shows it'),
    ($$ select public.set_plan('5a5a0000-0000-4000-8000-00000000fa01', 'paid ') $$, 'KL025: plan "paid " does not exist',
     'set_plan with a trailing space shows the space')
  ) as refusals(statement, expected, why);

-- The details that name a value still name it.
select is(tests.refusal($$ select public.grant_credits('5a5a0000-0000-4000-8000-0000000000ff', 5, 'Support') $$),
  'KL025: no profile 5a5a0000-0000-4000-8000-0000000000ff', 'an unknown user is still named');
select is(tests.refusal($$ select public.set_plan('5a5a0000-0000-4000-8000-00000000fa01', 'platinum') $$),
  'KL025: plan "platinum" does not exist', 'an unknown plan is still named');

select is(tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid) || ' plan=' || (select plan from public.profiles where id = '5a5a0000-0000-4000-8000-00000000fa01'),
  :'footprint_before' || ' plan=free', 'the refused calls changed nothing');

select * from finish();
rollback;
