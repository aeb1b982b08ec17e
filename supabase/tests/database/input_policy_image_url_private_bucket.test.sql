-- Image URL policy, unsigned Storage URLs of this project's buckets: KIE downloads the photo with
-- no credentials, so a URL of a private bucket that is not signed (getPublicUrl's
-- /object/public/..., the /object/authenticated/... and plain /object/<bucket>/... downloads, and
-- their /render/image/ forms) can only fail there, after the credits were taken. start_generation
-- refuses it (KL013, the detail names the bucket and says to sign). A signed URL, a public URL of
-- a public bucket, and a URL naming a bucket this project does not have are not judged.
begin;
select plan(10);

\ir input_policy_fixture.sql
update private.settings set value = '["img.test"]' where key = 'images.allowed_hosts';
insert into storage.buckets (id, name, public) values ('policy-public', 'policy-public', true);

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(
         format('select public.start_generation(template_id => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001', url),
         'KL013', null, format('refused: %s', why))
  from (values
    ('https://img.test/storage/v1/object/public/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png',
     'a public URL of the private user-uploads bucket (getPublicUrl)'),
    ('https://img.test/storage/v1/object/authenticated/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png',
     'an authenticated URL (KIE sends no token)'),
    ('https://img.test/storage/v1/object/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png',
     'the plain download URL (KIE sends no token)'),
    ('https://img.test/storage/v1/render/image/public/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png?width=512',
     'a transformed public URL of the private bucket'),
    ('https://img.test/storage/v1/object/authenticated/policy-public/a.png',
     'an authenticated URL of a public bucket (still needs a token)')
  ) as t (url, why);

select lives_ok(
         format('select public.start_generation(template_id => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001', url),
         format('accepted: %s', why))
  from (values
    ('https://img.test/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.png?token=' || tests.storage_token(),
     'a signed URL of the private bucket'),
    ('https://img.test/storage/v1/object/public/policy-public/a.png', 'a public URL of a public bucket'),
    ('https://img.test/storage/v1/object/public/elsewhere/a.png', 'a bucket this project does not have'),
    ('https://img.test/photos/storage/v1/object/public/user-uploads/a.png', 'a path that only contains a Storage path')
  ) as t (url, why);

reset role;
select is(private.image_url_problem('https://img.test/storage/v1/object/public/user-uploads/u/a.png'),
  'user-uploads is a private bucket and the URL is not signed, so it cannot be downloaded: send a signed URL (createSignedUrl)',
  'the detail names the bucket and says what to send');

select * from finish();
rollback;
