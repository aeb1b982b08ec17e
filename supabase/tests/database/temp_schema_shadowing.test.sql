-- Temp-schema shadowing: a caller's temporary types must never run inside our functions with the
-- owner's rights. Two layers, each tested on its own: the API roles cannot create temporary
-- objects at all, and, for a role that can, every function that runs as the owner resolves
-- built-in types in pg_catalog before pg_temp.
begin;
select plan(9);

-- =============================================================================================
-- Layer 1: no TEMP for the API roles (the owner keeps it)
-- =============================================================================================
select ok(not has_database_privilege('anon', current_database(), 'temporary'), 'anon has no TEMP on the database');
select ok(not has_database_privilege('authenticated', current_database(), 'temporary'), 'authenticated has no TEMP on the database');
select ok(not has_database_privilege('service_role', current_database(), 'temporary'), 'the service role has no TEMP on the database');
select ok(has_database_privilege('postgres', current_database(), 'temporary'), 'the owner keeps TEMP');

select tests.act_as_anon();
select throws_ok('create temp table t_anon (x integer)', '42501', null, 'anon cannot create a temporary table');
select tests.authenticate_as_service_role();
select throws_ok('create domain pg_temp.text as pg_catalog.text', '42501', null, 'the service role cannot create a temporary type');
select tests.act_as_owner();

-- =============================================================================================
-- Layer 2: with TEMP given back (in this transaction only), shadowing still runs nothing
-- =============================================================================================
update public.plans set max_active_jobs = 1000, starts_per_minute = 1000, is_metered = true;
select isnt(tests.create_supabase_user('shadow_a'), null, 'user shadow_a signs up');
grant temporary on database postgres to authenticated;

-- The attacker's code: a temporary function behind temporary domains named like the built-in
-- types our functions use. It stays quiet for the attacker's own roles (pgTAP's functions use
-- those types too) and raises if it ever runs as the owner of our functions. Each function is
-- compiled once per session: the calls below are the first to reach the functions they test.
select tests.authenticate_as('shadow_a');
create function pg_temp.shadow() returns boolean language plpgsql volatile
  as $$
  begin
    if current_user = 'postgres' then
      raise exception 'temp-schema code ran as %', current_user;
    end if;
    return true;
  end
  $$;
create domain pg_temp.text as pg_catalog.text check (pg_temp.shadow());
create domain pg_temp.jsonb as pg_catalog.jsonb check (pg_temp.shadow());
create domain pg_temp.uuid as pg_catalog.uuid check (pg_temp.shadow());
create domain pg_temp.timestamptz as pg_catalog.timestamptz check (pg_temp.shadow());

select lives_ok($$ select public.start_generation(prompt => 'a cat in a hat') $$,
  'start_generation (and the private functions it calls) ignore the caller''s temporary types');
select lives_ok($$ select public.cancel_generation((select id from public.generation_jobs limit 1)) $$,
  'cancel_generation and the refund ignore them too');

select tests.authenticate_as('shadow_a');
drop domain pg_temp.text, pg_temp.jsonb, pg_temp.uuid, pg_temp.timestamptz;
drop function pg_temp.shadow();
select tests.act_as_owner();

select * from finish();
rollback;
