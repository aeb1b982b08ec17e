-- Order of checks: sizes come before any work that scans the text. Each input below would fail
-- two checks; the error code shows the size check answered first (KL028 for the request, KL011
-- for the model's prompt limit, KL006 "too long" for a text field). Through start_generation.
begin;
select plan(9);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';
insert into private.blocked_terms (term, reason) values ('nude', 'test');

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(statement, 'KL028', null, why)
  from (values
    ($$ select public.start_generation(prompt => repeat(' ', 70000)) $$,
     'a prompt of 70,000 spaces is too large (KL028) before it is blank (KL012)'),
    ($$ select public.start_generation(prompt => 'a cat', negative_prompt => repeat(E'\u3000', 30000)) $$,
     'a negative prompt of 90 KB of ideographic spaces is too large (KL028), not dropped as blank'),
    ($$ select public.start_generation(prompt => 'a nude ' || repeat(E'\u001b', 70000)) $$,
     'a 70 KB prompt with control characters and a blocked term: KL028, not KL012 or KL016'),
    ($$ select public.start_generation(prompt => repeat(' ', 50 * 1024 * 1024) || 'a nude cat') $$,
     'a 50 MB prompt: KL028'),
    ($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
         inputs => jsonb_build_object('subject', repeat(E'\n', 70000)), image_urls => array['https://photos.example.com/a.png']) $$,
     'a text input of 70,000 line feeds: KL028, not a missing or defaulted input')
  ) as checks(statement, why);

select is(tests.refusal($$ select public.start_generation(prompt => E'a nude\u001b ' || repeat('x', 2000)) $$),
  'KL011: 2008 characters (UTF-16 units), at most 1000',
  'a prompt over the model''s limit with a control character and a blocked term: KL011 first');
select is(tests.refusal($$ select public.start_generation(prompt => 'a cat', negative_prompt => E'nude\u001b ' || repeat('x', 2000)) $$),
  'KL011: 2006 characters (UTF-16 units), at most 1000',
  'a negative prompt over the limit with a control character and a blocked term: KL011 first');
select is(tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                               inputs => jsonb_build_object('subject', E'nude\u001b ' || repeat('x', 600)),
                               image_urls => array['https://photos.example.com/a.png']) $$),
  'KL006: 606 characters, at most 500',
  'a text input over its max_length with a control character and a blocked term: "too long" first');
select is(tests.refusal($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
                               inputs => jsonb_build_object('subject', E'nude\u001b'),
                               image_urls => array['https://10.0.0.5/a.png']) $$),
  'KL006: U+001B at character 5',
  'a text input''s characters are checked before image URLs and moderation');

select * from finish();
rollback;
