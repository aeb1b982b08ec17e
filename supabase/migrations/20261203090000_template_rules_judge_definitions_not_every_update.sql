-- Why: the definition check (KL024) ran on every update of a template, whatever the update
-- changed. 20261202210000 made the rules stricter and left existing rows as they were ("not
-- re-checked until they are next written"), so a template stored before it with, say, a prompt
-- written with CRLF line endings could no longer be written at all: not deactivated (the first
-- thing an operator does with a template that starts refuse), not renamed, reordered or moved to
-- premium, unless the same statement also rewrote its definition.
--
-- The rules judge a definition, so they now run when there is a definition to judge: on insert,
-- when prompt_template or input_fields change, and when a template becomes active (an inactive
-- one with an old definition is not published without passing the current rules). Every active
-- template written since still passes them; an update that touches neither the definition nor
-- activation goes through as it did before the stricter rules. published_at is stamped as before.

create or replace function private.templates_validate()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  problem text;
begin
  if tg_op = 'INSERT'
     or new.prompt_template is distinct from old.prompt_template
     or new.input_fields is distinct from old.input_fields
     or (new.is_active and not old.is_active) then
    problem := private.template_definition_problem(new.prompt_template, new.input_fields);
    if problem is not null then
      perform private.raise_error('KL024', 'invalid template: ' || problem,
        format('template "%s"', new.name), 'Fix the template definition; see the field definition format in the templates migration.');
    end if;
  end if;
  if new.is_active and new.published_at is null then
    new.published_at := now();
  end if;
  return new;
end
$$;
comment on function private.templates_validate() is
  'API: Private. Trigger: refuses invalid template definitions (KL024) on insert, on a change to prompt_template or input_fields, and on activation; stamps published_at.';

select private.pin_search_paths();
