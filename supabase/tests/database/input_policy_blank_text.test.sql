-- Blank text: a prompt or a text input with nothing visible in it (only white space and
-- invisible characters: joiners, fillers, soft hyphen, blank Braille, variation selectors, tag
-- characters, marks) is empty. The prompt is refused (KL012), a required text field is missing
-- (KL005), an optional one takes its default. Text with something visible is kept as sent,
-- invisible characters included. Through start_generation.
begin;
select plan(33);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('5a5a0000-0000-4000-8000-00000000f002', 'Policy Required', 'test', 'A photo of {subject}',
        '[{"name": "subject", "label": "Subject", "type": "text", "required": true}]', 1, 4),
       ('5a5a0000-0000-4000-8000-00000000f003', 'Policy Joined', 'test', E'{note}\u2060',
        '[{"name": "note", "label": "Note", "type": "text"}]', 1, 4);

create temp table invisible_texts (content text, why text);
insert into invisible_texts values
  (E'\u200d', 'zero-width joiner U+200D'),
  (E'\u2060', 'word joiner U+2060'),
  (E'\u00ad', 'soft hyphen U+00AD'),
  (E'\u3164', 'Hangul filler U+3164'),
  (E'\u115f\u1160', 'Hangul choseong and jungseong fillers U+115F U+1160'),
  (E'\u2800', 'blank Braille pattern U+2800'),
  (E'\ufe0f', 'variation selector U+FE0F'),
  (E'\U000e0041', 'tag letter U+E0041'),
  (E'\u034f', 'combining grapheme joiner U+034F'),
  (E'\u061c', 'Arabic letter mark U+061C'),
  (E' \u200d\u00a0\u2060\n', 'joiners between spaces');
grant select on invisible_texts to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(format('select public.start_generation(prompt => %L)', content), 'KL012', null, 'blank prompt: ' || why)
  from invisible_texts;
select throws_ok(format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
                        '5a5a0000-0000-4000-8000-00000000f002', jsonb_build_object('subject', content), 'https://photos.example.com/a.png'),
                 'KL005', null, 'blank required field: ' || why)
  from invisible_texts;

select throws_ok($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f003',
                     image_urls => array['https://photos.example.com/a.png']) $$,
  'KL012', null, 'a template that renders only an invisible character: KL012');
select is((select prompt from public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
             inputs => jsonb_build_object('subject', E'\u200d'), image_urls => array['https://photos.example.com/a.png'])),
  'A photo of a cat', 'an optional field with nothing visible takes its default');

-- Accepted: something visible, stored as sent.
select is((select prompt from public.start_generation(prompt => content)), content, 'kept: ' || why)
  from (values
    (E'\u2764\ufe0f', 'a heart with its emoji variation selector'),
    (E'\U0001f469\u200d\U0001f680', 'an emoji joined by a zero-width joiner'),
    (E'\u2801', 'a Braille dot'),
    (E'a\u00adb', 'letters around a soft hyphen'),
    (E'\u3164 a cat', 'a Hangul filler before a word'),
    ('x', 'one letter')
  ) as kept(content, why);
select is((select prompt from public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f002',
             inputs => jsonb_build_object('subject', E'a\u200db'), image_urls => array['https://photos.example.com/a.png'])),
  E'A photo of a\u200db', 'a required field with something visible is kept as sent');

-- A negative prompt with nothing visible is no negative prompt: not stored, not in the request.
select results_eq(
  format($$ select negative_prompt, request ? 'negative_prompt' from public.start_generation(prompt => 'a cat', negative_prompt => %L) $$, content),
  $$ values (null::text, false) $$,
  'blank negative prompt dropped: ' || why)
  from invisible_texts where why in ('zero-width joiner U+200D', 'joiners between spaces');

select * from finish();
rollback;
