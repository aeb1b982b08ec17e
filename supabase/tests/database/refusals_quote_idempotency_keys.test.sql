-- KL019 quotes the idempotency key it refuses, in start_generation (a key used with other
-- parameters) and in grant_credits (a key used for another amount), so a key with spaces reads
-- as one value; KL013 counts the photos sent to text-to-image in the singular for one.
-- Message, detail and hint, as the caller sees them.
begin;
select plan(6);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';

select tests.authenticate_as_service_role();
select lives_ok($$ select public.grant_credits('5a5a0000-0000-4000-8000-00000000fa01', 5, 'Support', 'refund of order 7') $$,
  'a first grant with the key');
select is(tests.refusal_text($$ select public.grant_credits('5a5a0000-0000-4000-8000-00000000fa01', 6, 'Support', 'refund of order 7') $$),
  'KL019: idempotency key already used for a different amount | key "refund of order 7" granted 5 | Use a new key for a new grant.',
  'grant_credits quotes the key');

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';
select lives_ok($$ select public.start_generation(prompt => 'a cat', idempotency_key => 'my first cat') $$,
  'a first start with the key');
select matches(tests.refusal_text($$ select public.start_generation(prompt => 'a dog', idempotency_key => 'my first cat') $$),
  '^KL019: idempotency key already used with different parameters \| key "my first cat" belongs to job [0-9a-f-]{36} \| Use a new key for a new generation\.$',
  'start_generation quotes the key');

select is(tests.refusal_text($$ select public.start_generation(prompt => 'a cat', image_urls => array['https://photos.example.com/a.png']) $$),
  'KL013: text-to-image takes no images | 1 image URL given | Use a template to edit photos.',
  'one photo is counted in the singular');
select is(tests.refusal_text($$ select public.start_generation(prompt => 'a cat', image_urls => array['https://photos.example.com/a.png', 'https://photos.example.com/b.png']) $$),
  'KL013: text-to-image takes no images | 2 image URLs given | Use a template to edit photos.',
  'two photos in the plural');

select * from finish();
rollback;
