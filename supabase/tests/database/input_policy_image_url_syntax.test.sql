-- Image URL policy, syntax: ports, schemes, user info, the characters a URL may carry and a
-- path that names its object plainly (no dot or empty segments, no needless escapes). The
-- host list accepts any public DNS name ("*"), so only these rules refuse (KL013). Both sides,
-- through start_generation as the app calls it.
begin;
select plan(62);

\ir input_policy_fixture.sql
update private.settings set value = '["*"]' where key = 'images.allowed_hosts';
update private.settings set value = '["https"]' where key = 'images.allowed_schemes';
update private.settings set value = '[443, 8443]' where key = 'images.allowed_ports';

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
    (null, 'a null element'),
    ('https://photos.example.com/u/./a.png', 'a "." segment'),
    ('https://photos.example.com/x/../u/a.png', 'a ".." segment'),
    ('https://photos.example.com/x/%2e%2E/u/a.png', 'a percent-encoded ".." segment'),
    ('https://photos.example.com/u//a.png', 'an empty segment'),
    ('https://photos.example.com/user%2Duploads/a.png', 'a percent-encoded hyphen'),
    ('https://photos.example.com/u/%61.png', 'a percent-encoded letter')
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
    ('https://photos.example.com/' || repeat('a', 2021), 'exactly 2048 characters'),
    ('https://photos.example.com/a..b/.hidden/c.png.', 'dots inside segments'),
    ('https://photos.example.com/a.png?next=//x/../%61', 'dot segments and escapes in the query')
  ) as accepted(url, why);


-- The detail says which rule refused.
select is(tests.refusal(format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                                 '5a5a0000-0000-4000-8000-00000000f001', url)),
          'KL013: image 1: ' || reason, format('%s is refused because %s', url, reason))
  from (values
    ('https://user@photos.example.com/a.png', 'user names and passwords (user@host) are not accepted'),
    ('http://photos.example.com:443/a.png', 'http URLs are not accepted'),
    ('https://photos.example.com:99999/a.png', 'the port must be a number from 1 to 65535'),
    ('https://photos.example.com/a b.png', 'the URL has spaces, quotes or other characters that must be percent-encoded'),
    ('https://photos.example.com/x/%2E/a.png', 'the URL path has a "." or ".." segment'),
    ('https://photos.example.com/x//a.png', 'the URL path has an empty segment (//)'),
    ('https://photos.example.com/x/%7E.png', 'the URL path percent-encodes a letter, a digit or one of - . _ ~ (they need no encoding)')
  ) as reasons(url, reason);

select * from finish();
rollback;
