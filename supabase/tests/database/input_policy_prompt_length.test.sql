-- The model's prompt limit (KL011) counts UTF-16 code units, as the provider does: a character
-- beyond the Basic Multilingual Plane (an emoji) is two, any other character one. With a limit of
-- 5,000: 2,500 emoji pass and 2,501 are refused, in the prompt and in the negative prompt, while
-- ASCII and CJK text (one unit per character, one or three UTF-8 bytes) pass at exactly 5,000
-- characters and are refused at 5,001. Through start_generation.
begin;
select plan(14);

\ir input_policy_fixture.sql
update public.models set max_prompt_length = 5000 where key = 'policy-t2i';

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select lives_ok(format('select public.start_generation(prompt => %L, negative_prompt => %L)', prompt, negative), 'accepted: ' || why)
  from (values
    (repeat(E'\U0001f600', 2500), null, '2,500 emoji are 5,000 units'),
    (repeat('x', 5000), null, '5,000 ASCII characters'),
    (repeat(E'\u732b', 5000), null, '5,000 CJK characters (15,000 bytes)'),
    (repeat(E'\U0001f600', 2499) || 'xx', null, '2,499 emoji and two letters'),
    ('a cat', repeat(E'\U0001f600', 2500), 'a negative prompt of 2,500 emoji'),
    ('a cat', repeat('x', 5000), 'a negative prompt of 5,000 ASCII characters')
  ) as accepted(prompt, negative, why);

select throws_ok(format('select public.start_generation(prompt => %L, negative_prompt => %L)', prompt, negative), 'KL011', null, 'refused: ' || why)
  from (values
    (repeat(E'\U0001f600', 2501), null, '2,501 emoji are 5,002 units'),
    (repeat('x', 5001), null, '5,001 ASCII characters'),
    (repeat(E'\u732b', 5001), null, '5,001 CJK characters'),
    (repeat(E'\U0001f600', 2499) || 'xxx', null, '2,499 emoji and three letters'),
    ('a cat', repeat(E'\U0001f600', 2501), 'a negative prompt of 2,501 emoji'),
    ('a cat', repeat('x', 5001), 'a negative prompt of 5,001 ASCII characters')
  ) as refused(prompt, negative, why);

select is(tests.refusal(format('select public.start_generation(prompt => %L)', repeat(E'\U0001f600', 2501))),
  'KL011: 5002 characters (UTF-16 units), at most 5000', 'the detail counts UTF-16 units');
select is(tests.refusal(format('select public.start_generation(prompt => %L, negative_prompt => %L)', 'a cat', repeat(E'\U0001f600', 2501))),
  'KL011: 5002 characters (UTF-16 units), at most 5000', 'the negative prompt''s detail too');

select * from finish();
rollback;
