-- Image URL policy, hosts: IP literals in every notation and private network names are refused
-- (KL013) even when the operator accepts any public DNS name ("*"), so this file tests those
-- guards alone, not the allowlist. Both sides, through start_generation as the app calls it.
begin;
select plan(42);

-- Fixtures (as the owner): one user on an unmetered plan with room for every start, one model per
-- mode, one template that takes one to four photos and has a text field.
update public.plans set is_metered = false, max_active_jobs = 1000, starts_per_minute = 1000;
update public.models set is_active = false;
insert into public.models
  (key, display_name, kie_model, mode, quality, credit_cost, min_plan, image_input_field, min_input_images, max_input_images, max_prompt_length, aspect_ratios)
values
  ('policy-t2i', 'Policy T2I', 'test/t2i', 'text-to-image', 'fast', 1, 'free', null, 0, 0, 1000, '{1:1}'),
  ('policy-i2i', 'Policy I2I', 'test/i2i', 'image-to-image', 'fast', 1, 'free', 'image_urls', 1, 4, 1000, '{1:1}');
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('5a5a0000-0000-4000-8000-00000000f001', 'Policy Photo', 'test', 'A photo of {subject}',
        '[{"name": "subject", "label": "Subject", "type": "text", "max_length": 500, "default_value": "a cat"}]', 1, 4);
insert into auth.users (id, aud, role, email, raw_app_meta_data)
values ('5a5a0000-0000-4000-8000-00000000fa01', 'authenticated', 'authenticated', 'input-policy@test.kiln.local', '{"provider": "email"}');
update private.settings set value = '["*"]' where key = 'images.allowed_hosts';
update private.settings set value = '["https"]' where key = 'images.allowed_schemes';
update private.settings set value = '[443, 8443]' where key = 'images.allowed_ports';

-- The SQLSTATE and detail a statement fails with (run as the caller).
create function pg_temp.refusal(statement text)
returns text
language plpgsql
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
grant execute on function pg_temp.refusal(text) to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(
         format('select public.start_generation(template_id => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001', url),
         'KL013', null, format('refused: %s (%s)', url, why))
  from (values
    ('https://127.0.0.1/a.png', 'loopback'),
    ('https://127.0.0.1:443/a.png', 'loopback with an explicit port'),
    ('https://169.254.169.254/latest/meta-data/', 'link-local, cloud metadata'),
    ('https://10.0.0.5/', 'private 10/8'),
    ('https://172.16.0.1/', 'private 172.16/12'),
    ('https://192.168.1.1:8443/', 'private 192.168/16 on an accepted port'),
    ('https://100.100.100.200/latest/meta-data/', 'shared 100.64/10, cloud metadata'),
    ('https://100.64.0.1/', 'shared 100.64/10'),
    ('https://224.0.0.1/', 'multicast'),
    ('https://240.0.0.1/', 'reserved 240/4'),
    ('https://255.255.255.255/', 'broadcast'),
    ('https://0.0.0.0/', 'this network'),
    ('https://8.8.8.8/', 'a public address is still an IP literal'),
    ('https://0x7f.0x0.0x0.0x1/', 'hexadecimal dotted'),
    ('https://0177.0.0.1/', 'octal dotted'),
    ('https://127.1/', 'short form'),
    ('https://2130706433/', 'decimal integer'),
    ('https://0x7f000001/', 'hexadecimal integer'),
    ('https://017700000001/', 'octal integer'),
    ('https://0X7F.1/', 'upper-case hexadecimal short form'),
    ('https://[::1]/', 'IPv6 loopback'),
    ('https://[::ffff:127.0.0.1]/', 'IPv4-mapped IPv6'),
    ('https://[::ffff:7f00:1]/', 'IPv4-mapped IPv6 in hex'),
    ('https://[fd00::1]/', 'IPv6 unique local'),
    ('https://metadata.google.internal/computeMetadata/v1/', '.internal'),
    ('https://printer.local/', '.local (mDNS)'),
    ('https://localhost/a.png', 'localhost'),
    ('https://api.localhost/a.png', 'a subdomain of localhost'),
    ('https://router.lan/', '.lan'),
    ('https://nas.home.arpa/', 'home.arpa'),
    ('https://1.0.0.127.in-addr.arpa/', 'a reverse-lookup name'),
    ('https://127.0.0.1.nip.io/', 'wildcard DNS that spells out an address'),
    ('https://10-0-0-5.sslip.io/', 'wildcard DNS with dashes')
  ) as refused(url, why);

select lives_ok(
         format('select public.start_generation(template_id => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001', url),
         format('accepted: %s (%s)', url, why))
  from (values
    ('https://images.example.org/a.png', 'a public host name'),
    ('https://photos.example.com:8443/a.png', 'on an accepted port'),
    ('https://a1.cdn.example.net/p/1.webp', 'a name with digits that is not an address'),
    ('https://1password.example.com/a.png', 'a label that starts with a digit'),
    ('https://xn--bcher-kva.example/a.png', 'a punycode name')
  ) as accepted(url, why);


-- The detail says which rule refused.
select is(pg_temp.refusal(format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                                 '5a5a0000-0000-4000-8000-00000000f001', url)),
          'KL013: image 1: ' || reason, format('%s is refused because %s', url, reason))
  from (values
    ('https://[::ffff:127.0.0.1]/', 'IPv6 address hosts are not accepted'),
    ('https://0X7F.1/', 'host 0x7f.1 is an IP address'),
    ('https://printer.local/', 'host printer.local is a private network name'),
    ('https://127.0.0.1.nip.io/', 'host 127.0.0.1.nip.io spells out an IP address')
  ) as reasons(url, reason);

select * from finish();
rollback;
