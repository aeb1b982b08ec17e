-- Text hygiene: control characters and bidi embeddings, overrides and isolates are refused in
-- prompts (KL012) and template text inputs (KL006); line feeds and tabs are kept, and CR LF and
-- lone CR become LF. Through start_generation.
begin;
select plan(34);

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
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';

create temp table refused_characters (ch text, why text);
insert into refused_characters values
  (E'\u001b[31m', 'ESC (a terminal escape)'),
  (E'\u0007', 'BEL'),
  (E'\u0008', 'backspace'),
  (E'\u000b', 'vertical tab'),
  (E'\u007f', 'DEL'),
  (E'\u0085', 'NEL, a C1 control'),
  (E'\u202e', 'right-to-left override U+202E'),
  (E'\u202a', 'left-to-right embedding U+202A'),
  (E'\u2066', 'left-to-right isolate U+2066'),
  (E'\u2069', 'pop directional isolate U+2069');
grant select on refused_characters to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

-- Each character, inside a prompt, a negative prompt and a text input.
select throws_ok(format('select public.start_generation(prompt => %L)', 'a cat' || ch || 'on a mat'),
                 'KL012', null, format('prompt with %s: KL012', why))
  from refused_characters;
select throws_ok(format('select public.start_generation(prompt => %L, negative_prompt => %L)', 'a cat', 'blur' || ch || 'noise'),
                 'KL012', null, format('negative prompt with %s: KL012', why))
  from refused_characters;
select throws_ok(format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
                        '5a5a0000-0000-4000-8000-00000000f001', jsonb_build_object('subject', 'a cat' || ch || 'on a mat'),
                        'https://photos.example.com/a.png'),
                 'KL006', null, format('text input with %s: KL006', why))
  from refused_characters;

-- What is kept, as stored in the job.
select is((select prompt from public.start_generation(prompt => input)), stored, 'prompt kept: ' || why)
  from (values
    (E'a cat\non a mat', E'a cat\non a mat', 'a line feed'),
    (E'a cat\ton a mat', E'a cat\ton a mat', 'a tab')
  ) as kept(input, stored, why);
select is((select prompt from public.start_generation(prompt => E'a cat\r\non a mat\rtoday')), E'a cat\non a mat\ntoday',
  'CR LF and a lone CR become LF');
select is((select prompt from public.start_generation(prompt => E'\u05e9\u05dc\u05d5\u05dd \u200fcat')),
  E'\u05e9\u05dc\u05d5\u05dd \u200fcat', 'right-to-left text with a right-to-left mark is kept');

select * from finish();
rollback;
