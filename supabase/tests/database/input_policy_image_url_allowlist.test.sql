-- Image URL policy, the operator's list (images.allowed_hosts): exact host names, *.suffix for
-- subdomains, and exact origins (the local stack's plain-http gateway). What is not on the list
-- is refused (KL013), and the error says which image and why. Through start_generation.
begin;
select plan(33);

\ir input_policy_fixture.sql

-- The local stack's own settings (sql/local_settings.sql) accept its gateway, and only over the
-- exact origin listed.
set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';
select lives_ok(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
       image_urls => array['http://127.0.0.1:54321/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/a.jpg?token=' || tests.storage_token()]) $$,
  'local settings: a signed URL from the local gateway is accepted');
select throws_ok(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
       image_urls => array['https://127.0.0.1:54321/storage/v1/object/sign/user-uploads/a.jpg']) $$,
  'KL013', null, 'local settings: the gateway over another scheme is refused');

-- The shipped default: nothing is accepted until the operator names a host.
reset role;
update private.settings set value = '[]' where key = 'images.allowed_hosts';
update private.settings set value = '["https"]' where key = 'images.allowed_schemes';
update private.settings set value = '[443]' where key = 'images.allowed_ports';
set local role authenticated;
select is(
  tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                       image_urls => array['https://abcdefghijklmnop.supabase.co/storage/v1/object/sign/user-uploads/a.jpg?token=' || tests.storage_token()]) $$),
  'KL013: image 1: no image host is accepted yet (the operator sets images.allowed_hosts)',
  'with an empty list every image URL is refused, and the detail says what to set');

-- A hosted project's list: its Storage host, a CDN's subdomains, and an exact origin.
reset role;
update private.settings set value = '["abcdefghijklmnop.supabase.co", "*.cdn.example.net", "http://127.0.0.1:54321"]'
 where key = 'images.allowed_hosts';
set local role authenticated;

select lives_ok(
         format('select public.start_generation(template_id => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001', url),
         format('accepted: %s (%s)', left(url, 70), why))
  from (values
    ('https://abcdefghijklmnop.supabase.co/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/photo.jpg?token=eyJhbGciOiJIUzI1NiJ9.eyJ1cmwiOiJ1c2VyLXVwbG9hZHMifQ.sig',
     'a signed user-uploads URL on the Storage host'),
    ('https://ABCDEFGHIJKLMNOP.Supabase.co/storage/v1/object/sign/user-uploads/a.png?token=' || tests.storage_token(), 'the Storage host in any case'),
    ('https://abcdefghijklmnop.supabase.co:443/a.png', 'the Storage host with its port written out'),
    ('https://img1.cdn.example.net/a.png', 'a subdomain of the CDN'),
    ('https://a.b.cdn.example.net/a.png', 'a deeper subdomain of the CDN'),
    ('http://127.0.0.1:54321/storage/v1/object/sign/user-uploads/a.png?token=' || tests.storage_token(), 'the exact origin listed')
  ) as accepted(url, why);

select throws_ok(
         format('select public.start_generation(template_id => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001', url),
         'KL013', null, format('refused: %s (%s)', left(url, 70), why))
  from (values
    ('https://evil.example.com/a.png', 'a host not on the list'),
    ('https://qrstuvwxyzabcdef.supabase.co/storage/v1/object/sign/user-uploads/a.png', 'another project''s Storage'),
    ('https://abcdefghijklmnop.supabase.co.evil.com/a.png', 'the Storage host as a prefix'),
    ('https://xabcdefghijklmnop.supabase.co/a.png', 'the Storage host as a suffix'),
    ('https://sub.abcdefghijklmnop.supabase.co/a.png', 'a subdomain of an exact entry'),
    ('https://cdn.example.net/a.png', 'the wildcard''s own domain'),
    ('https://evilcdn.example.net/a.png', 'a name ending in the wildcard''s text'),
    ('http://abcdefghijklmnop.supabase.co/a.png', 'a listed host over plain http'),
    ('https://abcdefghijklmnop.supabase.co:8443/a.png', 'a listed host on another port'),
    ('https://127.0.0.1:54321/a.png', 'the listed origin''s host over https'),
    ('http://127.0.0.1:54322/a.png', 'the listed origin''s host on another port'),
    ('http://127.0.0.1/a.png', 'the listed origin''s host on the default port'),
    ('https://127.0.0.1/a.png', 'loopback'),
    ('https://169.254.169.254/latest/meta-data/', 'cloud metadata'),
    ('https://10.0.0.5/', 'a private address'),
    ('https://192.168.1.1:8443/', 'a private address with a port'),
    ('https://100.100.100.200/', 'a shared address'),
    ('https://0x7f.0x0.0x0.0x1/', 'hexadecimal'),
    ('https://0177.0.0.1/', 'octal'),
    ('https://127.1/', 'short form'),
    ('https://metadata.google.internal/', '.internal'),
    ('https://printer.local/', '.local'),
    ('https://127.0.0.1.nip.io/', 'wildcard DNS')
  ) as refused(url, why);

select is(
  tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                       image_urls => array['https://img1.cdn.example.net/a.png', 'https://10.0.0.5/b.png']) $$),
  'KL013: image 2: host 10.0.0.5 is an IP address',
  'the detail names the refused image and the reason');

select * from finish();
rollback;
