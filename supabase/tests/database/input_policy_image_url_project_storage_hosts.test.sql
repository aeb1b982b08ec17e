-- Image URL policy, the other hosts that serve this project's Storage: a custom domain
-- (api.example.com for the project) or a CDN in front of it serves the same buckets under the same
-- /storage/v1/ paths, so its URLs are this project's as much as those of project_url's host. The
-- operator names them in images.project_storage_hosts; the unsigned and expiry rules then judge
-- their URLs too (a public URL of the private bucket, an expired signed URL), whatever the letter
-- case or port. A host not named there is still judged by the host policy alone.
begin;
select plan(13);

\ir input_policy_fixture.sql
update private.settings set value = '["ref.supabase.co", "api.example.com", "cdn.example.net", "partner.example.com"]'
 where key = 'images.allowed_hosts';
delete from vault.secrets where name = 'project_url';
select vault.create_secret('https://ref.supabase.co', 'project_url');
update private.settings set value = '["API.Example.com", "cdn.example.net"]' where key = 'images.project_storage_hosts';

-- A token as Storage signs it: a JWT whose payload holds the object and iat/exp (seconds).
create function pg_temp.token(exp bigint) returns text language sql as $$
  select 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.'
         || rtrim(translate(encode(convert_to(
              format('{"url":"user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png","iat":1796300000,"exp":%s}', exp),
              'UTF8'), 'base64'), E'+/\n', '-_'), '=')
         || '.c2lnbmF0dXJl'
$$;
create function pg_temp.start_with(url text) returns text language sql as $$
  select format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                '5a5a0000-0000-4000-8000-00000000f001', url)
$$;
grant execute on function pg_temp.token(bigint), pg_temp.start_with(text) to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(pg_temp.start_with(url), 'KL013', null, format('refused: %s', why))
  from (values
    ('https://api.example.com/storage/v1/object/public/user-uploads/a.png',
     'the custom domain''s public URL of the private bucket'),
    ('https://API.EXAMPLE.COM:443/storage/v1/object/public/user-uploads/a.png',
     'the same with the host in capitals and the default port'),
    ('https://api.example.com/storage/v1/object/authenticated/user-uploads/a.png',
     'the custom domain''s authenticated URL'),
    ('https://api.example.com/storage/v1/object/sign/user-uploads/a.png',
     'the custom domain''s signed URL without its token'),
    ('https://api.example.com/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.token(1700000000),
     'the custom domain''s signed URL whose token has expired'),
    ('https://cdn.example.net/storage/v1/render/image/public/user-uploads/a.png?width=512',
     'the CDN''s transformed public URL of the private bucket'),
    ('https://cdn.example.net/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.token(1700000000),
     'the CDN''s signed URL whose token has expired')
  ) as t (url, why);

select lives_ok(pg_temp.start_with(url), format('accepted: %s', why))
  from (values
    ('https://api.example.com/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png?token='
       || pg_temp.token(floor(extract(epoch from now()))::bigint + 3600),
     'the custom domain''s signed URL that is still valid'),
    ('https://partner.example.com/storage/v1/object/public/user-uploads/a.png',
     'a host not named there: another project''s public URL of a bucket named like a private one here'),
    ('https://partner.example.com/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.token(1700000000),
     'and its signed URL whose token has expired')
  ) as t (url, why);

reset role;
select is(private.image_url_problem('https://api.example.com/storage/v1/object/public/user-uploads/a.png'),
  'user-uploads is a private bucket and the URL is not signed, so it cannot be downloaded: send a signed URL (createSignedUrl)',
  'the detail is the one of this project''s own host');
select is(private.image_url_problem('https://cdn.example.net/storage/v1/object/sign/user-uploads/a.png?token=' || pg_temp.token(1700000000)),
  'the signed URL expired at 2023-11-14T22:13:20Z: sign the upload again',
  'and so is an expired token''s');

-- Without the setting's row, only project_url's host (and its direct Storage host) is this project's.
delete from private.settings where key = 'images.project_storage_hosts';
select is(private.image_url_problem('https://api.example.com/storage/v1/object/public/user-uploads/a.png'), null,
  'with the row deleted, the custom domain is another host again');

select * from finish();
rollback;
