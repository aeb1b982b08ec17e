-- Image URL policy, the expiry rule reading a signed URL's token: its payload is whatever the app
-- sends, so one Postgres cannot read as JSON (a \u0000 escape, which jsonb refuses; an exp too large
-- or too small for numeric) is not a JWT the rule reads, like any other unreadable token. A start
-- with such a URL gets an answer of the policy (here: accepted, as any token that is not a JWT
-- the rule can read), never a raw SQL error; an expired token beside it still refuses the URL.
begin;
select plan(12);

\ir input_policy_fixture.sql
update private.settings set value = '["ref.supabase.co"]' where key = 'images.allowed_hosts';
delete from vault.secrets where name = 'project_url';
select vault.create_secret('https://ref.supabase.co', 'project_url');

-- A token whose payload is this JSON text, as a JWT carries it (base64url, unpadded).
create function pg_temp.token(payload text) returns text language sql as $$
  select 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.'
         || rtrim(translate(encode(convert_to(payload, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
         || '.c2lnbmF0dXJl'
$$;
create function pg_temp.url(payload text) returns text language sql as $$
  select 'https://ref.supabase.co/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png?token='
         || pg_temp.token(payload)
$$;
create function pg_temp.start_with(url text) returns text language sql as $$
  select format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                '5a5a0000-0000-4000-8000-00000000f001', url)
$$;
grant execute on function pg_temp.token(text), pg_temp.url(text), pg_temp.start_with(text) to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select lives_ok(pg_temp.start_with(pg_temp.url(payload)), format('a start is answered, not failed, with a token whose payload is %s', why))
  from (values
    ('{"exp":1,"note":"\u0000"}', 'JSON with a \u0000 escape'),
    ('{"exp":"\u0000"}', 'JSON whose exp is a string with a \u0000 escape'),
    ('{"exp":1e999999}', 'JSON whose exp is too large for numeric'),
    ('{"exp":1e-999999}', 'JSON whose exp is too small for numeric')
  ) as t (payload, why);

select throws_ok(pg_temp.start_with(pg_temp.url(payload) || '&token=' || pg_temp.token('{"exp":1700000000}')), 'KL013', null,
                 format('an expired token beside one whose payload is %s still refuses the URL', why))
  from (values
    ('{"exp":1,"note":"\u0000"}', 'JSON with a \u0000 escape'),
    ('{"exp":1e999999}', 'JSON whose exp is too large for numeric')
  ) as t (payload, why);

reset role;
select is(private.image_url_expiry_problem(pg_temp.url(payload), now()), null,
          format('the expiry rule does not read a token whose payload is %s', why))
  from (values
    ('{"exp":1,"note":"\u0000"}', 'JSON with a \u0000 escape'),
    ('{"exp":"\u0000"}', 'JSON whose exp is a string with a \u0000 escape'),
    ('{"exp":1e999999}', 'JSON whose exp is too large for numeric'),
    ('{"exp":1e-999999}', 'JSON whose exp is too small for numeric')
  ) as t (payload, why);

select is(private.image_url_problem(pg_temp.url('{"exp":1e999999}') || '&token=' || pg_temp.token('{"exp":1700000000}')),
  'the signed URL expired at 2023-11-14T22:13:20Z: sign the upload again',
  'and the refusal names the expired token');
select is(private.image_url_problem(pg_temp.url('{"exp":1,"note":"\u0000"}')), null,
  'a URL whose only token is unreadable is left to the other rules');

select * from finish();
rollback;
