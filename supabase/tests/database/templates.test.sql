-- Templates: the definition rules the database enforces (KL024), the triggers that keep
-- updated_at and published_at, who can read what, and how inputs are resolved
-- (KL005/KL006/KL007) and rendered into a prompt. Private functions are called as the owner
-- (the test connection's own role).
begin;
select plan(125);

-- ---------------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------------

-- Inserts a template with the given definition; everything else is valid.
create function pg_temp.probe(prompt text, fields jsonb)
returns void
language sql
as $$
  insert into public.templates (name, category, prompt_template, input_fields)
  values ('Probe', 'Test', prompt, fields)
$$;

-- One field of each type, in the shapes the rendering tests need.
create function pg_temp.fields()
returns jsonb
language sql immutable
as $$
  select $json$[
    {"name": "subject", "label": "Subject", "type": "text", "required": true, "max_length": 20,
     "placeholder": "a cat"},
    {"name": "details", "label": "Details", "type": "text"},
    {"name": "mood", "label": "Mood", "type": "select", "options": ["calm", "stormy"], "default_value": "calm"},
    {"name": "palette", "label": "Palette", "type": "select", "options": ["warm tones", "cool tones"]},
    {"name": "strength", "label": "Strength", "type": "slider", "min": 0, "max": 1, "default_value": 0.5},
    {"name": "copies", "label": "Copies", "type": "slider", "min": 1, "max": 10, "required": true},
    {"name": "frame", "label": "Frame", "type": "toggle", "options": ["no frame", "a gilded frame"],
     "default_value": false},
    {"name": "glow", "label": "soft glow", "type": "toggle"}
  ]$json$::jsonb
$$;

create function pg_temp.prompt()
returns text
language sql immutable
as $$
  select 'A {mood} portrait of {subject}, {details}, {palette}, strength {strength}, {copies} copies, {frame}, {glow}.'
$$;

create function pg_temp.resolve(inputs jsonb)
returns jsonb
language sql
as $$
  select private.resolve_template_inputs(pg_temp.fields(), inputs)
$$;

create function pg_temp.render(inputs jsonb)
returns text
language sql
as $$
  select private.render_template_prompt(pg_temp.prompt(), pg_temp.fields(), pg_temp.resolve(inputs))
$$;

-- Renders any template from raw inputs, the way start_generation does.
create function pg_temp.render_with(prompt text, fields jsonb, inputs jsonb)
returns text
language sql
as $$
  select private.render_template_prompt(prompt, fields, private.resolve_template_inputs(fields, inputs))
$$;

-- ---------------------------------------------------------------------------------------------
-- Definition rules (KL024)
-- ---------------------------------------------------------------------------------------------

-- Valid definitions are accepted.
select lives_ok($$ select pg_temp.probe(pg_temp.prompt(), pg_temp.fields()) $$,
  'a definition using every field type and every key inserts');
select lives_ok($$ select pg_temp.probe('A watercolor of the photo', '[]') $$,
  'a template without fields or placeholders inserts');
select lives_ok($$ select pg_temp.probe('{a} {b} {c} {d}', $json$[
    {"name": "a", "label": "A", "type": "text", "max_length": 3, "default_value": "abc", "placeholder": null, "required": false},
    {"name": "b", "label": "B", "type": "slider", "min": -1.5, "max": 2.5, "default_value": 2.5},
    {"name": "c", "label": "C", "type": "toggle", "options": ["", "on"], "default_value": null},
    {"name": "d", "label": "D", "type": "select", "options": ["x"], "default_value": null}
  ]$json$) $$,
  'boundary values are valid: default of exactly max_length, slider default at max, empty off-text, null defaults');
select lives_ok($$ select pg_temp.probe('{field_2}', '[{"name": "field_2", "label": "F", "type": "text", "max_length": 2000}]') $$,
  'max_length 2000 and digits/underscores in a field name are valid');

-- Shape of input_fields and of each field.
select throws_ok($$ select pg_temp.probe('A photo', '{"name": "x", "label": "X", "type": "text"}') $$,
  'KL024', null, 'input_fields must be an array (object refused)');
select throws_ok($$ select pg_temp.probe('A photo', 'null') $$,
  'KL024', null, 'input_fields must be an array (JSON null refused)');
select throws_ok($$ select pg_temp.probe('A photo', '["x"]') $$,
  'KL024', null, 'every field must be an object');
select throws_ok($$ select pg_temp.probe('   ', '[]') $$,
  'KL024', null, 'prompt_template must not be blank');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "Subject", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'field name with an uppercase letter refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "2nd", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'field name starting with a digit refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "my-field", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'field name with a hyphen refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "a1234567890123456789012345678901234567890", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'field name longer than 40 characters refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": 7, "label": "S", "type": "text"}]') $$,
  'KL024', null, 'non-string field name refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"label": "S", "type": "text"}]') $$,
  'KL024', null, 'missing field name refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text"}, {"name": "x", "label": "Y", "type": "toggle"}]') $$,
  'KL024', null, 'duplicate field name refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "hint": "?"}]') $$,
  'KL024', null, 'unknown key in a field refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "type": "text"}]') $$,
  'KL024', null, 'missing label refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "  ", "type": "text"}]') $$,
  'KL024', null, 'blank label refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "number"}]') $$,
  'KL024', null, 'unknown type refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X"}]') $$,
  'KL024', null, 'missing type refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "required": "yes"}]') $$,
  'KL024', null, 'non-boolean required refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "placeholder": 3}]') $$,
  'KL024', null, 'non-string placeholder refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "options": ["a"]}]') $$,
  'KL024', null, 'options on a text field refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": ["a"], "max_length": 5}]') $$,
  'KL024', null, 'max_length on a select field refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "toggle", "min": 0}]') $$,
  'KL024', null, 'min/max on a toggle field refused');

-- select
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select"}]') $$,
  'KL024', null, 'select without options refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": []}]') $$,
  'KL024', null, 'select with empty options refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": ["a", "b", "a"]}]') $$,
  'KL024', null, 'select with duplicate options refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": ["a", " "]}]') $$,
  'KL024', null, 'select with a blank option refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": ["a", 2]}]') $$,
  'KL024', null, 'select with a non-string option refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": "a"}]') $$,
  'KL024', null, 'select whose options are not an array refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": ["a", "b"], "default_value": "c"}]') $$,
  'KL024', null, 'select default that is not an option refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "select", "options": ["a", "b"], "default_value": ["a"]}]') $$,
  'KL024', null, 'select default that is an array refused');

-- slider
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "slider", "min": 5, "max": 5}]') $$,
  'KL024', null, 'slider with min = max refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "slider", "min": 10, "max": 1}]') $$,
  'KL024', null, 'slider with min > max refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "slider", "min": 1}]') $$,
  'KL024', null, 'slider without max refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "slider", "min": "1", "max": 5}]') $$,
  'KL024', null, 'slider with a non-numeric min refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "slider", "min": 1, "max": 5, "default_value": 6}]') $$,
  'KL024', null, 'slider default above max refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "slider", "min": 1, "max": 5, "default_value": 0.5}]') $$,
  'KL024', null, 'slider default below min refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "slider", "min": 1, "max": 5, "default_value": "3"}]') $$,
  'KL024', null, 'slider default that is a string refused');

-- toggle
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "toggle", "default_value": "true"}]') $$,
  'KL024', null, 'toggle default that is a string refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "toggle", "default_value": 1}]') $$,
  'KL024', null, 'toggle default that is a number refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "toggle", "options": ["off", "on", "maybe"]}]') $$,
  'KL024', null, 'toggle with three options refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "toggle", "options": ["on"]}]') $$,
  'KL024', null, 'toggle with one option refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "toggle", "options": ["off", true]}]') $$,
  'KL024', null, 'toggle with a non-string option refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "toggle", "options": "on"}]') $$,
  'KL024', null, 'toggle whose options are not an array refused');

-- text
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "max_length": 0}]') $$,
  'KL024', null, 'text max_length 0 refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "max_length": 2001}]') $$,
  'KL024', null, 'text max_length above 2000 refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "max_length": 10.5}]') $$,
  'KL024', null, 'fractional text max_length refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "max_length": 10.0}]') $$,
  'KL024', null, 'text max_length written as 10.0 refused with KL024 (not a cast error)');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "max_length": "10"}]') $$,
  'KL024', null, 'text max_length that is a string refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "max_length": 5, "default_value": "too long"}]') $$,
  'KL024', null, 'text default longer than max_length refused');
select throws_ok(format($$ select pg_temp.probe('A photo', %L) $$,
    jsonb_build_array(jsonb_build_object('name', 'x', 'label', 'X', 'type', 'text', 'default_value', repeat('a', 501)))),
  'KL024', null, 'text default longer than the implicit 500 limit refused');
select throws_ok($$ select pg_temp.probe('A photo', '[{"name": "x", "label": "X", "type": "text", "default_value": 42}]') $$,
  'KL024', null, 'text default that is not a string refused');

-- placeholders and braces
select throws_ok($$ select pg_temp.probe('A {subject} in {place}', '[{"name": "subject", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'undeclared placeholder refused');
select throws_ok($$ select pg_temp.probe('A {Subject}', '[{"name": "subject", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'placeholder differing in case from the field refused');
select throws_ok($$ select pg_temp.probe('A {} photo', '[]') $$,
  'KL024', null, 'empty placeholder refused');
select throws_ok($$ select pg_temp.probe('A {subject photo', '[{"name": "subject", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'unmatched opening brace refused');
select throws_ok($$ select pg_temp.probe('A subject} photo', '[{"name": "subject", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'unmatched closing brace refused');
select throws_ok($$ select pg_temp.probe('A {{subject}} photo', '[{"name": "subject", "label": "S", "type": "text"}]') $$,
  'KL024', null, 'doubled braces around a placeholder refused');

-- An update is checked like an insert.
insert into public.templates (id, name, category, prompt_template, input_fields)
values ('a0000000-0000-4000-8000-000000000001', 'Valid', 'Test', 'A {x}', '[{"name": "x", "label": "X", "type": "text"}]');
select throws_ok($$ update public.templates set prompt_template = 'A {y}' where id = 'a0000000-0000-4000-8000-000000000001' $$,
  'KL024', null, 'an update introducing an undeclared placeholder is refused');
select throws_ok($$ update public.templates set input_fields = '[]' where id = 'a0000000-0000-4000-8000-000000000001' $$,
  'KL024', null, 'an update removing a field still used by the prompt is refused');

-- ---------------------------------------------------------------------------------------------
-- updated_at and published_at
-- ---------------------------------------------------------------------------------------------
insert into public.templates (id, name, category, prompt_template, created_at, updated_at)
values ('a0000000-0000-4000-8000-000000000002', 'Old', 'Test', 'A photo', '2020-01-01', '2020-01-01');
update public.templates set name = 'Renamed' where id = 'a0000000-0000-4000-8000-000000000002';
select is((select updated_at from public.templates where id = 'a0000000-0000-4000-8000-000000000002'), now(),
  'an update bumps updated_at');
select is((select created_at from public.templates where id = 'a0000000-0000-4000-8000-000000000002'), '2020-01-01'::timestamptz,
  'an update leaves created_at alone');

-- Draft: never active, not published.
insert into public.templates (id, name, category, prompt_template, is_active)
values ('a0000000-0000-4000-8000-000000000003', 'Draft', 'Test', 'A photo', false);
select is((select published_at from public.templates where id = 'a0000000-0000-4000-8000-000000000003'), null,
  'a template inserted inactive is a draft (published_at null)');

-- Live: inserted active, stamped at once.
insert into public.templates (id, name, category, prompt_template, is_active)
values ('a0000000-0000-4000-8000-000000000004', 'Live', 'Test', 'A photo', true);
select is((select published_at from public.templates where id = 'a0000000-0000-4000-8000-000000000004'), now(),
  'a template inserted active is published at once');

-- A draft that goes live is stamped.
insert into public.templates (id, name, category, prompt_template, is_active)
values ('a0000000-0000-4000-8000-000000000005', 'Draft then live', 'Test', 'A photo', false);
update public.templates set description = 'still a draft' where id = 'a0000000-0000-4000-8000-000000000005';
select is((select published_at from public.templates where id = 'a0000000-0000-4000-8000-000000000005'), null,
  'editing a draft does not publish it');
update public.templates set is_active = true where id = 'a0000000-0000-4000-8000-000000000005';
select is((select published_at from public.templates where id = 'a0000000-0000-4000-8000-000000000005'), now(),
  'activating a draft stamps published_at');

-- Retired: published long ago, then deactivated; the first publication is kept.
insert into public.templates (id, name, category, prompt_template, is_active, published_at)
values ('a0000000-0000-4000-8000-000000000006', 'Retired', 'Test', 'A photo', true, '2020-01-01');
update public.templates set is_active = false where id = 'a0000000-0000-4000-8000-000000000006';
select is((select published_at from public.templates where id = 'a0000000-0000-4000-8000-000000000006'), '2020-01-01'::timestamptz,
  'deactivating keeps published_at');
update public.templates set is_active = true where id = 'a0000000-0000-4000-8000-000000000006';
update public.templates set is_active = false where id = 'a0000000-0000-4000-8000-000000000006';
select is((select published_at from public.templates where id = 'a0000000-0000-4000-8000-000000000006'), '2020-01-01'::timestamptz,
  'reactivating keeps the first published_at');

-- ---------------------------------------------------------------------------------------------
-- Who reads what: drafts hidden, retired templates visible as inactive; no client writes.
-- ---------------------------------------------------------------------------------------------
do $$ begin perform tests.create_supabase_user('template_reader'); end $$;

select tests.act_as_anon();
select results_eq(
  $$ select id, is_active from public.templates
      where id in ('a0000000-0000-4000-8000-000000000003', 'a0000000-0000-4000-8000-000000000004',
                   'a0000000-0000-4000-8000-000000000005', 'a0000000-0000-4000-8000-000000000006')
      order by id $$,
  $$ values ('a0000000-0000-4000-8000-000000000004'::uuid, true),
            ('a0000000-0000-4000-8000-000000000005'::uuid, true),
            ('a0000000-0000-4000-8000-000000000006'::uuid, false) $$,
  'anon sees published templates (retired ones as inactive) but not drafts');
select throws_ok($$ insert into public.templates (name, category, prompt_template) values ('X', 'Test', 'A photo') $$,
  '42501', null, 'anon cannot insert templates');

select tests.authenticate_as('template_reader');
select results_eq(
  $$ select id, is_active from public.templates
      where id in ('a0000000-0000-4000-8000-000000000003', 'a0000000-0000-4000-8000-000000000004',
                   'a0000000-0000-4000-8000-000000000005', 'a0000000-0000-4000-8000-000000000006')
      order by id $$,
  $$ values ('a0000000-0000-4000-8000-000000000004'::uuid, true),
            ('a0000000-0000-4000-8000-000000000005'::uuid, true),
            ('a0000000-0000-4000-8000-000000000006'::uuid, false) $$,
  'a signed-in user sees published templates (retired ones as inactive) but not drafts');
select is_empty($$ select 1 from public.templates where id = 'a0000000-0000-4000-8000-000000000003' $$,
  'a signed-in user cannot read a draft by id');
select throws_ok($$ update public.templates set name = 'Hacked' where id = 'a0000000-0000-4000-8000-000000000004' $$,
  '42501', null, 'a signed-in user cannot update templates');
select throws_ok($$ select private.resolve_template_inputs('[]', '{}') $$,
  '42501', null, 'a signed-in user cannot call the private resolver');
select tests.act_as_owner();

-- ---------------------------------------------------------------------------------------------
-- Resolving inputs
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.resolve('{"subject": "a cat", "copies": 3}'),
  '{"subject": "a cat", "details": null, "mood": "calm", "palette": null, "strength": 0.5,
    "copies": 3, "frame": false, "glow": null}'::jsonb,
  'defaults are applied and empty optional fields resolve to null');
select is(pg_temp.resolve('{"subject": "  a cat  ", "details": "in a hat", "mood": "stormy", "palette": "cool tones",
                             "strength": 1, "copies": 10, "frame": true, "glow": false}'),
  '{"subject": "a cat", "details": "in a hat", "mood": "stormy", "palette": "cool tones", "strength": 1,
    "copies": 10, "frame": true, "glow": false}'::jsonb,
  'given values win over defaults; text is trimmed; slider bounds are inclusive');
select is(pg_temp.resolve('{"subject": "a cat", "copies": 1, "mood": "", "strength": null, "frame": null}') -> 'mood',
  '"calm"'::jsonb, 'an empty string falls back to the default');
select is(pg_temp.resolve('{"subject": "a cat", "copies": 1, "strength": null}') -> 'strength',
  '0.5'::jsonb, 'a JSON null falls back to the default');
select is(pg_temp.resolve('{"subject": "a cat", "copies": 1, "strength": 0}') -> 'strength',
  '0'::jsonb, 'a slider value of 0 (the minimum) is kept, not replaced by the default');
select is(private.resolve_template_inputs('[{"name": "x", "label": "X", "type": "toggle", "default_value": true}]', null),
  '{"x": true}'::jsonb, 'SQL null inputs mean no inputs');
select is(private.resolve_template_inputs('[{"name": "x", "label": "X", "type": "text", "max_length": 3}]',
                                          jsonb_build_object('x', repeat(U&'\+01F600', 3))) ->> 'x',
  repeat(U&'\+01F600', 3), 'max_length counts code points: three emoji (six UTF-16 units) fit in 3');
select throws_ok($$ select private.resolve_template_inputs('[{"name": "x", "label": "X", "type": "text", "max_length": 3}]',
                                                           jsonb_build_object('x', repeat(U&'\+01F600', 4))) $$,
  'KL006', null, 'and a fourth is too long');

-- KL005: required and missing.
select throws_ok($$ select pg_temp.resolve('{"copies": 3}') $$,
  'KL005', null, 'a required text field left out is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "   ", "copies": 3}') $$,
  'KL005', null, 'a required text field that is blank is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": null, "copies": 3}') $$,
  'KL005', null, 'a required text field sent as null is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat"}') $$,
  'KL005', null, 'a required slider without a default left out is refused');
select throws_ok($$ select private.resolve_template_inputs('[{"name": "x", "label": "X", "type": "text", "required": true, "default_value": ""}]', '{}') $$,
  'KL005', null, 'a blank text default does not satisfy a required field');

-- KL006: wrong type, not an option, out of range, too long.
select throws_ok($$ select pg_temp.resolve('{"subject": 42, "copies": 3}') $$,
  'KL006', null, 'text given a number is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a very very long subject", "copies": 3}') $$,
  'KL006', null, 'text over its max_length is refused');
select throws_ok(format($$ select pg_temp.resolve(%L) $$,
    jsonb_build_object('subject', 'a cat', 'copies', 3, 'details', repeat('a', 501))),
  'KL006', null, 'text over the implicit 500-character limit is refused');
select is(pg_temp.resolve(jsonb_build_object('subject', 'a cat', 'copies', 3, 'details', repeat('a', 500))) ->> 'details',
  repeat('a', 500), 'text of exactly 500 characters is accepted');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 3, "mood": "sunny"}') $$,
  'KL006', null, 'a select value that is not an option is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 3, "mood": ["calm"]}') $$,
  'KL006', null, 'a select value that is an array is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 3, "mood": "Calm"}') $$,
  'KL006', null, 'select options are case-sensitive');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": "3"}') $$,
  'KL006', null, 'a slider given a string is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 11}') $$,
  'KL006', null, 'a slider value above max is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 3, "strength": -0.1}') $$,
  'KL006', null, 'a slider value below min is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 3, "frame": "true"}') $$,
  'KL006', null, 'a toggle given a string is refused');
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 3, "glow": 1}') $$,
  'KL006', null, 'a toggle given a number is refused');

-- KL007: unknown keys, not an object.
select throws_ok($$ select pg_temp.resolve('{"subject": "a cat", "copies": 3, "prompt": "ignore the template"}') $$,
  'KL007', null, 'an undeclared input key is refused');
select throws_ok($$ select pg_temp.resolve('{"copies": 3, "Subject": "a cat"}') $$,
  'KL007', null, 'an unknown key is reported before a missing required field');
select throws_ok($$ select pg_temp.resolve('["a cat"]') $$,
  'KL007', null, 'inputs that are an array are refused');
select throws_ok($$ select pg_temp.resolve('"a cat"') $$,
  'KL007', null, 'inputs that are a string are refused');
select throws_ok($$ select pg_temp.resolve('null') $$,
  'KL007', null, 'inputs that are a JSON null are refused');

-- ---------------------------------------------------------------------------------------------
-- Rendering
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.render('{"subject": "a cat", "details": "wearing a hat", "mood": "stormy", "palette": "warm tones",
                            "strength": 0.75, "copies": 3, "frame": true, "glow": true}'),
  'A stormy portrait of a cat, wearing a hat, warm tones, strength 0.75, 3 copies, a gilded frame, soft glow.',
  'every field filled renders in place');
select is(pg_temp.render('{"subject": "a cat", "copies": 3}'),
  'A calm portrait of a cat, strength 0.5, 3 copies, no frame.',
  'empty optional fields leave no double spaces or dangling commas; defaults render');
select unalike(pg_temp.render('{"subject": "a cat", "copies": 3}'), '%  %',
  'no double spaces after empty fields');
select unalike(pg_temp.render('{"subject": "a cat", "copies": 3}'), '%,.%',
  'no comma left before the final full stop');

-- Toggles.
select alike(pg_temp.render('{"subject": "a cat", "copies": 3, "frame": false}'), '%, no frame%',
  'a toggle with options renders its off text when off');
select alike(pg_temp.render('{"subject": "a cat", "copies": 3, "frame": true}'), '%, a gilded frame%',
  'a toggle with options renders its on text when on');
select alike(pg_temp.render('{"subject": "a cat", "copies": 3, "glow": true}'), '%, soft glow.',
  'a toggle without options renders its label when on');
select is(pg_temp.render('{"subject": "a cat", "copies": 3, "glow": false}'),
  'A calm portrait of a cat, strength 0.5, 3 copies, no frame.',
  'a toggle without options renders nothing when off');
select is(pg_temp.render_with('A cat{tag}', '[{"name": "tag", "label": "T", "type": "toggle", "options": ["", ", wearing a tag"]}]',
                              '{"tag": false}'),
  'A cat', 'an empty off text renders nothing');
select is(pg_temp.render_with('A cat, {frame}', '[{"name": "frame", "label": "F", "type": "toggle", "options": ["unframed", "framed"]}]',
                              '{}'),
  'A cat, unframed', 'a toggle with options, no default and no value renders its off text');

-- Sliders.
select alike(pg_temp.render('{"subject": "a cat", "copies": 7, "strength": 0}'), '%strength 0, 7 copies%',
  'slider numbers render as written, including 0');
select alike(pg_temp.render('{"subject": "a cat", "copies": 1, "strength": 0.25}'), '%strength 0.25, 1 copies%',
  'a fractional slider value renders as a decimal');

-- Tidying.
select is(pg_temp.render_with('{a}, {b}, {c}',
    '[{"name": "a", "label": "A", "type": "text"}, {"name": "b", "label": "B", "type": "text"}, {"name": "c", "label": "C", "type": "text"}]',
    '{"b": "only b"}'),
  'only b', 'empty fields at the start and the end leave no leading or trailing commas');
select is(pg_temp.render_with('A cat. {extra}, lit softly', '[{"name": "extra", "label": "E", "type": "text"}]', '{}'),
  'A cat. lit softly', 'an empty field opening a sentence leaves no comma after the full stop');
select is(pg_temp.render_with('A cat {extra} sits  on a mat', '[{"name": "extra", "label": "E", "type": "text"}]', '{}'),
  'A cat sits on a mat', 'an empty field between words leaves one space');
select is(pg_temp.render_with('Shot at f/1.8, ratio 3:4, props, etc., {extra}', '[{"name": "extra", "label": "E", "type": "text"}]', '{}'),
  'Shot at f/1.8, ratio 3:4, props, etc.', 'ordinary punctuation in the template is left alone');

-- Single pass: what a user typed is never scanned for placeholders.
select is(pg_temp.render('{"subject": "{details}", "details": "SECRET", "copies": 2}'),
  'A calm portrait of {details}, SECRET, strength 0.5, 2 copies, no frame.',
  'a text value containing {other_field} is not substituted');
select is(pg_temp.render('{"subject": "{mood} {glow}", "copies": 2, "glow": true}'),
  'A calm portrait of {mood} {glow}, strength 0.5, 2 copies, no frame, soft glow.',
  'placeholders typed by the user stay literal even when those fields have values');
select is(pg_temp.render_with('{a} and {a}', '[{"name": "a", "label": "A", "type": "text"}]', '{"a": "x"}'),
  'x and x', 'a placeholder used twice renders twice');

select * from finish();
rollback;
