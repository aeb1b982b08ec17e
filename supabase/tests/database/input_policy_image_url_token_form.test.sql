-- Image URL policy, the form of a signed URL's token: Storage signs with a JWT
-- (header.payload.signature, base64url, header and payload JSON objects) and refuses anything else,
-- so a signed URL of this project's Storage whose token is no JWT at all can only fail at KIE.
-- start_generation refuses it (KL013, the detail says the token is not a JWT), every token
-- parameter read as Storage decodes the query. A token that is a JWT is left to the expiry rule,
-- even one whose claims Postgres cannot hold (a \u0000 escape, an exp beyond numeric): that one
-- is skipped, not refused and not a raw SQL error. Another host's tokens are not judged.
begin;
select plan(20);

\ir input_policy_fixture.sql
update private.settings set value = '["ref.supabase.co", "partner.example.com"]' where key = 'images.allowed_hosts';
delete from vault.secrets where name = 'project_url';
select vault.create_secret('https://ref.supabase.co', 'project_url');

-- base64url without padding, as a JWT writes each part.
create function pg_temp.b64url(content text) returns text language sql as $$
  select rtrim(translate(encode(convert_to(content, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;
-- A token whose payload is this JSON text, with Storage's header and a signature.
create function pg_temp.token(payload text) returns text language sql as $$
  select 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.' || pg_temp.b64url(payload) || '.c2lnbmF0dXJl'
$$;
create function pg_temp.valid() returns text language sql as $$
  select pg_temp.token(format('{"url":"user-uploads/a.png","iat":1796300000,"exp":%s}', floor(extract(epoch from now()))::bigint + 3600))
$$;
create function pg_temp.url(token text) returns text language sql as $$
  select 'https://ref.supabase.co/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png?token=' || token
$$;
create function pg_temp.start_with(url text) returns text language sql as $$
  select format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                '5a5a0000-0000-4000-8000-00000000f001', url)
$$;
grant execute on function pg_temp.b64url(text), pg_temp.token(text), pg_temp.valid(), pg_temp.url(text), pg_temp.start_with(text)
  to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(pg_temp.start_with(url), 'KL013', null, format('refused: %s', why))
  from (values
    (pg_temp.url('t'), 'a token of one word'),
    (pg_temp.url('not-a-jwt'), 'a token without dots'),
    (pg_temp.url('abc.def'), 'a token of two parts'),
    (pg_temp.url(pg_temp.valid() || '.c2ln'), 'a token of four parts'),
    (pg_temp.url('a.%25%25.b'), 'a token whose payload is not base64url'),
    (pg_temp.url('eyJhbGciOiJIUzI1NiJ9..c2ln'), 'a token with an empty payload'),
    (pg_temp.url('eyJhbGciOiJIUzI1NiJ9.' || pg_temp.b64url('{"exp":4102444800}') || '.'), 'a token with an empty signature'),
    (pg_temp.url('eyJhbGciOiJIUzI1NiJ9.e30xx.c2ln'), 'a token whose payload has a length base64 cannot have'),
    (pg_temp.url('eyJhbGciOiJIUzI1NiJ9.' || pg_temp.b64url('not json') || '.c2ln'), 'a token whose payload is not JSON'),
    (pg_temp.url('eyJhbGciOiJIUzI1NiJ9.' || pg_temp.b64url('4102444800') || '.c2ln'), 'a token whose payload is JSON but no object'),
    (pg_temp.url('eyJhbGciOiJIUzI1NiJ9._-8.c2ln'), 'a token whose payload is not UTF-8'),
    (pg_temp.url(pg_temp.b64url('HS256') || '.' || pg_temp.b64url('{"exp":4102444800}') || '.c2ln'), 'a token whose header is no JSON object'),
    (pg_temp.url(pg_temp.valid() || '&token=not-a-jwt'), 'a JWT followed by a token that is not one'),
    (replace(pg_temp.url('not-a-jwt'), '/object/sign/', '/render/image/sign/') || '&width=512', 'the same on a transformed image')
  ) as t (url, why);

select lives_ok(pg_temp.start_with(url), format('accepted: %s', why))
  from (values
    (pg_temp.url(pg_temp.valid()), 'a JWT still valid'),
    (pg_temp.url(pg_temp.token('{"exp":1,"note":"\u0000"}')), 'a JWT whose payload jsonb cannot hold (\u0000): left to the expiry rule, which skips it'),
    (pg_temp.url(pg_temp.token('{"exp":1e999999}')), 'a JWT whose exp is beyond numeric: the same'),
    ('https://partner.example.com/storage/v1/object/sign/user-uploads/a.png?token=not-a-jwt', 'another host''s signed URL')
  ) as t (url, why);

reset role;
select is(private.image_url_problem(pg_temp.url('not-a-jwt')),
  'the signed URL''s token is not a JWT (header.payload.signature, base64url), so Storage refuses it: send the URL createSignedUrl returns, whole',
  'the detail says the token is not a JWT and what to send');
select is(private.image_url_problem(pg_temp.url('')),
  'the URL is signed but has no token, so it cannot be downloaded: send the URL createSignedUrl returns, whole',
  'an empty token is still a signed URL without its token');

select * from finish();
rollback;
