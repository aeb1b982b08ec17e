-- A template written before a definition rule existed stays in the table ("existing rows are not
-- re-checked until they are next written"). The operator must still be able to take it out of
-- the catalog, or change what is not its definition (name, order, thumbnail, premium flag),
-- without rewriting the definition in the same statement: only a change to prompt_template or
-- input_fields, or making the template active, is judged by the definition rules (KL024).
begin;
select plan(6);

-- A definition the check accepted before 20261202210000 (a prompt written with CRLF line
-- endings), stored as such a row would be: written while the older rule was in force.
alter table public.templates disable trigger templates_validate;
insert into public.templates (id, name, category, prompt_template, input_fields, is_active, published_at)
values ('00000000-0000-4000-8000-0000000001e9', 'Legacy', 'Test', E'Make the sky {c}\r\nkeep the rest',
        '[{"name": "c", "label": "C", "type": "select", "options": ["red", "blue"], "default_value": "red"}]',
        true, now() - interval '30 days');
alter table public.templates enable trigger templates_validate;

select lives_ok($$ update public.templates set is_active = false where id = '00000000-0000-4000-8000-0000000001e9' $$,
  'a template the current rules refuse can be deactivated');
select lives_ok($$ update public.templates set name = 'Legacy (old)', "order" = 9 where id = '00000000-0000-4000-8000-0000000001e9' $$,
  'and renamed or reordered');
select is((select (is_active, name) from public.templates where id = '00000000-0000-4000-8000-0000000001e9'),
  (false, 'Legacy (old)'::text), 'the changes are stored');
select throws_ok($$ update public.templates set is_active = true where id = '00000000-0000-4000-8000-0000000001e9' $$,
  'KL024', null, 'making it active again is judged by the rules: KL024');
select throws_ok($$ update public.templates set input_fields = input_fields || '[]'::jsonb, prompt_template = prompt_template || ' '
                     where id = '00000000-0000-4000-8000-0000000001e9' $$,
  'KL024', null, 'so is a change to its definition');
select lives_ok($$ update public.templates set prompt_template = E'Make the sky {c}\nkeep the rest'
                    where id = '00000000-0000-4000-8000-0000000001e9' $$,
  'and a fixed definition is accepted');

select * from finish();
rollback;
