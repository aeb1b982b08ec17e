-- Image URL policy, syntax: ports, schemes, user info and the characters a URL may carry. The
-- host list accepts any public DNS name ("*"), so only these rules refuse (KL013). Both sides,
-- through start_generation as the app calls it.
begin;
select plan(51);

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
         format('select public.start_generation(template_id => %L, image_urls => array[%L::text])', '5a5a0000-0000-4000-8000-00000000f001', url),
         'KL013', null, format('refused: %s (%s)', coalesce(regexp_replace(left(url, 60), '[[:cntrl:]]', '?', 'g'), 'null'), why))
  from (values
    ('https://photos.example.com:0/a.png', 'port 0'),
    ('https://photos.example.com:99999/a.png', 'port above 65535'),
    ('https://photos.example.com:65536/a.png', 'port 65536'),
    ('https://photos.example.com:8080/a.png', 'a port not on the list'),
    ('https://photos.example.com:0443/a.png', 'a port with a leading zero'),
    ('https://photos.example.com:/a.png', 'an empty port'),
    ('https://photos.example.com/a".png', 'a double quote'),
    ('https://photos.example.com/a''.png', 'a single quote'),
    ('https://photos.example.com/a`.png', 'a backtick'),
    ('https://photos.example.com/{a}.png', 'braces'),
    ('https://photos.example.com/a|b.png', 'a pipe'),
    ('https://photos.example.com\@10.0.0.5/a.png', 'a backslash'),
    ('https://photos.example.com/a b.png', 'a space'),
    (E'https://photos.example.com/a\tb.png', 'a tab'),
    (E'https://photos.example.com/a\nb.png', 'a newline'),
    (E'https://photos.example.com/a\u001bb.png', 'an escape character'),
    ('https://photos.example.com/<script>.png', 'angle brackets'),
    ('https://photos.example.com/a^b.png', 'a caret'),
    ('https://photos.example.com/café.png', 'a non-ASCII character'),
    ('https://phötos.example.com/a.png', 'a non-ASCII host'),
    ('https://photos.example.com/a%zz.png', 'a malformed percent escape'),
    ('https://photos.example.com/a%4', 'a truncated percent escape'),
    ('https://photos%2eexample.com/a.png', 'a percent escape in the host'),
    ('https://user@photos.example.com/a.png', 'a user name'),
    ('https://user:secret@photos.example.com/a.png', 'a user name and password'),
    ('https://photos.example.com@10.0.0.5/a.png', 'a host name used as user info'),
    ('http://photos.example.com/a.png', 'plain http'),
    ('http://photos.example.com:443/a.png', 'plain http on an accepted port'),
    ('ftp://photos.example.com/a.png', 'ftp'),
    ('javascript:alert(1)', 'javascript'),
    ('data:image/png;base64,iVBORw0KGgo=', 'a data URL'),
    ('//photos.example.com/a.png', 'scheme-relative'),
    ('/storage/v1/object/a.png', 'relative'),
    ('https:/photos.example.com/a.png', 'one slash'),
    ('https://photos.example.com./a.png', 'a trailing dot'),
    ('https://photos..example.com/a.png', 'an empty label'),
    ('https://photos_1.example.com/a.png', 'an underscore in the host'),
    ('https://-photos.example.com/a.png', 'a label starting with a hyphen'),
    ('https://' || repeat('a', 64) || '.example.com/a.png', 'a label over 63 characters'),
    ('https://photos.example.com/' || repeat('a', 2030), 'over 2048 characters'),
    (null, 'a null element')
  ) as refused(url, why);

select lives_ok(
         format('select public.start_generation(template_id => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001', url),
         format('accepted: %s (%s)', left(url, 60), why))
  from (values
    ('HTTPS://Photos.Example.COM/A.png', 'any case in scheme and host'),
    ('https://photos.example.com:443/a.png', 'the default port written out'),
    ('https://photos.example.com:8443/a.png', 'an accepted port'),
    ('https://photos.example.com/a%20b.png?sig=a%2Fb&x=(1)*,;=!$~#frag', 'percent escapes, query and fragment'),
    ('https://photos.example.com', 'no path'),
    ('https://photos.example.com/' || repeat('a', 2021), 'exactly 2048 characters')
  ) as accepted(url, why);


-- The detail says which rule refused.
select is(pg_temp.refusal(format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                                 '5a5a0000-0000-4000-8000-00000000f001', url)),
          'KL013: image 1: ' || reason, format('%s is refused because %s', url, reason))
  from (values
    ('https://user@photos.example.com/a.png', 'user names and passwords (user@host) are not accepted'),
    ('http://photos.example.com:443/a.png', 'http URLs are not accepted'),
    ('https://photos.example.com:99999/a.png', 'the port must be a number from 1 to 65535'),
    ('https://photos.example.com/a b.png', 'the URL has spaces, quotes or other characters that must be percent-encoded')
  ) as reasons(url, reason);

select * from finish();
rollback;
