-- pgTAP identity helpers, in the style of basejump's supabase-test-helpers.
--
-- Local tests only, never a migration. They switch identity the way PostgREST does for each
-- request: `set local role <api role>` plus `request.jwt.claims`, so RLS, grants and auth.uid()
-- behave in a test exactly as they do behind the Data API. Everything is transaction-local:
-- a test file's final `rollback` undoes it.

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

-- A user in auth.users, found again later by its identifier (kept in raw_user_meta_data).
create or replace function tests.create_supabase_user(identifier text, email text default null)
returns uuid
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  user_id uuid := gen_random_uuid();
begin
  insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
  values (
    user_id, 'authenticated', 'authenticated',
    coalesce(email, identifier || '@test.kiln.local'),
    '{"provider": "email", "providers": ["email"]}',
    jsonb_build_object('test_identifier', identifier),
    now(), now()
  );
  return user_id;
end
$$;

create or replace function tests.get_supabase_uid(identifier text)
returns uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  user_id uuid;
begin
  select id into user_id from auth.users where raw_user_meta_data ->> 'test_identifier' = identifier limit 1;
  if user_id is null then
    raise exception 'tests.get_supabase_uid: no test user "%"', identifier;
  end if;
  return user_id;
end
$$;

-- Act as a signed-in user: role authenticated, claims with the user's id.
create or replace function tests.authenticate_as(identifier text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  user_id uuid := tests.get_supabase_uid(identifier);
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims',
    jsonb_build_object('sub', user_id, 'role', 'authenticated', 'aud', 'authenticated',
                       'email', identifier || '@test.kiln.local')::text, true);
end
$$;

-- Act as a request without a session (the anon key).
create or replace function tests.act_as_anon()
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
end
$$;

-- Act as a trusted server (the service key): bypasses RLS, no auth.uid().
create or replace function tests.authenticate_as_service_role()
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
end
$$;

-- Back to the connection's own role (the owner), with no claims. (Not basejump's
-- clear_authentication, which means anon: tests.act_as_anon is that.)
create or replace function tests.act_as_owner()
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', null, true);
end
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Refusal assertions and footprints. A refused call aborts its transaction, so it cannot leave
-- writes behind (supabase/tests/integration/refusals.test.ts proves that over real
-- transactions); here we assert the code and keep the footprint for before/after checks of
-- calls that succeed. They need the product schema, so this file is applied after the migrations.
-- ---------------------------------------------------------------------------------------------

-- What a user owns: jobs, balance, ledger entries.
create or replace function tests.footprint(user_id uuid)
returns text
language sql stable security definer
set search_path = ''
as $$
  select format('jobs=%s credits=%s ledger=%s',
    (select count(*) from public.generation_jobs j where j.user_id = footprint.user_id),
    (select p.credits from public.profiles p where p.id = footprint.user_id),
    (select count(*) from public.credit_ledger l where l.user_id = footprint.user_id))
$$;

create or replace function tests.footprint(who text)
returns text
language sql stable
set search_path = ''
as $$
  select tests.footprint(tests.get_supabase_uid(who))
$$;

-- One assertion: `statement` fails with SQLSTATE `code`, run as the current (API) role.
create or replace function tests.refused(statement text, code text, description text)
returns setof text
language sql volatile
set search_path = extensions -- pgTAP calls its own helpers unqualified
as $$
  select extensions.throws_ok(statement, code::char(5), null::text, description)
$$;

-- What `statement` fails with, as text: 'SQLSTATE: detail', or 'no error'. For asserting the
-- detail a client is shown, which tests.refused does not look at. Security invoker and no pinned
-- search_path, so the statement runs exactly as the caller would run it.
create or replace function tests.refusal(statement text)
returns text
language plpgsql volatile
as $$
declare
  detail text;
begin
  execute statement;
  return 'no error';
exception when others then
  get stacked diagnostics detail = pg_exception_detail;
  return sqlstate || ': ' || detail;
end
$$;

-- What `statement` fails with, in full: 'SQLSTATE: message | detail | hint', or 'no error'. For
-- asserting every text a client is shown. Security invoker, like tests.refusal.
create or replace function tests.refusal_text(statement text)
returns text
language plpgsql volatile
as $$
declare
  message text;
  detail text;
  hint text;
begin
  execute statement;
  return 'no error';
exception when others then
  get stacked diagnostics message = message_text, detail = pg_exception_detail, hint = pg_exception_hint;
  return format('%s: %s | %s | %s', sqlstate, message, detail, hint);
end
$$;

-- A signed-URL token in the form Storage signs it: a JWT (HS256 header; url, scope, iat and exp
-- claims) with a made-up signature, for the `?token=` of a signed URL a test starts a job with.
-- The image URL policy reads its form and exp, never its signature. `exp` in seconds since the
-- epoch, by default 2100-01-01.
create or replace function tests.storage_token(exp bigint default 4102444800)
returns text
language sql immutable
set search_path = ''
as $$
  select 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.'
         || pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode(pg_catalog.convert_to(
              pg_catalog.format('{"url":"user-uploads/photo.png","scope":"download","iat":1700000000,"exp":%s}', exp),
              'UTF8'), 'base64'), E'+/\n', '-_'), '=')
         || '.c2lnbmF0dXJl'
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;
