-- A template definition the check accepts is one a start can use: a definition that would make
-- every start with it fail on text the user never typed (a CR in the template, a control
-- character in a default or an option, an invisible option, a slider bound finer than the 6
-- decimal places values are rounded to) is refused with KL024 instead.
begin;
select plan(9);

create temp table bad_definitions (label text, prompt text, fields jsonb);
grant all on bad_definitions to public;
insert into bad_definitions values
  ('a prompt_template with CRLF line endings', E'Make the sky {c}\r\nkeep the rest',
   '[{"name": "c", "label": "C", "type": "select", "options": ["red", "blue"], "default_value": "red"}]'),
  ('a prompt_template with a bidi override', E'Make the sky {c} \u202Eblue',
   '[{"name": "c", "label": "C", "type": "select", "options": ["red", "blue"]}]'),
  ('a text default with an escape character', 'Add {t}',
   '[{"name": "t", "label": "T", "type": "text", "default_value": "a\u001bb"}]'),
  ('a select option with a bidi override', 'Add {c}',
   '[{"name": "c", "label": "C", "type": "select", "options": ["red", "bl\u202eue"]}]'),
  ('a select option of only a zero-width space', 'Add {c}',
   '[{"name": "c", "label": "C", "type": "select", "options": ["red", "\u200b"], "required": true}]'),
  ('a toggle option with a bell character', 'Add {c}',
   '[{"name": "c", "label": "C", "type": "toggle", "options": ["x\u0007", "y"], "default_value": false}]'),
  ('a slider default finer than 6 decimal places', 'Strength {s}',
   '[{"name": "s", "label": "S", "type": "slider", "min": 0.0000001, "max": 1, "default_value": 0.0000001}]'),
  ('a slider max finer than 6 decimal places', 'Strength {s}',
   '[{"name": "s", "label": "S", "type": "slider", "min": 0, "max": 0.0000009}]');

select throws_ok(
  format('insert into public.templates (name, category, prompt_template, input_fields) values (%L, %L, %L, %L)',
         'Probe', 'Test', b.prompt, b.fields),
  'KL024', null, b.label || ': KL024')
  from bad_definitions b order by b.label;

-- At the limits: 6 decimal places, LF line breaks, a tab, an empty toggle text: accepted, and a
-- user's start with its defaults goes through.
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('00000000-0000-4000-8000-00000000d0ce', 'Probe', 'Test', E'Strength {s}\n{c},\t{t}',
        '[{"name": "s", "label": "S", "type": "slider", "min": 0.000001, "max": 0.000009, "default_value": 0.000009},
          {"name": "c", "label": "C", "type": "select", "options": ["red", "blue"], "default_value": "red"},
          {"name": "t", "label": "T", "type": "toggle", "options": ["", "glossy"], "default_value": false}]', 1, 1);
select tests.create_supabase_user('tds_user');
select tests.authenticate_as('tds_user');
select is((public.start_generation(template_id => '00000000-0000-4000-8000-00000000d0ce',
                                   image_urls => array['https://img.test/a.png'])).prompt,
          E'Strength 0.000009\nred',
          'a definition at the limits starts with its defaults');

select * from finish();
rollback;
