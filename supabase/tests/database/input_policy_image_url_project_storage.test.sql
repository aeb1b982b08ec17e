-- Image URL policy, whose Storage the unsigned and expiry rules judge: only this project's, the
-- host of the Vault secret project_url (its <ref>.storage.supabase.co direct host too). Another
-- host that serves a Storage path (a partner project's public bucket, a CDN in front of one) is
-- judged by the host policy alone, even when its bucket has the name of a private bucket here or
-- its signed URL's token has expired. This project's URLs are refused however the host is spelled
-- (letter case, the default port), and a signed URL of this project is judged by every token
-- parameter it carries, as the Storage server decodes them; one with no token at all is unsigned.
-- While project_url is missing, any host may be this project's and every host is judged.
begin;
select plan(27);

\ir input_policy_fixture.sql
update private.settings set value = '["ref.supabase.co", "ref.storage.supabase.co", "partner.example.com"]'
 where key = 'images.allowed_hosts';
delete from vault.secrets where name = 'project_url';
select vault.create_secret(E' https://REF.supabase.co/\n', 'project_url');

-- A token as Storage signs it: a JWT whose payload holds the object and iat/exp (seconds).
create function pg_temp.token(exp bigint) returns text language sql as $$
  select 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.'
         || rtrim(translate(encode(convert_to(
              format('{"url":"user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png","iat":1796300000,"exp":%s}', exp),
              'UTF8'), 'base64'), E'+/\n', '-_'), '=')
         || '.c2lnbmF0dXJl'
$$;
create function pg_temp.expired() returns text language sql as $$ select pg_temp.token(1700000000) $$;
create function pg_temp.valid() returns text language sql as $$ select pg_temp.token(floor(extract(epoch from now()))::bigint + 3600) $$;
create function pg_temp.start_with(url text) returns text language sql as $$
  select format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                '5a5a0000-0000-4000-8000-00000000f001', url)
$$;
grant execute on function pg_temp.token(bigint), pg_temp.expired(), pg_temp.valid(), pg_temp.start_with(text) to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select lives_ok(pg_temp.start_with(url), format('accepted: %s', why))
  from (values
    ('https://partner.example.com/storage/v1/object/public/user-uploads/a.png',
     'another host''s public URL of a bucket named like a private one here'),
    ('https://partner.example.com/storage/v1/render/image/public/user-uploads/a.png?width=512',
     'and its transformed form'),
    ('https://partner.example.com/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.expired(),
     'another host''s signed URL whose token has expired'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png?token=' || pg_temp.valid(),
     'this project''s signed URL that is still valid'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png?download=&token=' || pg_temp.valid() || '#x',
     'and with another parameter and a fragment')
  ) as t (url, why);

select throws_ok(pg_temp.start_with(url), 'KL013', null, format('refused: %s', why))
  from (values
    ('https://ref.supabase.co/storage/v1/object/public/user-uploads/a.png',
     'this project''s public URL of its private bucket'),
    ('https://REF.Supabase.CO/storage/v1/object/public/user-uploads/a.png', 'the same with the host in capitals'),
    ('https://ref.supabase.co:443/storage/v1/object/public/user-uploads/a.png', 'the same with the default port written out'),
    ('https://ref.supabase.co./storage/v1/object/public/user-uploads/a.png', 'the same with a trailing dot'),
    ('https://ref.storage.supabase.co/storage/v1/object/public/user-uploads/a.png', 'the same on the project''s direct Storage host'),
    ('https://ref.supabase.co/storage/v1/object/%70ublic/user-uploads/a.png', 'the same with a letter of the path percent-encoded'),
    ('https://ref.supabase.co/storage/v1/object/sign/../public/user-uploads/a.png', 'the same behind a ".." segment'),
    ('https://ref.supabase.co/storage/v1/object/authenticated/user-uploads/a.png', 'this project''s authenticated URL'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png', 'this project''s signed URL without its token'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png?token=', 'and with an empty token'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.expired(),
     'this project''s signed URL whose token has expired'),
    ('https://REF.supabase.co:443/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.expired(),
     'the same with the host in capitals and the default port'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.valid() || '&token=' || pg_temp.expired(),
     'a valid token followed by an expired one'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.expired() || '&token=' || pg_temp.valid(),
     'an expired token followed by a valid one'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png?tok%65n=' || pg_temp.expired(),
     'an expired token under a percent-encoded parameter name'),
    ('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png?token=' || replace(pg_temp.expired(), '.', '%2E'),
     'an expired token with its dots percent-encoded')
  ) as t (url, why);

reset role;
select is(private.image_url_unsigned_problem('https://partner.example.com/storage/v1/object/public/user-uploads/a.png'), null,
  'the unsigned rule leaves another host to the host policy');
select is(private.image_url_expiry_problem('https://partner.example.com/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.expired(), now()),
  null, 'and so does the expiry rule');
select is(private.image_url_problem('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png'),
  'the URL is signed but has no token, so it cannot be downloaded: send the URL createSignedUrl returns, whole',
  'the detail of a signed URL without its token says what to send');
select is(private.image_url_problem('https://ref.supabase.co/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.valid() || '&token=' || pg_temp.expired()),
  'the signed URL expired at 2023-11-14T22:13:20Z: sign the upload again',
  'an expired token among several is named');

-- Without project_url any host may be this project's: every host is judged.
delete from vault.secrets where name = 'project_url';
select is(private.image_url_problem('https://partner.example.com/storage/v1/object/public/user-uploads/a.png'),
  'user-uploads is a private bucket and the URL is not signed, so it cannot be downloaded: send a signed URL (createSignedUrl)',
  'while project_url is missing, another host''s URL is judged as this project''s');
select isnt(private.image_url_problem('https://partner.example.com/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.expired()),
  null, 'and so is its expired token');

select * from finish();
rollback;
