-- start_generation's refusals about the prompt name what the caller sent. The model's prompt
-- limit (KL011) says "with the style" only when a style was sent; a template start, which sends
-- no prompt, hears about the prompt the template renders with its inputs; a control character in
-- the negative prompt (KL012) is reported as the negative prompt's, not the prompt's. Message,
-- detail and hint, through start_generation.
begin;
select plan(8);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';
update public.models set max_prompt_length = 100 where key = 'policy-i2i';
insert into public.styles (key, name, prompt_fragment, "order") values ('policy-ink', 'Ink', 'in ink', 1);

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select is(tests.refusal_text(statement), expected, why)
  from (values
    (format('select public.start_generation(prompt => %L)', repeat('x', 1001)),
     'KL011: prompt too long | 1001 characters (UTF-16 units), at most 1000 | Shorten the prompt.',
     'a prompt over the limit without a style: the detail does not mention a style'),
    (format('select public.start_generation(prompt => %L, style => %L)', repeat('x', 995), 'policy-ink'),
     'KL011: prompt too long | 1003 characters (UTF-16 units) with the style, at most 1000 | Shorten the prompt, or choose no style.',
     'a prompt within the limit that the style fragment takes over it: the detail names the style'),
    (format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001',
            jsonb_build_object('subject', repeat('y', 95)), 'https://photos.example.com/a.png'),
     'KL011: the prompt this template renders is too long | 106 characters (UTF-16 units) with these inputs, at most 100 | Shorten the text inputs.',
     'a template start sends no prompt: the refusal names the rendered prompt and the inputs'),
    (format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L], style => %L)', '5a5a0000-0000-4000-8000-00000000f001',
            jsonb_build_object('subject', repeat('y', 85)), 'https://photos.example.com/a.png', 'policy-ink'),
     'KL011: the prompt this template renders is too long | 104 characters (UTF-16 units) with these inputs and the style, at most 100 | Shorten the text inputs, or choose no style.',
     'a template start with a style: the inputs and the style'),
    (format('select public.start_generation(prompt => %L, negative_prompt => %L)', 'a cat', repeat('z', 1001)),
     'KL011: negative prompt too long | 1001 characters (UTF-16 units), at most 1000 | Shorten the negative prompt.',
     'a negative prompt over the limit: unchanged'),
    (format('select public.start_generation(prompt => %L, negative_prompt => %L)', 'a cat', E'blur\u001b'),
     'KL012: the negative prompt contains a control character | U+001B at character 5 | Remove control and text-direction characters; line breaks and tabs are fine.',
     'a control character in the negative prompt is the negative prompt''s'),
    (format('select public.start_generation(prompt => %L, negative_prompt => %L)', E'a cat\u001b', 'blur'),
     'KL012: the prompt contains a control character | U+001B at character 6 | Remove control and text-direction characters; line breaks and tabs are fine.',
     'a control character in the prompt is still the prompt''s')
  ) as refusals(statement, expected, why);

-- What is within the limit without the style starts.
select lives_ok(format('select public.start_generation(prompt => %L)', repeat('x', 995)),
  'the same prompt without the style starts');

select * from finish();
rollback;
